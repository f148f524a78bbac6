"""Bringing the target up and making sure it answers: the launched reference deployment and the
pre-flight reachability check (a dead environment is named once, the gate could not run)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pytest

    from .config import Project
    from .run import GateRun

#: where a reference deployment started by ``deploygate demo`` leaves its state, under the project root
DEMO_STATE_DIR = Path(".deploygate") / "demo"
DEMO_STATE_FILE = "demo.json"


def demo_stages(project: Project) -> dict[str, str]:
    """The environments this project launches as the reference deployment (``launch = "demo"``): name -> stage."""
    return {n: e.stage for n, e in project.environments.items() if e.launch == "demo"}


class TargetUnavailable(Exception):
    """The gate could not run: the target could not be launched or does not answer (exit 4)."""


def preflight(run: GateRun) -> None:
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
        raise TargetUnavailable(f"environment {env.name} is unreachable: {exc}") from None
    finally:
        client.close()


def launch_demo(config: pytest.Config, run: GateRun, stages: Mapping[str, str]) -> None:
    """Start the reference deployment for ``stages`` (or reuse one ``deploygate demo`` runs for this
    project) and point the run's target at it; it is stopped at the end of the session."""
    try:
        from .demo.faults import FAULTS_ENV, FaultError, parse_faults
        from .demo.launcher import Demo, DemoError
    except ImportError as exc:  # pragma: no cover - moto missing
        raise TargetUnavailable(f"the reference deployment needs moto: {exc}") from None
    try:
        faults = parse_faults(os.environ.get(FAULTS_ENV, ""), stages)
    except FaultError as exc:
        raise TargetUnavailable(f"{FAULTS_ENV}: {exc}") from None
    target = run.target
    state = Path(config.rootpath) / DEMO_STATE_DIR / DEMO_STATE_FILE
    running = None if os.environ.get(FAULTS_ENV) else Demo.find(state)
    if running is not None and set(stages) <= set(running.environments):
        target.note = f"reusing the reference deployment started by pid {running.state['owner_pid']}"
        demo = running
    else:
        workdir = Path(tempfile.mkdtemp(prefix="deploygate-demo-"))
        try:
            demo = Demo.start(stages, faults, workdir)
        except BaseException as exc:  # an interrupt mid-launch too: the processes are stopped, the files go
            shutil.rmtree(workdir, ignore_errors=True)
            if isinstance(exc, Exception):  # one line, no traceback (Demo.start's DemoError names what failed)
                detail = exc if isinstance(exc, (DemoError, OSError)) else f"{type(exc).__name__}: {exc}"
                raise TargetUnavailable(f"could not start the reference deployment: {detail}") from None
            raise  # an interrupt stays one

        def stop() -> None:
            try:
                demo.stop()
            finally:
                shutil.rmtree(workdir, ignore_errors=True)

        config.add_cleanup(stop)
        active = demo.state["faults"]
        target.note = "launched the reference deployment" + (f" with faults {active}" if active else "")
    target.demo = demo
    target.resolve(demo.environments)
