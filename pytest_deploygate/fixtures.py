"""Fixtures bound to the selected environment: ``deploy_env``, ``peers``, ``api``, ``frontend``,
``http_client``, ``aws`` and ``gate``. ``pytest --fixtures`` shows what each yields and its scope.

PYTEST_DONT_REWRITE (loaded at pytest's start: see plugin.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from .aws import EnvironmentAWS
    from .config import Environment
    from .http import GateHTTP
    from .run import GateRun
    from .testkit import Canary, GateRecorder, Records

# Loaded at every pytest start, the gate active or not (so that `pytest --fixtures` documents them, and a test
# asking for one without --env is told why it cannot have it): this module imports nothing of the plugin at
# its top. The run state, what the fixtures hand to a test (testkit.py), requests, boto3 and the records
# machinery are imported by the fixtures that use them.


def _run(request: pytest.FixtureRequest) -> GateRun:
    from .run import get_run

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
    from .run import METRICS_KEY
    from .testkit import GateRecorder

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
    from .run import NOTE_PROPERTY
    from .session import get_session
    from .testkit import Records

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


@pytest.fixture
def canary(records: Records, deploy_env: Environment) -> Callable[..., Canary]:
    """Function scope. ``canary(env=None, collection=None)`` writes a canary record (run markers plus a
    unique ``deploygateCanary``) in ``env`` (default: the selected environment) through its API and
    returns a :class:`Canary`; it is deleted at teardown. Never writes to a protected environment."""

    def make(env: Environment | None = None, collection: str | None = None) -> Canary:
        import secrets

        from .failures import WriteRefused
        from .records import MARK_CANARY
        from .testkit import Canary

        env = env or deploy_env
        if env.protected:
            raise WriteRefused(f"canary: environment {env.name} is protected: the gate never writes canaries there")
        coll = records.collection(collection or env.isolation.collection, env)
        unique = f"{env.name}:{records.run.run_id}:{secrets.token_hex(4)}"
        item_id, body = records.create(coll, None, **{MARK_CANARY: unique})
        return Canary(env, coll, item_id, body)

    return make


@pytest.fixture
def gate(request: pytest.FixtureRequest) -> GateRecorder:
    """Function scope. The gate recorder: ``gate.record("smoke.health.latency_ms", 12.5,
    path="/health")`` records a metric judged at the end of the session against thresholds.toml
    (also across pytest-xdist workers). ``gate.timer(name)`` times a block."""
    from .run import METRICS_KEY
    from .testkit import GateRecorder

    sink = request.node.stash.setdefault(METRICS_KEY, [])
    return GateRecorder(sink, request.node.nodeid, request.node)


def __getattr__(name: str) -> Any:
    # what the fixtures hand to a test lives in testkit.py (imported when first used); still importable from here
    if name in ("Canary", "GateRecorder", "Records"):
        from . import testkit

        return getattr(testkit, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
