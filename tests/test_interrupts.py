"""Interrupted runs (SIGINT, SIGTERM) at any point, from configure to mid-load: exit 2, a report of this run
marked INTERRUPTED, no traceback, and nothing left behind (no record, no Locust, no demo process or temp
dir). (A killed run's leftovers and ``deploygate cleanup``: test_cleanup.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import requests

from gatehelpers import DEPLOYGATE, Gate, RunningDemo, running_processes, stale_report, wait_for

pytestmark = pytest.mark.e2e


def test_sigint_mid_run_leaves_a_partial_report_marked_interrupted(gate_project: Gate) -> None:
    proc = gate_project.start("--env", "staging", "-m", "gate and smoke", "-v", faults="staging:slow")
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # a check has passed (whatever the machine's speed), and the next slow one is in flight
        wait_for(lambda: any(" PASSED" in line for line in lines), timeout=240, what="a first passed check")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        reader.join(timeout=30)
        out = "".join(lines)
        assert proc.returncode == 2, out
    finally:
        if proc.poll() is None:
            proc.kill()
    report = json.loads((gate_project.path / ".deploygate" / "report.json").read_text())
    assert report["interrupted"] is True and report["exit_status"] == 2
    assert report["tests"]["passed"] >= 1, (report, out)
    deadline = time.monotonic() + 30
    while gate_project.leftovers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gate_project.leftovers() == []


def test_an_interrupt_on_an_instruction_without_a_line_is_still_an_interrupted_run(gate_project: Gate) -> None:
    """CPython 3.11+: a signal landing on an instruction with no source line leaves a traceback entry with
    ``tb_lineno`` None, on which pytest's own KeyboardInterrupt report crashes (seen in CI, mid-CRUD). The
    run must still end as interrupted: exit 2, a report marked INTERRUPTED, no traceback."""
    gate_project.pytester.makepyfile(test_ctrl_c="""
        import sys, types

        def test_first():
            pass

        def test_interrupted_here():
            try:  # exception handling adds instructions that have no source line
                pass
            except ValueError:
                pass
            frame = sys._getframe()
            where = next(2 * i for i, pos in enumerate(frame.f_code.co_positions()) if pos[0] is None)
            unnumbered = types.TracebackType(None, frame, where, -1)  # as if the signal had landed there
            assert unnumbered.tb_lineno is None
            raise KeyboardInterrupt().with_traceback(unnumbered)
    """)
    res = gate_project.run("--env", "staging", "--no-builtin-suites", "test_ctrl_c.py")
    assert res.ret == 2, res.output
    assert "GATE INTERRUPTED" in res.stdout and "KeyboardInterrupt" in res.stdout
    assert "Traceback" not in res.output and "INTERNALERROR" not in res.output
    assert res.report is not None and res.report["verdict"] == "INTERRUPTED" and res.report["interrupted"] is True
    assert res.report["tests"]["passed"] == 1
    # Even when another plugin's report of the interruption breaks, the gate report never says PASS.
    gate_project.pytester.makepyfile(brokenreporter="""
        def pytest_keyboard_interrupt(excinfo):
            raise RuntimeError("a reporter that breaks")
    """)
    broken = gate_project.run("--env", "staging", "--no-builtin-suites", "-p", "brokenreporter", "test_ctrl_c.py")
    assert broken.ret != 0 and "GATE PASS" not in broken.stdout, broken.output
    assert broken.report is not None and broken.report["verdict"] == "INTERRUPTED", broken.output


def _run_to_end(gate_project: Gate, test_file: str) -> tuple[subprocess.Popen[str], str]:
    """A gate run of ``test_file`` alone, started as one a test could signal (SIGINT at its default), to its end."""
    proc = gate_project.start("--env", "staging", "--no-builtin-suites", test_file)
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc, out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_dropped_in_a_callback_still_stops_the_run(gate_project: Gate, sig: int) -> None:
    """Python runs a signal's handler at the next instruction, and when that is inside a weakref callback
    (a ``WeakSet``'s, seen in CI mid-CRUD), the KeyboardInterrupt is printed as "Exception ignored" and
    dropped: the run went on to its verdict and exited 1. The next test must not start: exit 2, INTERRUPTED."""
    gate_project.pytester.makepyfile(test_lost=f"""
        import os, signal, weakref

        class Thing:
            pass

        def test_signalled_inside_a_callback():
            thing = Thing()

            def callback(ref):
                os.kill(os.getpid(), {int(sig)})  # its KeyboardInterrupt is raised here, in the callback
                for _ in range(1000):
                    pass

            ref = weakref.ref(thing, callback)
            del thing  # the callback runs, the interrupt is dropped, and this test goes on
            assert ref() is None

        def test_after():
            open("after-ran", "w").close()
    """)
    proc, out = _run_to_end(gate_project, "test_lost.py")
    assert "Exception ignored" in out and "KeyboardInterrupt" in out, out  # it was dropped, as in CI
    assert proc.returncode == 2, out
    assert not (gate_project.path / "after-ran").exists(), out
    assert "GATE INTERRUPTED" in out and "Traceback" not in out.split("Exception ignored")[0], out
    assert "its first KeyboardInterrupt was dropped or replaced" in out, out
    report = json.loads((gate_project.path / ".deploygate" / "report.json").read_text())
    assert report["verdict"] == "INTERRUPTED" and report["interrupted"] is True and report["exit_status"] == 2
    assert report["tests"]["passed"] == 1, report["tests"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_replaced_by_another_error_still_stops_the_run(gate_project: Gate, sig: int) -> None:
    """C code a signal lands in can replace the KeyboardInterrupt with an error of its own (CPython's import
    machinery raised ``TypeError: expected a message argument`` in CI, mid-CRUD): that test fails with it, and
    the next one must not start."""
    gate_project.pytester.makepyfile(test_replaced=f"""
        import os, signal

        def test_signalled_inside_c_code():
            try:
                os.kill(os.getpid(), {int(sig)})
                for _ in range(1000):
                    pass
            except KeyboardInterrupt:  # what such C code does to it
                raise TypeError("expected a message argument") from None

        def test_after():
            open("after-ran", "w").close()
    """)
    proc, out = _run_to_end(gate_project, "test_replaced.py")
    assert proc.returncode == 2, out
    assert not (gate_project.path / "after-ran").exists(), out
    assert "TypeError: expected a message argument" in out and "GATE INTERRUPTED" in out, out
    report = json.loads((gate_project.path / ".deploygate" / "report.json").read_text())
    assert report["verdict"] == "INTERRUPTED" and report["exit_status"] == 2 and report["tests"]["failed"] == 1


def test_a_test_that_catches_its_own_interrupt_does_not_stop_the_run(gate_project: Gate) -> None:
    """Only a dropped KeyboardInterrupt is raised again: one a test raises in itself and catches is its own."""
    gate_project.pytester.makepyfile(test_own_ctrl_c="""
        import os, signal
        import pytest

        def test_ctrl_c_handling():
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):
                    pass

        def test_after():
            pass
    """)
    proc, out = _run_to_end(gate_project, "test_own_ctrl_c.py")
    assert proc.returncode == 0, out
    assert "2 passed" in out and "GATE PASS" in out and "INTERRUPTED" not in out, out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("point", ["mid-crud", "mid-load"])
def test_interrupting_at_any_point_leaves_nothing_behind(gate_project: Gate, sig: int, point: str) -> None:
    """No test record in any table, no Locust, and a readable report marked interrupted."""
    path = gate_project.path / "deploygate.toml"
    path.write_text(path.read_text() + "\n[environments.staging.performance]\nduration_s = 30\nwarmup_s = 1\n")
    demo = RunningDemo(gate_project, ["staging:slow"] if point == "mid-crud" else [])
    marker = "gate and crud" if point == "mid-crud" else "gate and performance"
    proc = gate_project.start("--env", "staging", "-m", marker)
    try:
        if point == "mid-crud":  # a record exists: each slow CRUD step takes 3.5 s
            wait_for(lambda: demo.gate_records()["staging"] > 0, what="a gate record in staging")
        else:
            # a Locust exists from configure on (started ahead, waiting): wait for its load to reach staging
            def loading() -> bool:
                return bool(running_processes("locust", str(gate_project.path))) and requests.get(
                    demo.api("staging") + "/_demo/stats", timeout=10).json()["requests"] > 50

            wait_for(loading, timeout=120, what="load on staging")
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 2, out
        assert "GATE INTERRUPTED" in out
        report = json.loads((gate_project.path / ".deploygate" / "report.json").read_text())
        assert report["interrupted"] is True and report["verdict"] == "INTERRUPTED"
        assert demo.gate_records() == {"dev": 0, "staging": 0, "prod": 0}
        wait_for(lambda: not running_processes("locust", str(gate_project.path)), timeout=30,
                 what="locust to be gone")
    finally:
        if proc.poll() is None:
            proc.kill()
        demo.stop()


# --------------------------------------------------------------------------------------------------
# records: a write in flight when the run is interrupted is still removed


@pytest.mark.demo_faults("staging:slow")
def test_sigterm_mid_crud_still_removes_the_records(gate_project: Gate, running_demo: RunningDemo) -> None:
    proc = gate_project.start("--env", "staging", "-m", "gate and crud")
    try:
        wait_for(lambda: running_demo.gate_records()["staging"] > 0, timeout=180, what="a gate record in staging")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 2  # interrupted
    finally:
        if proc.poll() is None:
            proc.kill()
    assert running_demo.gate_records() == {"dev": 0, "staging": 0, "prod": 0}
    res = subprocess.run([DEPLOYGATE, "cleanup", "--env", "staging"], cwd=gate_project.path,
                         capture_output=True, text=True, timeout=120)
    assert "staging: 0 leftover gate record(s) found" in res.stdout


class Streamed:
    """A gate run in the background, verbose and unbuffered, its output read line by line as it comes (to
    signal it at a known moment)."""

    def __init__(self, gate: Gate, *args: str) -> None:
        env = dict(os.environ, TMPDIR=str(gate.tmp), PYTHONUNBUFFERED="1")
        env.pop("DEPLOYGATE_DEMO_FAULTS", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", *args],
                                     cwd=gate.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def saw(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def finish(self, timeout: float) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code, "".join(self.lines)


@pytest.mark.demo_faults("staging:slow")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_create_in_flight_when_interrupted_is_still_removed(gate_project: Gate, running_demo: RunningDemo,
                                                              sig: int) -> None:
    run = Streamed(gate_project, "--env", "staging", "-m", "gate and crud")
    try:
        # the lifecycle starts with its create: the slow fault holds the answer (and the write) for 3.5 s
        wait_for(lambda: run.saw("test_crud_lifecycle[stories]"), timeout=120, what="the CRUD check to start")
        time.sleep(1.0)
        assert running_demo.gate_records()["staging"] == 0  # not written yet: the create is in flight
        run.proc.send_signal(sig)
        code, out = run.finish(timeout=120)
        assert code == 2, out
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert running_demo.gate_records() == {"dev": 0, "staging": 0, "prod": 0}
    stats = requests.get(running_demo.api("staging") + "/_demo/stats", timeout=30).json()
    assert stats["writes"] >= 2  # the create did land (and was deleted): the interrupt did not stop it
    report = json.loads((gate_project.path / ".deploygate" / "report.json").read_text())
    assert report["verdict"] == "INTERRUPTED"
    assert not [n for n in report["notes"] if "could not be removed" in n]


# --------------------------------------------------------------------------------------------------
# before the verdict: interrupts during configure, collection and launch


def _interrupt_when(gate_project: Gate, proc: subprocess.Popen[str], ready: Any, what: str) -> str:
    try:
        wait_for(ready, timeout=120, what=what)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return out


def _running_id(gate_project: Gate) -> str:
    report = json.loads((gate_project.path / ".deploygate" / "report.json").read_text())
    return str(report["run_id"]) if report.get("verdict") == "RUNNING" else ""


def test_sigint_during_collection_writes_an_interrupted_report_of_this_run(gate_project: Gate) -> None:
    stale = stale_report(gate_project)
    gate_project.pytester.makepyfile(test_slow_import="""
        import pathlib, time
        pathlib.Path("collecting").write_text("yes")
        time.sleep(120)

        def test_never():
            pass
    """)
    proc = gate_project.start("--env", "staging", "--no-builtin-suites", "test_slow_import.py")
    run_ids: list[str] = []

    def collecting() -> bool:
        if (gate_project.path / "collecting").exists():
            run_ids.append(_running_id(gate_project))
            return True
        return False

    out = _interrupt_when(gate_project, proc, collecting, "collection to start")
    assert proc.returncode == 2, out
    report = json.loads(stale.read_text())
    assert report["verdict"] == "INTERRUPTED" and report["exit_status"] == 2
    assert report["run_id"] == run_ids[-1] != "dg-earlier-run"
    assert gate_project.leftovers() == [] and list(gate_project.tmp.glob("deploygate-*")) == []


def test_sigint_during_launch_writes_an_interrupted_report_and_leaves_no_temp_dir(gate_project: Gate) -> None:
    stale = stale_report(gate_project)
    proc = gate_project.start("--env", "staging", "-m", "gate and smoke")
    run_ids: list[str] = []

    def launching() -> bool:
        if list(gate_project.tmp.glob("deploygate-demo-*")):
            run_ids.append(_running_id(gate_project))
            return True
        return False

    out = _interrupt_when(gate_project, proc, launching, "the launch to start")
    assert proc.returncode == 2, out
    assert "passed" not in out.splitlines()[-1]
    report = json.loads(stale.read_text())
    assert report["verdict"] == "INTERRUPTED" and report["exit_status"] == 2
    assert report["run_id"] == run_ids[0] != "dg-earlier-run"
    wait_for(lambda: gate_project.leftovers() == [], timeout=30, what="demo processes to exit")
    assert list(gate_project.tmp.glob("deploygate-*")) == []


def test_ctrl_c_to_the_whole_job_during_the_provisioning_is_an_interruption(gate_project: Gate) -> None:
    """A terminal's Ctrl-C signals the whole foreground job: the reference deployment's servers die of it too,
    and a provisioning call failing on them may reach the gate before its own KeyboardInterrupt. The run is
    still interrupted (exit 2), not a deployment that "could not start" (exit 4)."""
    proc = gate_project.start("--env", "staging", "-m", "gate and smoke", own_group=True)
    try:
        wait_for(gate_project.leftovers, timeout=120, what="the reference deployment's servers")
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, out
    assert "could not start" not in out and "INTERNALERROR" not in out, out
    report = json.loads((gate_project.path / ".deploygate" / "report.json").read_text())
    assert report["verdict"] == "INTERRUPTED" and report["exit_status"] == 2
    wait_for(lambda: gate_project.leftovers() == [], timeout=30, what="demo processes to exit")
    assert list(gate_project.tmp.glob("deploygate-*")) == []


def test_sigint_during_configure_writes_an_interrupted_report(gate_project: Gate) -> None:
    stale = stale_report(gate_project)
    gate_project.pytester.makeconftest("""
        import pathlib, time
        import pytest

        @pytest.hookimpl(trylast=True)
        def pytest_configure(config):
            pathlib.Path("configuring").write_text("yes")
            time.sleep(120)
    """)
    proc = gate_project.start("--env", "staging", "-m", "gate")
    out = _interrupt_when(gate_project, proc, (gate_project.path / "configuring").exists, "configure")
    assert proc.returncode == 2, out
    report = json.loads(stale.read_text())
    assert report["verdict"] == "INTERRUPTED" and report["run_id"] != "dg-earlier-run"
