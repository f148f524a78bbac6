"""The launcher's own failure paths: a server that cannot start fails the launch with its name and log, at
once (no wait for the start timeout), and leaves no process behind."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gatehelpers import demo_processes, wait_for
from pytest_deploygate.demo import launcher
from pytest_deploygate.demo.faults import parse_faults

pytestmark = pytest.mark.e2e  # starts the fork server and moto servers as child processes

STAGES = {"dev": "dev", "staging": "staging"}


def test_a_fork_server_that_cannot_load_fails_the_launch_with_its_log(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher, "MOTO_BACKENDS", ("dynamodb", "nosuchbackend"))
    start = time.monotonic()
    with pytest.raises(launcher.DemoError) as failed:
        launcher.Demo.start(STAGES, parse_faults("", STAGES), tmp_path / "demo")
    message = str(failed.value)
    assert message.startswith("reference deployment: dev-aws was not started: the fork server exited with 1; log ")
    assert "No module named 'moto.nosuchbackend'" in message, message  # the fork server's log says why
    assert time.monotonic() - start < launcher.START_TIMEOUT_S / 2  # said at once, not at the timeout
    wait_for(lambda: demo_processes(str(tmp_path)) == [], timeout=30, what="no process left")


def test_a_server_that_dies_before_it_is_ready_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the staging API's deploy sets a sweep interval that is not a number: the API stops before it serves
    wire = launcher.wire_environment

    def miswire(env: launcher.EnvironmentSetup) -> None:
        wire(env)
        if env.name == "staging":
            env.api_env["DEMO_TTL_SWEEP_S"] = "never"

    monkeypatch.setattr(launcher, "wire_environment", miswire)
    with pytest.raises(launcher.DemoError) as failed:
        launcher.Demo.start(STAGES, parse_faults("", STAGES), tmp_path / "demo")
    message = str(failed.value)
    assert message.startswith("reference deployment: staging-api exited before it was ready; log "), message
    assert "could not convert string to float: 'never'" in message, message  # its log says why
    wait_for(lambda: demo_processes(str(tmp_path)) == [], timeout=30, what="no process left")
