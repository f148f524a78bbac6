"""The load runner's pure parts: Locust's histogram percentile, the summary of its JSON results, the probe's
figures, the early-abort rule, the live line, the CSV/JSON files it follows, the generated locustfile and
the capped Locust command line. Synthetic inputs with known answers; no Locust process, no server."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_deploygate.config import AuthSpec, AwsSpec, Environment, HttpSpec
from pytest_deploygate.failures import read_only_reason
from pytest_deploygate.load import (
    AUTH_VAR,
    HistoryFollower,
    LocustRun,
    Progress,
    _ExitWaiter,
    _read_failures,
    certain_breach,
    percentile,
    probe_summary,
    render_locustfile,
    summarize,
)
from pytest_deploygate.sections import DistributedSpec, LoadTask, PerformanceSpec, SmokeSpec
from pytest_deploygate.thresholds import Policy, Threshold, parse_condition

# --------------------------------------------------------------------------------------------------
# percentile of Locust's rounded-ms histogram

#: 100 requests: 90 at 10 ms, 9 at 100 ms, 1 at 1000 ms
HIST = {10: 90, 100: 9, 1000: 1}


@pytest.mark.parametrize(("q", "expected"), [
    (0.0, 10.0), (0.50, 10.0), (0.89, 10.0),
    (0.90, 100.0),  # on the boundary (90 requests at 10 ms) Locust's method takes the next bucket up
    (0.95, 100.0), (0.99, 1000.0), (1.0, 1000.0),
])
def test_percentile_of_a_histogram(q: float, expected: float) -> None:
    assert percentile(HIST, 100, q) == expected


def test_percentile_of_nothing_is_zero() -> None:
    assert percentile({}, 0, 0.95) == 0.0
    assert percentile(HIST, 0, 0.95) == 0.0


def test_percentile_does_not_depend_on_the_histogram_order() -> None:
    assert percentile(dict(reversed(list(HIST.items()))), 100, 0.95) == 100.0


# --------------------------------------------------------------------------------------------------
# summary of Locust's --json-file entries

ITEMS = {"name": "GET /items", "method": "GET", "num_requests": 60, "num_failures": 3,
         "total_response_time": 1200.0, "response_times": {"10": 50, "50": 10},
         "start_time": 1000.0, "last_request_timestamp": 1010.0}
HEALTH = {"name": "/health", "method": "GET", "num_requests": 40, "num_failures": 1,
          "total_response_time": 4000.0, "response_times": {"100": 36, "900": 4},
          "start_time": 1002.0, "last_request_timestamp": 1020.0}


def test_summary_sums_histograms_and_counts_across_endpoints() -> None:
    result = summarize([ITEMS, HEALTH], [{"method": "GET", "name": "/health", "error": "500", "occurrences": 1}])
    assert (result.requests, result.failures) == (100, 4)
    assert result.avg_ms == 52.0  # (1200 + 4000) ms over 100 requests
    # the summed histogram {10: 50, 50: 10, 100: 36, 900: 4}
    assert (result.p50_ms, result.p95_ms, result.p99_ms) == (50.0, 100.0, 900.0)
    assert result.duration_s == 20.0 and result.rps == 5.0  # first start 1000 to last request 1020
    assert result.success_rate == 96.0 and result.error_rate == 4.0
    assert result.errors == ["GET /health: 500 (1x)"]


def test_summary_keeps_one_line_per_endpoint_named_with_its_method() -> None:
    endpoints = summarize([ITEMS, HEALTH]).endpoints
    assert set(endpoints) == {"GET /items", "GET /health"}  # a name without its method gets it
    assert endpoints["GET /items"] == {"requests_count": 60, "failures_count": 3, "avg_ms": 20.0, "p95_ms": 50.0}
    assert endpoints["GET /health"] == {"requests_count": 40, "failures_count": 1, "avg_ms": 100.0,
                                        "p95_ms": 900.0}


def test_a_run_without_requests_is_not_a_success() -> None:
    result = summarize([])
    assert (result.requests, result.avg_ms, result.p95_ms, result.rps, result.duration_s) == (0, 0.0, 0.0, 0.0, 0.0)
    assert result.success_rate == 0.0 and result.error_rate == 0.0


def test_a_summary_without_timestamps_has_no_rate() -> None:
    entry = {k: v for k, v in ITEMS.items() if k not in ("start_time", "last_request_timestamp")}
    result = summarize([entry])
    assert result.requests == 60 and result.rps == 0.0 and result.duration_s == 0.0


def test_probe_figures() -> None:
    result = probe_summary([(40.0, True), (10.0, True), (30.0, False), (20.0, True)], duration_s=2.0)
    assert (result.requests, result.failures, result.avg_ms) == (4, 1, 25.0)
    assert (result.p50_ms, result.p95_ms, result.p99_ms) == (20.0, 40.0, 40.0)
    assert result.rps == 2.0 and result.success_rate == 75.0
    empty = probe_summary([], duration_s=0.0)
    assert (empty.requests, empty.p95_ms, empty.rps, empty.success_rate) == (0, 0.0, 0.0, 0.0)


# --------------------------------------------------------------------------------------------------
# early abort: breached even if the rest of the run goes as well as it possibly could


def _policy(**levels: str) -> Policy:
    """``_policy(success_rate="< 95")``: fail levels of performance metrics."""
    return Policy(None, tuple(Threshold(f"performance.{k}", parse_condition(v, f"performance.{k}"))
                              for k, v in levels.items()))


def test_a_success_rate_that_cannot_recover_aborts() -> None:
    # 100 requests in 10 s, 10 s left: at best 150 more, all fine -> (50 + 150) / 250 = 80 %
    why = certain_breach(_policy(success_rate="< 95"), requests=100, failures=50, avg_ms=10.0, elapsed_s=10.0,
                         remaining_s=10.0)
    assert why == ("performance.success_rate breaches its fail level (< 95 %) even if every remaining request "
                   "succeeded instantly (best case 80.0)")


def test_a_success_rate_that_can_still_recover_runs_on() -> None:
    # (95 + 150) / 250 = 98 %: the rest of the run could still pass it
    assert certain_breach(_policy(success_rate="< 95"), 100, 5, 10.0, 10.0, 10.0) is None


def test_at_the_end_of_the_run_the_best_case_is_the_current_figure() -> None:
    assert certain_breach(_policy(success_rate="< 95"), 100, 6, 10.0, 10.0, 0.0) is not None  # 94 %
    assert certain_breach(_policy(success_rate="< 95"), 100, 5, 10.0, 10.0, 0.0) is None  # 95 %


def test_the_margin_allows_for_a_faster_rest_of_run() -> None:
    # 100 requests, 10 s elapsed, 10 s left: 100 more at the current rate, 150 with the default margin
    policy = _policy(success_rate="< 95")
    assert certain_breach(policy, 100, 12, 10.0, 10.0, 10.0, margin=1.0) is not None  # (88 + 100) / 200 = 94 %
    assert certain_breach(policy, 100, 12, 10.0, 10.0, 10.0) is None  # (88 + 150) / 250 = 95.2 %


def test_an_error_rate_that_cannot_recover_aborts() -> None:
    why = certain_breach(_policy(error_rate="> 5"), 100, 50, 10.0, 10.0, 10.0)
    assert why is not None and why.startswith("performance.error_rate breaches its fail level (> 5 %)")
    assert why.endswith("(best case 20.0)")


def test_an_average_that_instant_requests_cannot_bring_down_aborts() -> None:
    # best average: 6000 ms * 100 / (100 + 150) = 2400 ms
    why = certain_breach(_policy(avg_ms="> 2000"), 100, 0, 6000.0, 10.0, 10.0)
    assert why is not None and "performance.avg_ms" in why and why.endswith("(best case 2400.0)")
    # 5000 ms * 100 / 250 = 2000 ms: exactly on a strict level is no breach
    assert certain_breach(_policy(avg_ms="> 2000"), 100, 0, 5000.0, 10.0, 10.0) is None


def test_no_abort_without_evidence_or_without_a_fail_level() -> None:
    policy = _policy(success_rate="< 95")
    assert certain_breach(policy, 0, 0, 0.0, 10.0, 10.0) is None  # no request yet
    assert certain_breach(policy, 100, 100, 10.0, 0.0, 10.0) is None  # no time elapsed
    assert certain_breach(Policy(None, ()), 100, 100, 9999.0, 10.0, 0.0) is None  # nothing to breach
    warn_only = Policy(None, (Threshold("performance.success_rate",
                                        warn=parse_condition("< 99", "performance.success_rate")),))
    assert certain_breach(warn_only, 100, 100, 10.0, 10.0, 0.0) is None  # a warn level never aborts


# --------------------------------------------------------------------------------------------------
# the live line and the files Locust leaves


def test_the_live_line_before_and_during_the_load() -> None:
    assert Progress(1.5, 0, 0, 0, 0.0, 0.0, 0.0).line(10) == "load: starting, 1.5 s"
    waiting = Progress(2.0, 0, 0, 0, 0.0, 0.0, 0.0, waiting_for="2 Locust workers at 127.0.0.1:5557")
    assert waiting.line(10) == "load: starting, 2.0 s, waiting for 2 Locust workers at 127.0.0.1:5557"
    running = Progress(4.0, 10, 120, 2, 30.0, 250.4, 100.0)
    assert running.line(10) == "load:  4.0/10 s  10 users  120 requests  30 req/s  2 failures  p95 250 ms"


HISTORY = """Timestamp,User Count,Type,Name,Requests/s,Total Request Count,Total Failure Count,95%
1,5,,Aggregated,3.0,10,0,120
2,10,GET,/items,4.0,20,1,130
3,10,,Aggregated,5.0,42,2,140
"""


def test_the_newest_aggregated_row_of_the_history(tmp_path: Path) -> None:
    path = tmp_path / "locust_stats_history.csv"
    follower = HistoryFollower(path)
    assert follower.poll() is None  # not written yet
    path.write_text("Timestamp,Name\n1,/items\n")
    assert follower.poll() is None  # no aggregated row yet
    path.write_text(HISTORY)  # the same file, grown (its first lines are the ones already read)
    follower = HistoryFollower(path)
    row = follower.poll()
    assert row is not None and row["Total Request Count"] == "42" and row["95%"] == "140"
    assert follower.poll() is None  # nothing new since


def test_the_history_is_read_incrementally_and_only_in_whole_lines(tmp_path: Path) -> None:
    """Each poll reads only the bytes appended since the last one, and leaves a half-written line for later."""
    path = tmp_path / "locust_stats_history.csv"
    lines = HISTORY.splitlines(keepends=True)
    path.write_text(lines[0] + lines[1])
    follower = HistoryFollower(path)
    first = follower.poll()
    assert first is not None and first["Total Request Count"] == "10"
    assert follower.offset == len((lines[0] + lines[1]).encode())
    with path.open("a") as f:
        f.write(lines[2] + lines[3][:12])  # an endpoint row, and the start of the next aggregated row
    assert follower.poll() is None  # no complete aggregated line: the partial one waits
    assert follower.offset == len("".join(lines[:3]).encode())
    with path.open("a") as f:
        f.write(lines[3][12:])
    row = follower.poll()
    assert row is not None and row["Total Request Count"] == "42"
    assert follower.offset == path.stat().st_size
    # a long run: each poll costs the new lines only, whatever the file's length
    with path.open("a") as f:
        f.writelines(f"{i},10,,Aggregated,5.0,{i},0,150\n" for i in range(4, 5000))
    mark = follower.offset
    assert follower.poll()["Total Request Count"] == "4999"  # type: ignore[index]
    with path.open("a") as f:
        f.write("5000,10,,Aggregated,5.0,5000,0,150\n")
    assert follower.poll()["Total Request Count"] == "5000"  # type: ignore[index]
    assert follower.offset - mark > 0 and follower.offset == path.stat().st_size


def test_a_replaced_history_is_read_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "locust_stats_history.csv"
    path.write_text(HISTORY)
    follower = HistoryFollower(path)
    assert follower.poll() is not None
    path.write_text("Timestamp,User Count,Name,Total Request Count\n1,2,Aggregated,7\n")  # shorter: a new file
    row = follower.poll()
    assert row is not None and row["Total Request Count"] == "7" and row["User Count"] == "2"


def test_the_exit_waiter_sleeps_until_the_process_exits() -> None:
    """The runner sleeps in the kernel between polls and wakes the moment Locust exits, not at its timeout."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    waiter = _ExitWaiter(proc)
    try:
        assert waiter(0.01) is False  # still running
        started = time.monotonic()
        assert waiter(30.0) is True
        assert time.monotonic() - started < 15  # woken by the exit (generous: a busy machine)
        assert proc.returncode == 0 and waiter(5.0) is True
    finally:
        waiter.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_failures_the_guard_leaves(tmp_path: Path) -> None:
    path = tmp_path / "failures.json"
    assert _read_failures(path) == []  # Locust died before writing it
    path.write_text(json.dumps([{"method": "POST", "name": "create", "error": "refused", "occurrences": 3},
                                "not a row", {"method": "GET", "name": "/x", "error": None, "occurrences": None}]))
    assert _read_failures(path) == [
        {"method": "POST", "name": "create", "error": "refused", "occurrences": 3},
        {"method": "GET", "name": "/x", "error": "", "occurrences": 0},
    ]
    for bad in ("{not json", '{"a": 1}'):
        path.write_text(bad)
        assert _read_failures(path) == []


