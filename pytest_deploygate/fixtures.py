"""Fixtures bound to the selected environment: ``deploy_env``, ``peers``, ``api``, ``frontend``,
``http_client``, ``aws`` and ``gate``. ``pytest --fixtures`` shows what each yields and its scope."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from .failures import Unverified, WriteRefused
from .run import ARTIFACT_PROPERTY, FINDING_PROPERTY, METRICS_KEY, NOTE_PROPERTY, GateRun, get_run

if TYPE_CHECKING:  # pragma: no cover
    # Loaded at every pytest start (so that `pytest --fixtures` documents them): requests, boto3 and the
    # records machinery are imported by the fixtures that use them.
    from .aws import EnvironmentAWS
    from .config import Environment
    from .gate import Metric
    from .http import GateHTTP
    from .records import Collection, Datastore, Identity, Ledger
    from .sections import CollectionSpec


def _run(request: pytest.FixtureRequest) -> GateRun:
    run = get_run(request.config)
    if run is None:
        pytest.fail("deploygate: no environment selected: run pytest with --env NAME "
                    "(or set DEPLOYGATE_ENV)", pytrace=False)
    return run


@pytest.fixture(scope="session")
def deploygate_run(request: pytest.FixtureRequest) -> GateRun:
    """Session scope. The gate run: run id, selected environment name, policy and the
    ``allow_writes`` / ``allow_load`` switches. Fails the test if no ``--env`` was given."""
    return _run(request)


@pytest.fixture(scope="session")
def deploy_env(deploygate_run: GateRun) -> Environment:
    """Session scope. The selected environment (:class:`pytest_deploygate.config.Environment`):
    name, stage, ``base_url``, ``frontend_url``, ``protected``, ``aws`` settings, declared
    ``tables``/``buckets`` and the smoke-check settings, with addresses of launched deployments
    filled in."""
    return deploygate_run.environment


@pytest.fixture(scope="session")
def peers(deploygate_run: GateRun) -> dict[str, Environment]:
    """Session scope. The other environments of the project, by name (for isolation checks)."""
    return deploygate_run.peers


@pytest.fixture
def http_client(deploygate_run: GateRun, request: pytest.FixtureRequest) -> Iterator[Callable[..., GateHTTP]]:
    """Function scope. A factory ``http_client(base_url=None, env=None)`` of HTTP clients
    (:class:`pytest_deploygate.http.GateHTTP`, a ``requests.Session``) bound to a base URL, with the
    environment's timeouts, total deadline, body cap, retries of refused connections and dropped reads,
    auth header and timing; closed after the test. Whatever the base URL, a write to any protected
    environment's URL is refused unless ``--allow-writes``, and a 5xx answer that leaks a stack trace
    or version is a ``security.errors`` finding of this test."""
    from .http import client_for, leak_watcher, protected_guard

    made: list[GateHTTP] = []
    guard = protected_guard(deploygate_run.environments.values(),
                            deploygate_run.allow_writes)
    # the error probes inspect their own error answers (and count them under probe=)
    scan = "error_probe" not in request.fixturenames
    recorder = GateRecorder(request.node.stash.setdefault(METRICS_KEY, []), request.node.nodeid, request.node)

    def factory(base_url: str | None = None, env: Environment | None = None) -> GateHTTP:
        target = env or deploygate_run.environment
        watcher = leak_watcher(recorder, target.security.allowlist, request.node.nodeid) if scan else None
        client = client_for(target, base_url, secrets=deploygate_run.secrets, check=request.node.name,
                            allow_writes=deploygate_run.allow_writes, guard=guard, on_error_answer=watcher,
                            tokens=deploygate_run.target.tokens)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


@pytest.fixture
def api(http_client: Callable[..., GateHTTP]) -> GateHTTP:
    """Function scope. A ``requests.Session`` bound to the environment's API ``base_url``:
    ``api.get("/health")``. Timeouts, a total deadline and a body cap on every request, retries of
    refused connections and dropped reads, the environment's auth header, ``response.elapsed_ms`` and
    ``api.timings`` for latency; writes to a protected environment's URLs are refused."""
    return http_client()


@pytest.fixture
def frontend(http_client: Callable[..., GateHTTP], deploy_env: Environment) -> GateHTTP:
    """Function scope. Like ``api`` but bound to the environment's ``frontend_url`` (no auth header)."""
    if not deploy_env.frontend_url:
        pytest.skip(f"environment {deploy_env.name} declares no frontend_url")
    base = deploy_env.frontend_url.rsplit("/", 1)[0] + "/"
    client = http_client(base)
    client.headers.pop(deploy_env.auth.header if deploy_env.auth else "Authorization", None)
    return client


