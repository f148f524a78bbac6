"""Bringing the target up and making sure it answers: the launched reference deployment and the
pre-flight reachability check (a dead environment is named once, the gate could not run)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from . import __version__
from .run import GateRun

DEMO_STATE = Path(".deploygate") / "demo" / "demo.json"


def demo_stages(run: GateRun) -> dict[str, str]:
    return {n: e.stage for n, e in run.project.environments.items() if e.launch == "demo"}


def preflight(config: pytest.Config, run: GateRun) -> None:
    """A dead environment fails fast, named once, instead of every check timing out."""
    from .http import RequestFailed, client_for

    env = run.environment
    if not env.base_url:
        return
    client = client_for(env, secrets=run.secrets, check=f"pre-flight of {env.name}")
    try:
        # headers only: whether something answers, not what (a huge or endless body is the checks' business)
        client.get("", stream=True).close()
    except RequestFailed as exc:
        if not exc.unreachable:
            return  # something answers (TLS trouble, slowness): the checks will say what is wrong
        run.error = f"environment {env.name} is unreachable: {exc}"
        from .report.json_report import write_error_report

        write_error_report(run, __version__)
        raise pytest.UsageError(f"deploygate: {run.error} (the gate could not run; --no-preflight skips this "
                                "check)") from None
    finally:
        client.close()


def launch_demo(config: pytest.Config, run: GateRun, stages: dict[str, str]) -> None:
    try:
        from .demo.faults import FAULTS_ENV, FaultError, parse_faults
        from .demo.launcher import Demo, DemoError
    except ImportError as exc:  # pragma: no cover - moto missing
        raise pytest.UsageError(f"deploygate: the reference deployment needs moto: {exc}") from None
    try:
        faults = parse_faults(os.environ.get(FAULTS_ENV, ""), stages)
    except FaultError as exc:
        raise pytest.UsageError(f"deploygate: {FAULTS_ENV}: {exc}") from None
    running = None if os.environ.get(FAULTS_ENV) else Demo.find(Path(config.rootpath) / DEMO_STATE)
    if running is not None and set(stages) <= set(running.environments):
        run.demo_note = f"reusing the reference deployment started by pid {running.state['owner_pid']}"
        demo = running
    else:
        workdir = Path(tempfile.mkdtemp(prefix="deploygate-demo-"))
        try:
            demo = Demo.start(stages, faults, workdir)
        except BaseException as exc:  # an interrupt mid-launch too: the processes are stopped, the files go
            shutil.rmtree(workdir, ignore_errors=True)
            if isinstance(exc, (DemoError, OSError)):
                raise pytest.UsageError(f"deploygate: could not start the reference deployment: {exc}") from None
            raise

        def stop() -> None:
            try:
                demo.stop()
            finally:
                shutil.rmtree(workdir, ignore_errors=True)

        config.add_cleanup(stop)
        active = demo.state["faults"]
        run.demo_note = "launched the reference deployment" + (f" with faults {active}" if active else "")
    run.demo = demo
    run.resolve(demo.environments)