# --------------------------------------------------------------------------------------------------
# the generated locustfile and the Locust command


def _env(protected: bool = False, token: str | None = None) -> Environment:
    return Environment(name="prod" if protected else "staging", service="svc", stage="s",
                       base_url="http://127.0.0.1:9/api/", frontend_url="", protected=protected, launch=None,
                       aws=AwsSpec(), auth=AuthSpec(value=f"Bearer {token}") if token else None, tables=(),
                       buckets=(), http=HttpSpec(connect_timeout_s=2.0, read_timeout_s=7.0), smoke=SmokeSpec())


def _spec_of(locustfile: str) -> dict[str, Any]:
    """The SPEC a generated locustfile carries (``SPEC = json.loads("...")``), read without running it."""
    for node in ast.parse(locustfile).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "SPEC":
            assert isinstance(node.value, ast.Call)
            arg = node.value.args[0]
            assert isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            return dict(json.loads(arg.value))
    raise AssertionError("no SPEC in the locustfile")


def test_the_locustfile_carries_the_tasks_and_never_the_token() -> None:
    tasks = (LoadTask("list", path="/items", weight=3), LoadTask("create", method="POST", path="/items",
                                                                status=(201,), body={"title": "x"}))
    text = render_locustfile(_env(token="s3cr3t-load-token"), PerformanceSpec(tasks=tasks, wait_s=(0.5, 1.5)))
    compile(text, "locustfile.py", "exec")  # valid Python, and standalone (a remote worker gets only this)
    assert "s3cr3t" not in text and AUTH_VAR in text
    spec = _spec_of(text)
    assert spec["tasks"] == [
        {"name": "list", "method": "GET", "path": "/items", "weight": 3, "status": [200], "body": None},
        {"name": "create", "method": "POST", "path": "/items", "weight": 1, "status": [201], "body": {"title": "x"}},
    ]
    assert spec["wait_s"] == [0.5, 1.5] and spec["timeout"] == [2.0, 7.0] and spec["client"] == "fast"
    assert spec["auth_header"] == "Authorization" and spec["verify"] is True