@pytest.fixture(scope="session")
def aws_for(deploygate_run: GateRun) -> Callable[[Environment], EnvironmentAWS]:
    """Session scope. ``aws_for(env)``: AWS access (:class:`pytest_deploygate.aws.EnvironmentAWS`) in
    any environment's account, e.g. a peer's, cached per environment. Protected environments refuse
    write calls unless ``--allow-writes``."""
    from .aws import EnvironmentAWS

    cache: dict[str, EnvironmentAWS] = {}

    def factory(env: Environment) -> EnvironmentAWS:
        if env.name not in cache:
            cache[env.name] = EnvironmentAWS(env, allow_writes=deploygate_run.allow_writes)
        return cache[env.name]

    return factory


@pytest.fixture(scope="session")
def aws(aws_for: Callable[[Environment], EnvironmentAWS], deploy_env: Environment) -> EnvironmentAWS:
    """Session scope. AWS access in the environment's account
    (:class:`pytest_deploygate.aws.EnvironmentAWS`): ``aws.client("dynamodb")`` is a boto3 client
    with the environment's profile, region, ``endpoint_url`` and timeouts; ``aws.session`` the
    boto3 session. On a protected environment write calls are refused unless ``--allow-writes``."""
    return aws_for(deploy_env)


class Records:
    """Creates records through environments' APIs and deletes them all at teardown."""

    def __init__(self, run: GateRun, http_client: Callable[..., GateHTTP], ledger: Ledger,
                 aws_for: Callable[[Environment], EnvironmentAWS] | None = None) -> None:
        self.run = run
        self._http_client = http_client
        self.ledger = ledger
        self._aws_for = aws_for

    def collection(self, spec: CollectionSpec | str | None = None, env: Environment | None = None) -> Collection:
        """CRUD access to ``spec`` (a ``crud.collections`` entry or its name; default the first) in
        ``env`` (default the selected environment); what it creates is tracked by the ledger."""
        from .records import Collection
        from .sections import CollectionSpec

        env = env or self.run.environment
        if not isinstance(spec, CollectionSpec):
            found = env.crud.collection(spec)
            if found is None:
                pytest.skip(f"environment {env.name} declares no crud collection"
                            + (f" named {spec!r}" if spec else ""))
            spec = found
        return Collection(self._http_client(env=env), env, spec, self.run.run_id)

    def create(self, collection: Collection, template: dict[str, Any] | None = None,
               **extra: Any) -> tuple[Any, dict[str, Any]]:
        """Create a marked record (deleted at teardown) and return ``(id, body sent)``. The ledger knows
        of it before the request leaves, so a create interrupted in flight is still removed."""
        from .records import MARK_RECORD, Identity, record_marker

        body = collection.body(collection.spec.create if template is None else template, extra)
        if collection.env.crud.markers:
            body[MARK_RECORD] = record_marker(self.run.run_id)
        entry = self.ledger.intend(collection, Identity.of(body, self.run.run_id, markers_only=True),
                                   self._store_of(collection))
        steps = len(collection.steps)
        try:
            item_id, _ = collection.create(body)
        except BaseException:
            entry.answered = len(collection.steps) > steps
            raise
        entry.item_id, entry.answered = item_id, True
        return item_id, body

    def deleted(self, collection: Collection, item_id: Any) -> None:
        """Tell the ledger a record was deleted by the test itself."""
        self.ledger.discard(collection, item_id)

    def _store_of(self, collection: Collection) -> Callable[[], Datastore | None]:
        from .records import Datastore

        def store() -> Datastore | None:
            if self._aws_for is None or not collection.spec.table:
                return None
            return Datastore(self._aws_for(collection.env), collection.spec)

        return store


@pytest.fixture
def records(deploygate_run: GateRun, http_client: Callable[..., GateHTTP],
            aws_for: Callable[[Environment], EnvironmentAWS], request: pytest.FixtureRequest) -> Iterator[Records]:
    """Function scope. Test records through the environments' APIs: ``records.collection("stories")``
    gives CRUD access, ``records.create(collection)`` writes a record carrying the run markers
    (``deploygateRun``, ``deploygateEnv``, ``deploygateRecord``, ``deploygateCreatedAt``) and a TTL.
    Everything created is deleted at teardown, also when the test fails or the run is interrupted (a
    create still in flight then is found by its markers); deletes answered 5xx are retried. A record
    that still cannot be removed fails the teardown and is named, with the ``deploygate cleanup``
    command to run, in the gate summary."""
    from .records import Ledger, describe_left
    from .session import get_session

    ledger = Ledger()
    # the session purges ledgers whose teardown never ran (an interrupted run)
    ledgers = session.ledgers if (session := get_session(request.config)) is not None else []
    ledgers.append(ledger)
    try:
        yield Records(deploygate_run, http_client, ledger, aws_for)
    finally:
        left = ledger.purge()
        if ledger in ledgers:
            ledgers.remove(ledger)
        if left:
            text = "deploygate: " + describe_left(left, deploygate_run.run_id)
            request.node.user_properties.append((NOTE_PROPERTY, text))
            pytest.fail(text, pytrace=False)


