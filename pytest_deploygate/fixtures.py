"""Fixtures bound to the selected environment: ``deploy_env``, ``peers``, ``api``, ``frontend``,
``http_client``, ``aws`` and ``gate``. ``pytest --fixtures`` shows what each yields and its scope."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from .aws import EnvironmentAWS
from .config import Environment
from .gate import Metric, make_metric
from .http import GateHTTP, client_for
from .run import METRICS_KEY, GateRun, get_run


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
    environment's timeouts, connection-error retries, auth header and timing; closed after the test."""
    made: list[GateHTTP] = []

    def factory(base_url: str | None = None, env: Environment | None = None) -> GateHTTP:
        target = env or deploygate_run.environment
        client = client_for(target, base_url, secrets=deploygate_run.secrets, check=request.node.name)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


@pytest.fixture
def api(http_client: Callable[..., GateHTTP]) -> GateHTTP:
    """Function scope. A ``requests.Session`` bound to the environment's API ``base_url``:
    ``api.get("/health")``. Timeouts on every request, retries on connection errors only, the
    environment's auth header, ``response.elapsed_ms`` and ``api.timings`` for latency."""
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
def aws(deploy_env: Environment) -> EnvironmentAWS:
    """Session scope. AWS access in the environment's account
    (:class:`pytest_deploygate.aws.EnvironmentAWS`): ``aws.client("dynamodb")`` is a boto3 client
    with the environment's profile, region, ``endpoint_url`` and timeouts; ``aws.session`` the
    boto3 session."""
    return EnvironmentAWS(deploy_env)


class GateRecorder:
    """Records named metrics for the gate from inside a test."""

    def __init__(self, sink: list[dict[str, Any]], nodeid: str) -> None:
        self._sink = sink
        self.nodeid = nodeid

    def record(self, name: str, value: float, unit: str | None = None, **labels: object) -> Metric:
        """Record ``name`` (``category.name_unit``, e.g. ``smoke.health.latency_ms``) = ``value``;
        ``labels`` tell instances apart (``path="/health"``). Judged against thresholds.toml."""
        metric = make_metric(name, value, unit, labels, self.nodeid)
        self._sink.append(metric.to_dict())
        return metric

    @contextmanager
    def timer(self, name: str, **labels: object) -> Iterator[None]:
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
    return GateRecorder(sink, request.node.nodeid)
