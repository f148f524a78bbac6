"""Performance suite: real load from Locust (a subprocess), judged against thresholds.toml.

Driven by ``performance``: users, spawn rate, duration, warm-up, weighted tasks (or your own locustfile),
``workers`` for ``--processes``, ``distributed`` for a master that remote workers join. On a protected
environment there is no load unless ``--allow-load``: a light sequential latency probe is judged instead.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_deploygate.http import CheckFailure, WriteRefused, auth_credential
from pytest_deploygate.load import PRESTARTED, LoadResult, LocustRun, Progress, load_workdir, probe

if TYPE_CHECKING:
    from pytest_deploygate.config import Environment
    from pytest_deploygate.run import GateRun

pytestmark = [pytest.mark.gate, pytest.mark.performance, pytest.mark.xdist_group("deploygate-load")]


def _record(gate, result: LoadResult, samples: int | None = None, **labels: str) -> None:  # type: ignore[no-untyped-def]
    # the order the verdict table shows them in: the seeds' gate figures first. With ``samples`` the rates are
    # judged on their confidence interval (a 20-request probe cannot tell 95 % from 100 %: INCONCLUSIVE)
    gate.record("performance.success_rate", result.success_rate, samples=samples, **labels)
    gate.record("performance.avg_ms", result.avg_ms, **labels)
    gate.record("performance.p95_ms", result.p95_ms, **labels)
    gate.record("performance.error_rate", result.error_rate, samples=samples, **labels)
    gate.record("performance.p50_ms", result.p50_ms, **labels)
    gate.record("performance.p99_ms", result.p99_ms, **labels)
    gate.record("performance.rps", result.rps, "req/s", **labels)


def _live_line(config, duration_s: float):  # type: ignore[no-untyped-def]
    """Progress in the terminal while the load runs (a rewritten line on a TTY, a line every 2 s in logs)."""
    tr = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    if tr is None or capman is None:
        return None, lambda: None
    tty = bool(getattr(tr, "isatty", False))
    last = [0.0]

    def show(progress: Progress) -> None:
        now = time.monotonic()
        if not tty and now - last[0] < 2.0:
            return
        first = last[0] == 0.0
        last[0] = now
        with capman.global_and_fixture_disabled():
            if tty:
                tr._tw.write(("\n" if first else "\r") + progress.line(duration_s).ljust(100))
            else:
                if first:
                    tr._tw.line("")
                tr._tw.line(progress.line(duration_s))

    def done() -> None:
        if tty:
            with capman.global_and_fixture_disabled():
                tr._tw.line("")

    return show, done


def _load_auth(env: Environment, run: GateRun) -> str | None:
    """The auth header value the load sends: what every gate client sends (``auth.value``, else a token of the
    environment's ``auth.cognito`` user pool; none to be had is could not check)."""
    credential = auth_credential(env, run.target.tokens)
    return credential[0] if credential is not None else None


def test_performance(deploy_env, deploygate_run, api, gate, request) -> None:  # type: ignore[no-untyped-def]
    """The environment holds its load: success rate, average and percentile latency within the policy."""
    spec = deploy_env.performance
    if not spec.tasks and not spec.locustfile:
        pytest.skip(f"environment {deploy_env.name} declares no performance tasks")
    if deploy_env.load_refused(deploygate_run.allow_load):
        probed = probe(api, spec.tasks, spec.probe_requests)
        gate.record("performance.requests_count", probed.requests, mode="probe")
        _record(gate, probed, samples=probed.requests, mode="probe")
        gate.note(f"{deploy_env.name} is protected: {probed.requests} sequential probe requests "
                  "instead of load (pass --allow-load to run the load test)")
        return
    if deploy_env.read_only(deploygate_run.allow_writes) and any(t.writes for t in spec.tasks):
        raise WriteRefused(f"performance: the load tasks of {deploy_env.name} write, and it is protected: "
                           "pass --allow-writes as well as --allow-load")

    if spec.locustfile and not Path(spec.locustfile).is_file():
        raise CheckFailure(f"performance: locustfile {spec.locustfile} not found (performance.locustfile, "
                           f"relative to {Path.cwd()})")
    runner = LocustRun(deploy_env, spec, load_workdir(deploygate_run.settings.report_path),
                       auth_value=_load_auth(deploy_env, deploygate_run), allow_writes=deploygate_run.allow_writes)
    request.addfinalizer(runner.stop)  # an interrupted run never leaves Locust behind
    show, done = _live_line(request.config, spec.duration_s)
    try:
        # the Locust process the session started while pytest collected, if any: released now, or replaced
        outcome = runner.run(deploygate_run.policy, show, request.config.stash.get(PRESTARTED, None))
    finally:
        done()
    for name, path in outcome.artifacts.items():
        gate.artifact(name, path)
    result = outcome.result
    if result is None:
        last = (outcome.log_tail.strip().splitlines() or [""])[-1]
        why = outcome.aborted or f"exit code {outcome.exit_code}"
        d = spec.distributed
        if d is not None and "Gave up waiting for workers" in outcome.log_tail:
            raise CheckFailure(f"performance: fewer than {d.expect_workers} Locust workers joined the master at "
                               f"{d.bind_host}:{d.bind_port} within {d.max_wait_s:g} s (distributed.max_wait_s); "
                               "no load was run")
        raise CheckFailure(f"performance: Locust produced no results ({why}): {last}".rstrip(": "))
    gate.record("performance.requests_count", result.requests)
    # the locustfile writes, and the environment is read-only: that is the finding, whatever the figures say
    refused = WriteRefused(f"performance: {outcome.refused} requests of the load were writes to protected "
                           f"{deploy_env.name} and were refused, none sent (pass --allow-writes as well as "
                           f"--allow-load to let the load write); e.g. {outcome.refused_example}"
                           ) if outcome.refused else None
    if result.requests < spec.min_requests:
        raise refused or CheckFailure(f"performance: too few requests to judge: {result.requests} after the "
                                      f"warm-up, fewer than min_requests = {spec.min_requests}")
    _record(gate, result, samples=result.requests)  # rates from few requests are judged on their interval
    for endpoint, figures in result.endpoints.items():
        for key, value in figures.items():
            gate.record(f"performance.endpoint.{key}", value, endpoint=endpoint)
    if refused is not None:
        raise refused
    if outcome.aborted:
        raise CheckFailure(f"performance: {outcome.aborted}")
