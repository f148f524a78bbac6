"""Isolation suite: no data and no configuration crosses environments.

- data: a canary written here is invisible in every peer (by id, in its list, in its datastore), and a
  writable peer's canary is invisible here; records carrying another environment's run marker are leaks.
  A canary is recognised by its identity (its markers and unique values), never by its id alone: a peer's
  own record 1 is not this environment's canary 1. A lookup answered 5xx, timed out or dropped is "could
  not check" (``isolation.unverified_count``), never a leak.
  Canaries are never written to a protected environment: against prod the suite only reads prod.
- configuration: config.js and declared resources reference only this environment.
- CORS: this environment's API allows only its own origins.
- tokens: this environment's ``isolation.protected_endpoints`` take a token of its own ``auth.cognito`` user
  pool and refuse a peer pool's.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from pytest_deploygate import current_environment
from pytest_deploygate.failures import CheckFailure, RequestFailed, Unverified
from pytest_deploygate.frontend import fetch_config_js
from pytest_deploygate.records import MARK_ENV, Collection, Datastore, Identity
from pytest_deploygate.security.allowlist import screen
from pytest_deploygate.security.posture import cors_findings, cors_probe_origins, fetch, origin_of

pytestmark = [pytest.mark.gate, pytest.mark.isolation]



def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    from pytest_deploygate.run import get_run

    run = get_run(metafunc.config)
    env = current_environment(metafunc.config)
    if run is None or env is None or "peer_name" not in metafunc.fixturenames:
        return
    names = sorted(run.peers)
    metafunc.parametrize("peer_name", names, ids=names)


@pytest.fixture
def peer(peers, peer_name):  # type: ignore[no-untyped-def]
    return peers[peer_name]


def _collection_spec(env):  # type: ignore[no-untyped-def]
    spec = env.crud.collection(env.isolation.collection)
    if spec is None:
        pytest.skip(f"environment {env.name} declares no crud collection to write canaries to")
    return spec


def _unanswered(status: int) -> bool:
    """An answer that says nothing about the record: the server failed, throttled or refused us."""
    return status >= 500 or status in (401, 403, 407, 429)


def _sightings(coll: Collection, store: Datastore | None, canary, identity: Identity) -> tuple[list[str], list[str]]:  # type: ignore[no-untyped-def]
    """Where the canary can be seen through ``coll`` (another environment's API) and ``store``, and
    which of those places could not be looked at (and why). A record is the canary only if it carries
    the canary's identifying values: the same id alone is another record."""
    seen, unchecked = [], []
    try:
        response = coll.probe(canary.item_id)
    except RequestFailed as exc:
        unchecked.append(f"by id: {exc}")
    else:
        if _unanswered(response.status_code):
            unchecked.append(f"by id: GET {response.url} answered {response.status_code}")
        elif response.ok and identity.compare(_json_object(response)) is True:
            seen.append(f"by id (GET {response.url} answered {response.status_code} with this canary)")
    list_url = coll.http.url_for(coll.spec.path)
    try:
        response = coll.http.get(coll.spec.path)
        if _unanswered(response.status_code):
            unchecked.append(f"{coll.env.name}'s list: GET {list_url} answered {response.status_code}")
        elif response.status_code in coll.spec.expect["list"]:
            if any(identity.compare(i) is True for i in coll.items_of(response, f"list in {coll.env.name}")):
                seen.append(f"in {coll.env.name}'s list (GET {list_url})")
        else:
            unchecked.append(f"{coll.env.name}'s list: GET {list_url} answered {response.status_code}")
    except CheckFailure as exc:  # dropped, timed out, not a list
        unchecked.append(f"{coll.env.name}'s list: {exc}")
    if store is not None:
        try:
            item = store.get(canary.item_id)
        except Exception as exc:  # botocore errors: the table could not be read
            unchecked.append(f"{store.where}: {type(exc).__name__}: {exc}")
        else:
            if item is not None and identity.compare(item) is True:
                seen.append(f"in {store.where}")
    return seen, unchecked


def _json_object(response) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _store(env, aws_for, spec):  # type: ignore[no-untyped-def]
    return Datastore(aws_for(env), spec) if spec.table and env.isolation.datastore else None


def _identity(gate, canary, direction: str) -> Identity:  # type: ignore[no-untyped-def]
    """The canary's identifying values that its own API keeps (read back by id): what a sighting must
    show. An API that keeps none cannot tell the canary from another record, so isolation is unverified."""
    what = f"canary {canary.collection.spec.name}/{canary.item_id} in {canary.env.name}"
    check, labels = f"canary-{direction}", {"env": canary.env.name}
    try:
        response = canary.collection.probe(canary.item_id)
    except RequestFailed as exc:
        gate.could_not_check("isolation", check, f"{what}: reading it back failed: {exc}", **labels)
    if not response.ok:
        gate.could_not_check("isolation", check, f"{what}: reading it back, GET {response.url} answered "
                             f"{response.status_code}", **labels)
    kept = canary.identity.kept_by(_json_object(response))
    if not kept.fields:
        gate.could_not_check("isolation", check, f"{what}: GET {response.url} returns none of its identifying "
                             f"values ({canary.identity.describe()}), so nothing tells it from another record "
                             "with the same id", **labels)
    return kept


def _judge_canary(gate, canary, seen_in, store, view, direction: str) -> None:  # type: ignore[no-untyped-def]
    seen, unchecked = _sightings(view, store, canary, _identity(gate, canary, direction))
    where = f"canary {canary.collection.spec.name}/{canary.item_id} written in {canary.env.name}"
    if not seen and unchecked:
        gate.could_not_check("isolation", f"canary-{direction}", f"{where}, looked for in {seen_in.name}: "
                             + "; ".join(unchecked), env=canary.env.name, seen_in=seen_in.name)
    gate.record("isolation.canaries_checked_count", 1, env=canary.env.name, seen_in=seen_in.name)
    gate.record("isolation.leaks_count", len(seen), check=f"canary-{direction}", env=canary.env.name,
                seen_in=seen_in.name)
    if seen:
        raise CheckFailure(f"leak: {where} is visible in {seen_in.name}: " + "; ".join(seen)
                           + (f" (could not check: {'; '.join(unchecked)})" if unchecked else ""))


def test_canary_stays_here(deploy_env, peer, canary, records, aws_for, gate) -> None:  # type: ignore[no-untyped-def]
    """A canary written in this environment is invisible in the peer (API by id, list, datastore)."""
    if deploy_env.protected:
        pytest.skip(f"{deploy_env.name} is protected: no canary is written here "
                    "(test_no_foreign_records reads it instead)")
    spec = _collection_spec(deploy_env)
    mine = canary()
    peer_spec = peer.crud.collection(spec.name) or spec
    view = records.collection(peer_spec, env=peer)
    _judge_canary(gate, mine, peer, _store(peer, aws_for, peer_spec), view, "out")


def test_peer_canary_stays_there(deploy_env, peer, canary, records, aws_for, gate) -> None:  # type: ignore[no-untyped-def]
    """A canary written in a writable peer is invisible here."""
    if peer.protected:
        pytest.skip(f"peer {peer.name} is protected: the gate never writes canaries there")
    spec = _collection_spec(deploy_env)
    theirs = canary(env=peer, collection=(peer.crud.collection(spec.name) or spec).name)
    view = records.collection(spec)
    _judge_canary(gate, theirs, deploy_env, _store(deploy_env, aws_for, spec), view, "in")


def test_no_foreign_records(deploy_env, records, aws_for, gate) -> None:  # type: ignore[no-untyped-def]
    """No record here carries another environment's run marker (read-only: safe on prod)."""
    leaks, unchecked = [], []
    for spec in deploy_env.crud.collections:
        coll = records.collection(spec)
        items = []
        try:
            response = coll.http.get(spec.path)
            if response.status_code in spec.expect["list"]:
                items += [(i, f"in {deploy_env.name}'s list") for i in coll.items_of(response)]
            else:
                unchecked.append(f"GET {response.url} answered {response.status_code}")
        except CheckFailure as exc:  # dropped, timed out, not a list
            unchecked.append(str(exc))
        store = _store(deploy_env, aws_for, spec)
        if store is not None:
            try:
                items += [(i, f"in {store.where}") for i in store.scan_marked()]
            except Exception as exc:  # botocore errors: the table could not be read
                unchecked.append(f"{store.where}: {type(exc).__name__}: {exc}")
        for item, where in items:
            origin = item.get(MARK_ENV)
            if origin and origin != deploy_env.name:
                leaks.append(f"{spec.name}/{item.get(spec.id_field)} written in {origin} is {where}")
    if unchecked and not leaks:
        gate.could_not_check("isolation", "foreign-records", "; ".join(unchecked), env=deploy_env.name)
    gate.record("isolation.leaks_count", len(leaks), check="foreign-records", env=deploy_env.name)
    if leaks:
        raise CheckFailure(f"leak: {len(leaks)} record(s) from other environments in {deploy_env.name}: "
                           + "; ".join(dict.fromkeys(leaks))
                           + (f" (could not check: {'; '.join(unchecked)})" if unchecked else ""))


def test_configuration_is_own(deploy_env, peers, frontend, gate) -> None:  # type: ignore[no-untyped-def]
    """config.js and the declared resources reference only this environment; nothing is shared."""
    problems = []
    fetched = fetch_config_js(frontend, deploy_env) if deploy_env.frontend_url else None
    values = fetched[1] if fetched else {}
    for peer in peers.values():
        markers = {f"{peer.name}'s API endpoint": peer.base_url.rstrip("/")}
        markers.update({f"{peer.name}'s table {t}": t for t in peer.tables})
        markers.update({f"{peer.name}'s bucket {b}": b for b in peer.buckets})
        if peer.aws.account_id and peer.aws.account_id != deploy_env.aws.account_id:
            markers[f"{peer.name}'s account {peer.aws.account_id}"] = peer.aws.account_id
        for key, value in values.items():
            for what, marker in markers.items():
                if marker and _mentions(value, marker) and not _own(deploy_env, marker):
                    problems.append(f"config.js {key} = {value!r} references {what}")
        if peer.base_url and peer.base_url.rstrip("/") == deploy_env.base_url.rstrip("/"):
            problems.append(f"shares its API endpoint {deploy_env.base_url} with {peer.name}")
        same_account = (deploy_env.aws.account_id or "") == (peer.aws.account_id or "") and \
            (deploy_env.aws.endpoint_url or "") == (peer.aws.endpoint_url or "")
        for table in set(deploy_env.tables) & set(peer.tables):
            if same_account:
                problems.append(f"shares table {table} with {peer.name}")
        for bucket in set(deploy_env.buckets) & set(peer.buckets):
            problems.append(f"shares bucket {bucket} with {peer.name}")  # bucket names are global
        if (deploy_env.isolation.separate_accounts and deploy_env.aws.account_id
                and deploy_env.aws.account_id == peer.aws.account_id):
            problems.append(f"shares AWS account {deploy_env.aws.account_id} with {peer.name}")
    gate.record("isolation.leaks_count", len(problems), check="configuration", env=deploy_env.name)
    if problems:
        raise CheckFailure(f"leak: configuration of {deploy_env.name} crosses environments: " + "; ".join(problems))


def _mentions(value: str, marker: str) -> bool:
    """``marker`` appears in ``value`` as a whole token (port 4000 is not port 40001)."""
    return re.search(r"(?<![\w.-])" + re.escape(marker) + r"(?![\w.-])", value) is not None


def _own(env, marker: str) -> bool:  # type: ignore[no-untyped-def]
    """A peer's value that is also this environment's own (e.g. the same table name in separate accounts)."""
    return marker in env.tables or marker in env.buckets or marker == env.base_url.rstrip("/") \
        or marker == (env.aws.account_id or None)


def test_cors_allows_only_own_origins(deploy_env, peers, api, gate) -> None:  # type: ignore[no-untyped-def]
    """The API's CORS policy admits this environment's origins (``isolation.cors_origins``; a same-origin
    frontend needs none) and no other: not a peer's, not any origin. A foreign origin granted credentials
    is the security suite's finding (test_cors_refuses_foreign_origins): one owner per finding."""
    allowed = [deploy_env.format(o) for o in deploy_env.isolation.cors_origins]
    path = deploy_env.probe_path
    api_origin = origin_of(deploy_env.base_url)
    peer_origins = {p.name: p.frontend_origin for p in peers.values()}
    answers = {origin: fetch(gate, "isolation", "CORS", api, "GET", path, headers={"Origin": origin}).headers
               for origin in cors_probe_origins(allowed, api_origin=api_origin, peers=peer_origins)}
    findings = [f for f in cors_findings(answers, allowed, api_origin=api_origin, peers=peer_origins)
                if f.owner == "isolation"]
    found = screen(gate, "cors", findings, deploy_env.security.allowlist)
    gate.record("isolation.leaks_count", len(found), check="cors", env=deploy_env.name)
    if found:
        raise CheckFailure(f"CORS of {deploy_env.name} (GET {api.url_for(path)}): "
                           + "; ".join(f.describe() for f in found))


def _status_with(api, path: str, header: str, value: str) -> int | str:  # type: ignore[no-untyped-def]
    """The status ``GET path`` answers with ``header: value``, or why nothing answered."""
    try:
        return int(api.get(path, headers={header: value}).status_code)
    except RequestFailed as exc:
        return str(exc)


def test_protected_endpoints_refuse_peer_pool_tokens(deploygate_run, deploy_env, peer, api, gate) -> None:  # type: ignore[no-untyped-def]
    """Each of this environment's ``isolation.protected_endpoints`` (GET) takes a token of its own
    ``auth.cognito`` user pool and refuses one of the peer's pool: a 2xx to the peer's token counts in
    ``isolation.foreign_token_accepted_count``. A token that cannot be had, an own token refused (the endpoint
    then cannot show what it does with a peer's), a 5xx or a timeout is could not check, never a finding."""
    paths = [deploy_env.format(p) for p in deploy_env.isolation.protected_endpoints]
    if not paths:
        pytest.skip(f"environment {deploy_env.name} declares no isolation.protected_endpoints")
    if deploy_env.auth is None or deploy_env.auth.cognito is None:
        pytest.skip(f"environment {deploy_env.name} has no auth.cognito: no token of its own user pool")
    if peer.auth is None or peer.auth.cognito is None:
        pytest.skip(f"peer {peer.name} has no auth.cognito: no token of its user pool to try here")
    labels = {"env": deploy_env.name, "peer": peer.name}
    tokens = deploygate_run.target.tokens
    try:
        own, theirs = tokens.get(deploy_env), tokens.get(peer)
    except Unverified as exc:
        gate.could_not_check("isolation", "foreign-token", str(exc), **labels)
    header, scheme = deploy_env.auth.header, deploy_env.auth.scheme
    accepted, unchecked = [], []
    for path in paths:
        url = api.url_for(path)
        mine = _status_with(api, path, header, own.header_value(scheme))
        if isinstance(mine, str) or not 200 <= mine < 300:
            unchecked.append(f"GET {url} " + (f"failed with {deploy_env.name}'s own token: {mine}"
                             if isinstance(mine, str) else f"answered {mine} to {deploy_env.name}'s own token "
                             f"(user pool {own.pool}): an endpoint that refuses its own pool's token cannot show "
                             "whether it refuses a peer's"))
            continue
        status = _status_with(api, path, header, theirs.header_value(scheme))
        if isinstance(status, str) or not (200 <= status < 300 or status in (401, 403)):
            answer = status if isinstance(status, str) else f"answered {status} (neither taken nor refused)"
            unchecked.append(f"GET {url} with {peer.name}'s token: {answer}")
            continue
        taken = 200 <= status < 300
        gate.record("isolation.foreign_token_accepted_count", int(taken), endpoint=path, **labels)
        if taken:
            accepted.append(f"GET {url} answered {status}")
    if accepted:
        shared = (f" (both environments sign in to the same user pool {own.pool}: they share their users)"
                  if own.pool and own.pool == theirs.pool else "")
        raise CheckFailure(f"foreign-token-accepted: {deploy_env.name} accepts a token of {peer.name}'s user pool "
                           f"{theirs.pool or '?'}: " + "; ".join(accepted) + shared
                           + (f" (could not check: {'; '.join(unchecked)})" if unchecked else ""))
    if unchecked:
        gate.could_not_check("isolation", "foreign-token", "; ".join(unchecked), **labels)