def _command(spec: PerformanceSpec, **kwargs: Any) -> list[str]:
    run = LocustRun(_env(), spec, Path("/nonexistent-workdir"), **kwargs)
    return run.command(Path("/nonexistent-workdir/locustfile.py"))


def _arg(cmd: list[str], flag: str) -> str:
    return cmd[cmd.index(flag) + 1]


def test_the_command_holds_the_caps_on_users_and_duration() -> None:
    cmd = _command(PerformanceSpec(users=50, max_users=20, duration_s=30.0, max_duration_s=10.0, warmup_s=5.0))
    assert _arg(cmd, "-u") == "20" and _arg(cmd, "-t") == "10s"
    assert _arg(cmd, "-r") == "4"  # the capped users spread over the warm-up
    assert "--reset-stats" in cmd  # only what follows the warm-up is judged
    assert _arg(cmd, "--host") == "http://127.0.0.1:9/api"
    assert "--processes" not in cmd and "--master" not in cmd


def test_the_command_for_processes_and_for_a_distributed_master() -> None:
    cmd = _command(PerformanceSpec(users=4, duration_s=2.5, workers=2, spawn_rate=8.0))
    assert _arg(cmd, "--processes") == "2" and _arg(cmd, "-r") == "8" and _arg(cmd, "-t") == "3s"
    assert "--reset-stats" not in cmd
    # the local workers meet their master on loopback, on a port of this run's own (not Locust's 5557 on
    # every interface, which a second run would collide with)
    assert _arg(cmd, "--master-bind-host") == "127.0.0.1" and _arg(cmd, "--master-host") == "127.0.0.1"
    assert _arg(cmd, "--master-bind-port") == _arg(cmd, "--master-port") != "5557"
    dist = _command(PerformanceSpec(workers=2, distributed=DistributedSpec(expect_workers=3, bind_port=5599,
                                                                           max_wait_s=12.5)))
    assert _arg(dist, "--expect-workers") == "3" and _arg(dist, "--master-bind-port") == "5599"
    assert _arg(dist, "--expect-workers-max-wait") == "13" and "--processes" not in dist


def test_the_wall_clock_bound_and_the_read_only_rule() -> None:
    spec = PerformanceSpec(duration_s=30.0, max_duration_s=10.0)
    assert LocustRun(_env(), spec, Path("/w")).timeout_s == 40.0
    dist = PerformanceSpec(duration_s=5.0, distributed=DistributedSpec(expect_workers=2, max_wait_s=20.0))
    assert LocustRun(_env(), dist, Path("/w")).timeout_s == 55.0
    assert LocustRun(_env(protected=True), spec, Path("/w")).read_only == read_only_reason("prod")
    assert LocustRun(_env(protected=True), spec, Path("/w"), allow_writes=True).read_only is None
    assert LocustRun(_env(), spec, Path("/w")).read_only is None