@dataclass(frozen=True)
class Canary:
    """A marked record written in one environment to prove it is not visible anywhere else."""

    env: Environment
    collection: Collection
    item_id: Any
    body: dict[str, Any]

    @property
    def identity(self) -> Identity:
        """What tells this canary from any other record: its markers and unique values, not its id."""
        from .records import Identity

        return Identity.of(self.body, self.collection.run_id)


@pytest.fixture
def canary(records: Records, deploy_env: Environment) -> Callable[..., Canary]:
    """Function scope. ``canary(env=None, collection=None)`` writes a canary record (run markers plus a
    unique ``deploygateCanary``) in ``env`` (default: the selected environment) through its API and
    returns a :class:`Canary`; it is deleted at teardown. Never writes to a protected environment."""

    def make(env: Environment | None = None, collection: str | None = None) -> Canary:
        from .records import MARK_CANARY

        env = env or deploy_env
        if env.protected:
            raise WriteRefused(f"canary: environment {env.name} is protected: the gate never writes canaries there")
        coll = records.collection(collection or env.isolation.collection, env)
        unique = f"{env.name}:{records.run.run_id}:{secrets.token_hex(4)}"
        item_id, body = records.create(coll, None, **{MARK_CANARY: unique})
        return Canary(env, coll, item_id, body)

    return make


class GateRecorder:
    """Records named metrics for the gate from inside a test."""

    def __init__(self, sink: list[dict[str, Any]], nodeid: str, item: pytest.Item | None = None) -> None:
        self._sink = sink
        self.nodeid = nodeid
        self._item = item

    def note(self, text: str) -> None:
        """A line for the gate summary and the JSON report's ``notes``."""
        if self._item is not None:
            self._item.user_properties.append((NOTE_PROPERTY, text))

    def finding(self, check: str, severity: str, text: str) -> None:
        """A security finding (or other itemised problem) listed in the report under ``findings``."""
        if self._item is not None:
            self._item.user_properties.append(
                (FINDING_PROPERTY, json.dumps({"check": check, "severity": severity.upper(), "text": text})))

    def artifact(self, name: str, path: str) -> None:
        """Attach a file (a load report, a scan result) to the gate report and the JUnit properties (its path
        relative to the report directory: no absolute local path in JUnit)."""
        if self._item is not None:
            run = get_run(self._item.config)
            if run is not None:
                from .report.metadata import relative_to

                path = relative_to(path, run.settings.report_path.parent)
            self._item.user_properties.append((ARTIFACT_PROPERTY, f"{name}={path}"))

    def record(self, name: str, value: float, unit: str | None = None, *, samples: int | None = None,
               values: Sequence[float] = (), **labels: object) -> Metric:
        """Record ``name`` (``category.name_unit``, e.g. ``smoke.health.latency_ms``) = ``value``;
        ``labels`` tell instances apart (``path="/health"``). Judged against thresholds.toml.
        ``samples``: how many observations stand behind ``value`` (the requests behind a rate: a rate from
        few requests is judged on its confidence interval, and ``min_samples`` applies); ``values``: the
        observations themselves, when few (shown in the report)."""
        from .gate import make_metric

        metric = make_metric(name, value, unit, labels, self.nodeid, samples, values)
        self._sink.append(metric.to_dict())
        return metric

    def could_not_check(self, category: str, check: str, why: str, **labels: Any) -> NoReturn:
        """Fail the test as *not verified* (never as a finding): records ``<category>.unverified_count``
        = 1 for ``check`` and raises :class:`pytest_deploygate.failures.Unverified` saying why."""
        self.record(f"{category}.unverified_count", 1, None, check=check, **labels)
        raise Unverified(f"{check}: could not check: {why}")

    @contextmanager
    def timer(self, name: str, **labels: Any) -> Iterator[None]:
        """Record the wall time of the ``with`` block, in ms, as ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.record(name, (time.perf_counter() - start) * 1000.0, "ms", **labels)


@pytest.fixture
def gate(request: pytest.FixtureRequest) -> GateRecorder:
    """Function scope. The gate recorder: ``gate.record("smoke.health.latency_ms", 12.5,
    path="/health")`` records a metric judged at the end of the session against thresholds.toml
    (also across pytest-xdist workers). ``gate.timer(name)`` times a block."""
    sink = request.node.stash.setdefault(METRICS_KEY, [])
    return GateRecorder(sink, request.node.nodeid, request.node)
