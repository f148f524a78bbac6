"""Isolation suite: no data and no configuration crosses environments.

- data: a canary written here is invisible in every peer (by id, in its list, in its datastore), and a
  writable peer's canary is invisible here; records carrying another environment's run marker are leaks.
  Canaries are never written to a protected environment: against prod the suite only reads prod.
- configuration: config.js and declared resources reference only this environment.
- CORS: this environment's API allows only its own origins.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from pytest_deploygate import current_environment
from pytest_deploygate.failures import CheckFailure
from pytest_deploygate.frontend import fetch_config_js
from pytest_deploygate.records import MARK_ENV, Collection, Datastore
from pytest_deploygate.security.posture import FOREIGN_ORIGIN

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


def _sightings(coll: Collection, store: Datastore | None, item_id: Any) -> list[str]:
    """Where ``item_id`` can be seen through ``coll`` (another environment's API) and ``store``."""
    seen = []
    response = coll.probe(item_id)
    if response.status_code not in coll.spec.expect["missing"]:
        seen.append(f"by id (GET {response.url} answered {response.status_code})")
    if coll.find(coll.list_items(f"list in {coll.env.name}"), item_id) is not None:
        seen.append(f"in {coll.env.name}'s list (GET {coll.http.url_for(coll.spec.path)})")
    if store is not None and store.get(item_id) is not None:
        seen.append(f"in {store.where}")
    return seen


def _store(env, aws_for, spec):  # type: ignore[no-untyped-def]
    return Datastore(aws_for(env), spec) if spec.table and env.isolation.datastore else None


def _judge_canary(gate, canary, seen_in, seen: list[str], direction: str) -> None:  # type: ignore[no-untyped-def]
    gate.record("isolation.canaries_checked_count", 1, env=canary.env.name, seen_in=seen_in.name)
    gate.record("isolation.leaks_count", len(seen), check=f"canary-{direction}", env=canary.env.name,
                seen_in=seen_in.name)
    if seen:
        raise CheckFailure(f"leak: canary {canary.collection.spec.name}/{canary.item_id} written in "
                           f"{canary.env.name} is visible in {seen_in.name}: " + "; ".join(seen))


def test_canary_stays_here(deploy_env, peer, canary, records, aws_for, gate) -> None:  # type: ignore[no-untyped-def]
    """A canary written in this environment is invisible in the peer (API by id, list, datastore)."""
    if deploy_env.protected:
        pytest.skip(f"{deploy_env.name} is protected: no canary is written here "
                    "(test_no_foreign_records reads it instead)")
    spec = _collection_spec(deploy_env)
    mine = canary()
    peer_spec = peer.crud.collection(spec.name) or spec
    view = records.collection(peer_spec, env=peer)
    _judge_canary(gate, mine, peer, _sightings(view, _store(peer, aws_for, peer_spec), mine.item_id), "out")


def test_peer_canary_stays_there(deploy_env, peer, canary, records, aws_for, gate) -> None:  # type: ignore[no-untyped-def]
    """A canary written in a writable peer is invisible here."""
    if peer.protected:
        pytest.skip(f"peer {peer.name} is protected: the gate never writes canaries there")
    spec = _collection_spec(deploy_env)
    theirs = canary(env=peer, collection=(peer.crud.collection(spec.name) or spec).name)
    view = records.collection(spec)
    _judge_canary(gate, theirs, deploy_env, _sightings(view, _store(deploy_env, aws_for, spec), theirs.item_id),
                  "in")


def test_no_foreign_records(deploy_env, records, aws_for, gate) -> None:  # type: ignore[no-untyped-def]
    """No record here carries another environment's run marker (read-only: safe on prod)."""
    leaks = []
    for spec in deploy_env.crud.collections:
        coll = records.collection(spec)
        items = [(i, f"in {deploy_env.name}'s list") for i in coll.list_items()]
        store = _store(deploy_env, aws_for, spec)
        if store is not None:
            items += [(i, f"in {store.where}") for i in store.scan_marked()]
        for item, where in items:
            origin = item.get(MARK_ENV)
            if origin and origin != deploy_env.name:
                leaks.append(f"{spec.name}/{item.get(spec.id_field)} written in {origin} is {where}")
    gate.record("isolation.leaks_count", len(leaks), check="foreign-records", env=deploy_env.name)
    if leaks:
        raise CheckFailure(f"leak: {len(leaks)} record(s) from other environments in {deploy_env.name}: "
                           + "; ".join(dict.fromkeys(leaks)))


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
    """The API's CORS policy admits this environment's origins and no foreign one."""
    allowed = [deploy_env.format(o) for o in deploy_env.isolation.cors_origins]
    path = deploy_env.probe_path
    problems = []
    foreign = [FOREIGN_ORIGIN] + [p.frontend_origin for p in peers.values()
                                  if p.frontend_origin and p.frontend_origin not in allowed]
    if "*" not in allowed:
        for origin in dict.fromkeys(foreign):
            acao = api.get(path, headers={"Origin": origin}).headers.get("Access-Control-Allow-Origin")
            if acao == "*":
                problems.append(f"answers Access-Control-Allow-Origin: * to {origin} (allowed: {', '.join(allowed)})")
            elif acao and acao == origin:
                problems.append(f"allows foreign origin {origin}")
    for origin in [o for o in allowed if o and o != "*"]:
        acao = api.get(path, headers={"Origin": origin}).headers.get("Access-Control-Allow-Origin")
        if acao not in (origin, "*"):
            problems.append(f"does not allow its own origin {origin} (answered {acao!r})")
    gate.record("isolation.leaks_count", len(problems), check="cors", env=deploy_env.name)
    if problems:
        raise CheckFailure(f"CORS of {deploy_env.name} (GET {api.url_for(path)}): " + "; ".join(problems))
