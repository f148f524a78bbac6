"""Report rendering (pure, fast): the JSON report of a judged run, the Markdown summary, the terminal table,
the webhook text and the CloudWatch data, built from a synthetic run and verdict; a secret in a failure
reason or a note appears in none of them. No pytest run, no server."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from pytest_deploygate.config import AwsSpec, Environment, HttpSpec, Project
from pytest_deploygate.gate import FAIL, INFO, NO_CHECKS, PASS, WARN, Metric, Verdict, judge
from pytest_deploygate.redaction import MASK, PIECE_CHARS
from pytest_deploygate.report import terminal  # its tests_cell, imported by name, would be collected as a test
from pytest_deploygate.report.json_report import RUNNING, write_report, write_status_report
from pytest_deploygate.report.markdown import render_markdown
from pytest_deploygate.report.model import GateReport
from pytest_deploygate.report.publish import cloudwatch_data, webhook_payload
from pytest_deploygate.report.terminal import figure, write_summary
from pytest_deploygate.run import GateRun, RunSettings, RunStart, Target
from pytest_deploygate.sections import CloudWatchSpec, SmokeSpec
from pytest_deploygate.thresholds import Policy, Threshold, parse_condition

SECRET = "tok-9f8e7d6c5b4a3921"
LATENCY = "smoke.health.latency_ms"


def _env(name: str) -> Environment:
    return Environment(name=name, service="shop", stage=name, base_url=f"https://{name}.example.test/api",
                       frontend_url="", protected=name == "prod", launch=None, aws=AwsSpec(), auth=None, tables=(),
                       buckets=(), http=HttpSpec(), smoke=SmokeSpec())


def _threshold(metric: str, fail: str, warn: str | None = None) -> Threshold:
    return Threshold(metric, parse_condition(fail, metric), parse_condition(warn, metric) if warn else None)


POLICY = Policy(Path("thresholds.toml"), (
    _threshold(LATENCY, "> 3000", "> 1000"),
    _threshold("crud.create_ms", "> 5000"),
    _threshold("performance.p95_ms", "> 2000", "> 1000"),
))


def _run(tmp_path: Path, metrics: list[Metric], outcomes: dict[str, tuple[str, str, str]],
         fail_on_warn: bool = False) -> GateRun:
    project = Project(path=tmp_path / "deploygate.toml", service="shop",
                      environments={n: _env(n) for n in ("staging", "prod")}, secrets=frozenset({SECRET}))
    settings = RunSettings(env_name="staging", env_source="--env", project=project, policy=POLICY,
                           config_path=project.path, report_path=tmp_path / ".deploygate" / "report.json",
                           markdown_path=tmp_path / "summary.md", fail_on_warn=fail_on_warn)
    run = GateRun(settings, Target(project))
    run.results.metrics = metrics
    run.results.outcomes = outcomes
    return run


def _verdict(run: GateRun) -> Verdict:
    return judge("staging", run.results.metrics, POLICY, run.results.tallies(),
                 fail_on_warn=run.settings.fail_on_warn)


def _model(run: GateRun, exitstatus: int = 1, version: str = "0") -> GateReport:
    """The report model of the run as the session builds it (judged, then redacted)."""
    return GateReport.of_verdict(run, _verdict(run), exitstatus, version).redacted(run.secrets)


def build_report(run: GateRun, exitstatus: int, version: str) -> dict[str, Any]:
    """The JSON form, unredacted (redaction is checked on what is written)."""
    return GateReport.of_verdict(run, _verdict(run), exitstatus, version).to_dict()


def _metric(name: str, value: float, **labels: str) -> Metric:
    return Metric(name=name, value=value, unit="ms" if name.endswith("_ms") else "", labels=labels,
                  nodeid="suites/test_x.py::test_it")


FAILED_CRUD = "suites/test_crud.py::test_create_read_update_delete"


def _failing_run(tmp_path: Path) -> GateRun:
    """staging: smoke WARN (slow health), crud FAIL (a failed check whose reason carries the token, and a
    breach), performance PASS; a note that carries the token too."""
    run = _run(tmp_path,
               [_metric(LATENCY, 1500.0, path="/health"), _metric("crud.create_ms", 6200.0),
                _metric("performance.p95_ms", 180.0), _metric("custom.queue_depth_count", 7)],
               {"suites/test_smoke.py::test_health": ("smoke", "passed", ""),
                FAILED_CRUD: ("crud", "failed", f"POST /items answered 401 | sent Bearer {SECRET}"),
                "suites/test_crud.py::test_list": ("crud", "passed", ""),
                "suites/test_crud.py::test_delete_prod": ("crud", "skipped", "prod is protected"),
                "suites/test_performance.py::test_load": ("performance", "passed", "")})
    run.results.notes.append(f"webhook https://hooks.example.test/{SECRET} not called")
    run.results.artifacts["locust_html"] = "/tmp/locust-staging.html"
    return run


def _leaks(text: str) -> list[str]:
    """Every piece of the secret long enough to count as a leak (what redaction guarantees is gone)."""
    return [SECRET[i:i + PIECE_CHARS] for i in range(len(SECRET) - PIECE_CHARS + 1)
            if SECRET[i:i + PIECE_CHARS] in text]


# --------------------------------------------------------------------------------------------------
# the JSON report


def test_the_report_of_a_judged_run(tmp_path: Path) -> None:
    run = _failing_run(tmp_path)
    report = build_report(run, exitstatus=1, version="9.9.9")
    assert report["plugin"] == {"name": "pytest-deploygate", "version": "9.9.9"}
    assert report["environment"]["name"] == "staging" and report["environment"]["protected"] is False
    assert report["run_id"] == run.run_id
    assert (report["verdict"], report["blocks_promotion"], report["exit_status"]) == (FAIL, True, 1)
    assert report["interrupted"] is False and report["partial_verdict"] is None
    assert report["tests"] == {"passed": 3, "failed": 1, "skipped": 1}
    assert {c: v["verdict"] for c, v in report["categories"].items()} == {
        "smoke": WARN, "crud": FAIL, "performance": PASS, "custom": INFO}
    assert report["categories"]["crud"]["failed_tests"][0]["nodeid"] == FAILED_CRUD
    by_name = {m["name"]: m for m in report["metrics"]}
    assert by_name["crud.create_ms"]["verdict"] == FAIL and by_name["crud.create_ms"]["limit"] == "> 5000 ms"
    assert by_name["custom.queue_depth_count"]["verdict"] == INFO
    assert report["artifacts"] == {"locust_html": "/tmp/locust-staging.html"}
    assert report["thresholds"] == "thresholds.toml"
    json.dumps(report)  # plain data throughout


def test_an_interrupted_run_never_reports_its_partial_verdict_as_the_verdict(tmp_path: Path) -> None:
    run = _run(tmp_path, [_metric(LATENCY, 10.0)], {"suites/test_smoke.py::test_health": ("smoke", "passed", "")})
    assert _verdict(run).verdict == PASS
    report = build_report(run, exitstatus=2, version="0")
    assert (report["verdict"], report["partial_verdict"]) == ("INTERRUPTED", PASS)
    assert report["interrupted"] is True and report["blocks_promotion"] is True


def test_a_warn_blocks_in_the_report_exactly_when_fail_on_warn(tmp_path: Path) -> None:
    outcomes = {"suites/test_smoke.py::test_health": ("smoke", "passed", "")}
    lenient = build_report(_run(tmp_path, [_metric(LATENCY, 1500.0)], outcomes), 0, "0")
    assert (lenient["verdict"], lenient["blocks_promotion"], lenient["fail_on_warn"]) == (WARN, False, False)
    strict = build_report(_run(tmp_path, [_metric(LATENCY, 1500.0)], outcomes, fail_on_warn=True), 1, "0")
    assert (strict["verdict"], strict["blocks_promotion"], strict["fail_on_warn"]) == (WARN, True, True)


def test_written_report_and_summary_carry_no_secret(tmp_path: Path) -> None:
    run = _failing_run(tmp_path)
    report = GateReport.of_verdict(run, _verdict(run), 1, "0")
    assert SECRET in json.dumps(report.to_dict())  # the synthetic run does carry it, so the check below means something
    paths = run.settings
    assert paths.markdown_path is not None
    write_report(report, paths.report_path, run.secrets, paths.markdown_path)
    text, markdown = paths.report_path.read_text(), paths.markdown_path.read_text()
    for written in (text, markdown):
        assert _leaks(written) == []
    assert MASK in text and MASK in markdown
    back = json.loads(text)  # still valid JSON, failure reason kept around the mask
    assert back["categories"]["crud"]["failed_tests"][0]["reason"].startswith("POST /items answered 401")
    assert sorted(p.name for p in paths.report_path.parent.iterdir()) == ["report.json"]  # no temporary left


def test_a_running_report_has_no_summary_and_an_interrupted_one_has(tmp_path: Path) -> None:
    start = RunStart(env_name="staging", report_path=tmp_path / "report.json", markdown_path=tmp_path / "s.md")
    write_status_report(start, "0", RUNNING)
    report = json.loads(start.report_path.read_text())
    assert (report["verdict"], report["finished_at"], report["blocks_promotion"]) == (RUNNING, None, True)
    assert report["run_id"] == start.run_id and not start.markdown_path.exists()  # type: ignore[union-attr]
    write_status_report(start, "0", "INTERRUPTED", exit_status=2, error=f"stopped with {SECRET}", secrets=[SECRET])
    report = json.loads(start.report_path.read_text())
    assert report["interrupted"] is True and report["exit_status"] == 2 and report["finished_at"]
    assert _leaks(start.report_path.read_text()) == [] and MASK in report["error"]
    assert "GATE INTERRUPTED" in start.markdown_path.read_text()  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------------
# the Markdown summary


def test_the_markdown_summary_of_a_failing_run(tmp_path: Path) -> None:
    md = render_markdown(GateReport.of_verdict(run := _failing_run(tmp_path), _verdict(run), 1, "0"))
    lines = md.splitlines()
    assert lines[0] == ("## ❌ deploygate: staging — GATE FAIL · blocks promotion: yes (1 check failed; "
                        "1 threshold failed; 1 threshold warned)")
    assert "checks: 3 passed, 1 failed, 1 skipped · thresholds: 1 passed, 1 warned, 1 failed" in lines
    assert "| category | verdict | checks | breaches |" in lines
    assert "| crud | ❌ FAIL | 1/2 (1 skipped) | `crud.create_ms` 6200 ms (fail level > 5000 ms) |" in lines
    assert "| smoke | ⚠️ WARN | 1/1 | `smoke.health.latency_ms{path=/health}` 1500 ms (warn level > 1000 ms) |" \
        in lines
    assert "| performance | ✅ PASS | 1/1 |  |" in lines
    assert "**Failed checks**" in lines
    # a pipe in a reason would break the table and the list: escaped
    assert f"- `{FAILED_CRUD}`: POST /items answered 401 \\| sent Bearer {SECRET}" in lines
    assert "**Thresholds breached**" in lines
    assert "- FAIL `crud.create_ms` 6200 ms (fail level > 5000 ms)" in lines
    # every judged threshold with value, limit, headroom; failed and warned first
    table = lines[lines.index("| threshold | verdict | value of limit, headroom | n | threshold |") + 2:]
    assert table[:3] == [
        "| `crud.create_ms` | ❌ FAIL | 6200 ms of 5000 ms, 24 % over | — | fail > 5000 ms |",
        "| `smoke.health.latency_ms{path=/health}` | ⚠️ WARN | 1500 ms of 3000 ms, 50 % headroom "
        "(past warn level > 1000 ms) | — | warn > 1000 ms, fail > 3000 ms |",
        "| `performance.p95_ms` | ✅ PASS | 180 ms of 2000 ms, 91 % headroom | — | warn > 1000 ms, fail > 2000 ms |"]
    assert any(line.startswith("<details open><summary>Thresholds: 3 judged") for line in lines)
    # the artifact relative to the report directory, no absolute local path
    assert re.search(r"^\*\*Artifacts\*\* · \[Locust HTML report\]\((\.\./)+locust-staging\.html\) · "
                     r"\[gate report \(JSON\)\]\(report\.json\) \(paths relative to the report directory\)$", md, re.M)
    assert str(tmp_path) not in md
    assert lines[-1].startswith("run `dg-")


def test_the_markdown_summary_caps_long_lists(tmp_path: Path) -> None:
    outcomes = {f"suites/test_crud.py::test_{i}": ("crud", "failed", f"reason {i}") for i in range(25)}
    md = render_markdown(_model(_run(tmp_path, [], outcomes)))
    assert "- `suites/test_crud.py::test_19`: reason 19" in md
    assert "test_20`" not in md and "- … 5 more in the JSON report" in md


@pytest.mark.parametrize(("report", "says"), [
    ({"verdict": NO_CHECKS, "environment": {"name": "dev"}},
     ["## ⛔ deploygate: dev — GATE NO CHECKS", "No check ran (nothing selected, or every check skipped)"]),
    ({"verdict": "ERROR", "environment": {"name": "dev"}, "error": "cannot connect to https://dev\nretried"},
     ["GATE ERROR", "The gate could not run: cannot connect to https://dev retried"]),
    ({"verdict": "INTERRUPTED", "partial_verdict": PASS, "interrupted": True, "environment": {"name": "dev"}},
     ["GATE INTERRUPTED", "The run was interrupted: partial verdict PASS; blocks promotion."]),
])
def test_the_markdown_summary_of_a_run_without_a_verdict(report: dict[str, Any], says: list[str]) -> None:
    md = render_markdown(GateReport.from_dict(report))
    for words in says:
        assert words in md


# --------------------------------------------------------------------------------------------------
# the terminal table


class _Terminal:
    """Records what the summary writes, through the terminal reporter's public calls or its writer."""

    def __init__(self) -> None:
        self.text = ""
        self.marked: list[tuple[str, dict[str, bool]]] = []

    def write_sep(self, sep: str, title: str = "", **markup: bool) -> None:
        self.line(f"{sep * 3} {title} {sep * 3}", **markup)

    def write(self, text: str, **markup: bool) -> None:
        self.text += text
        if markup:
            self.marked.append((text, markup))

    def line(self, text: str = "", **markup: bool) -> None:
        self.write(text + "\n", **markup)

    def write_line(self, text: str = "", **markup: bool) -> None:
        self.line(text, **markup)

    def rewrite(self, text: str, **markup: bool) -> None:
        self.write(text, **markup)


def test_the_terminal_table_of_a_failing_run(tmp_path: Path) -> None:
    run = _failing_run(tmp_path)
    run.results.findings.append({"check": "bandit", "severity": "HIGH", "text": "B602 shell=True in app.py:3"})
    run.results.findings.append({"check": "bandit", "severity": "LOW", "text": "B101 assert used"})
    tr = _Terminal()
    write_summary(tr, GateReport.of_verdict(run, _verdict(run), 1, "0"), None, "staging", run.settings.report_path)
    lines = [line.rstrip() for line in tr.text.splitlines()]
    assert "deploygate: staging" in lines[0]
    assert any(re.match(r"crud\s+FAIL\s+1/2 \(1 skipped\)\s+crud\.create_ms 6200 ms \(fail level > 5000 ms\)$", line)
               for line in lines), tr.text
    assert any(re.match(r"smoke\s+WARN\s+1/1\s+smoke\.health\.latency_ms\{path=/health\} 1500 ms", line)
               for line in lines), tr.text
    assert f"  FAILED {FAILED_CRUD}: POST /items answered 401 | sent Bearer {SECRET}" in lines
    assert any(line.startswith("  note: webhook") for line in lines)
    assert "  finding (bandit): B602 shell=True in app.py:3" in lines
    assert "B101" not in tr.text  # low severity stays in the JSON report
    assert "  FAIL crud.create_ms 6200 ms (fail level > 5000 ms)" in lines
    assert lines[-4:] == [
        "checks: 3 passed, 1 failed, 1 skipped · thresholds: 1 passed, 1 warned, 1 failed",
        "  (pytest's own count below includes the gate's 1 failed threshold case)",
        f"GATE FAIL  environment staging; report {run.settings.report_path}",
        "blocks promotion: yes (1 check failed; 1 threshold failed; 1 threshold warned)"]
    assert ("FAIL", {"red": True, "bold": True}) in [(t.strip(), m) for t, m in tr.marked]


def test_the_terminal_says_when_nothing_ran_and_that_it_blocks(tmp_path: Path) -> None:
    run = _run(tmp_path, [], {"suites/test_crud.py::test_delete": ("crud", "skipped", "protected")})
    tr = _Terminal()
    write_summary(tr, _model(run), None, "staging")
    assert "no check ran" not in tr.text  # a skipped category still makes a row
    assert "GATE NO CHECKS (blocks promotion)" in tr.text
    empty = _run(tmp_path, [], {})
    tr = _Terminal()
    write_summary(tr, _model(empty), None, "staging")
    assert "no check ran: nothing was selected (-m / -k / paths), or every check was skipped" in tr.text


def test_the_terminal_says_when_the_gate_could_not_judge_and_is_silent_without_a_run(tmp_path: Path) -> None:
    tr = _Terminal()
    write_summary(tr, None, "cannot connect to https://staging.example.test/api", "staging")
    assert "deploygate: the gate could not be judged: cannot connect to https://staging.example.test/api" in tr.text
    tr = _Terminal()
    write_summary(tr, None, None, "staging")  # collect-only: no verdict, no error
    assert tr.text == ""


def test_figures_and_test_counts(tmp_path: Path) -> None:
    run = _run(tmp_path, [_metric(LATENCY, 12.5), _metric(LATENCY, 1500.0, path="/h"),
                          _metric("performance.p95_ms", 7.0), _metric("custom.depth_count", 3)], {})
    ok, warn, round_ms, info = _verdict(run).metrics
    assert figure(ok) == "smoke.health.latency_ms 12.5 ms (fail if > 3000 ms)"
    assert figure(warn, code=True) == "`smoke.health.latency_ms{path=/h}` 1500 ms (warn level > 1000 ms)"
    assert figure(round_ms) == "performance.p95_ms 7 ms (fail if > 2000 ms)"
    assert figure(info) == "custom.depth_count 3"
    assert terminal.tests_cell({"passed": 8, "failed": 1, "skipped": 0}) == "8/9"
    assert terminal.tests_cell({"passed": 0, "failed": 0, "skipped": 4}) == "0/0 (4 skipped)"
    assert terminal.tests_cell({"passed": 0, "failed": 0, "skipped": 0}) == "—"  # no check in the category


def test_a_category_of_recorded_metrics_reads_as_recorded_not_as_a_pass(tmp_path: Path) -> None:
    # what a CloudWatch probe records (custom.*), no threshold for it, no check of that category
    run = _run(tmp_path, [_metric(LATENCY, 12.5), _metric("custom.lambda_errors_count", 0, fn="api"),
                          _metric("custom.lambda_p95_ms", 41.0, fn="api")],
               {"suites/test_smoke.py::test_health": ("smoke", "passed", "")})
    report = _model(run, exitstatus=0)
    assert report.categories["custom"]["verdict"] == INFO and report.verdict == PASS
    tr = _Terminal()
    write_summary(tr, report, None, "staging")
    row = next(line for line in tr.text.splitlines() if line.startswith("custom"))
    assert re.match(r"custom\s+INFO\s+—\s+recorded, no threshold: custom\.lambda_errors_count\{fn=api\} 0; "
                    r"custom\.lambda_p95_ms\{fn=api\} 41 ms$", row), row
    assert "PASS" not in row and "0/0" not in row
    assert re.search(r"^smoke\s+PASS\s+1/1\s+smoke\.health\.latency_ms 12\.5 ms", tr.text, re.M)
    md = render_markdown(report).splitlines()
    assert "| custom | \u2139\ufe0f INFO | — | recorded, no threshold: 2 metrics |" in md
    assert "checks: 1 passed · thresholds: 1 passed" in md  # recorded metrics are no thresholds


def test_the_markdown_thresholds_table_lists_what_matters_first_and_counts_the_rest(tmp_path: Path) -> None:
    from pytest_deploygate.report.markdown import TABLE_ROWS

    metrics = [_metric(LATENCY, 20.0, path=f"/p{i}") for i in range(TABLE_ROWS + 40)]
    metrics += [_metric(LATENCY, 1500.0, path="/slow"), _metric("crud.create_ms", 6200.0)]
    md = render_markdown(_model(_run(tmp_path, metrics, {})))
    rows = [line for line in md.splitlines() if line.startswith("| `")]
    assert len(rows) == TABLE_ROWS
    assert "crud.create_ms" in rows[0] and "{path=/slow}" in rows[1]  # what fails and warns is never cut
    assert "… 42 more thresholds (42 PASS) in the JSON report" in md
    assert f"<summary>Thresholds: {TABLE_ROWS + 42} judged (" in md


@pytest.mark.parametrize("metric", [
    Metric(LATENCY, 12.5, "ms", {"path": "/héllo \"quoted\"\n", "b": "\\"}, "suites/t.py::test[ü]", None, (1.0, 2.5)),
    Metric("performance.error_rate", 2.0, "%", {}, "n", 40),  # judged on its interval: samples, interval
    Metric("custom.ratio", float("nan"), "", {}, "", None),
    Metric("custom.big_count", 10**20, "", {}, "", 3),  # an int read back from a file
    Metric(LATENCY, float("inf"), "ms", {}, ""),
])
def test_a_metric_line_of_the_json_report_is_exactly_what_json_writes(tmp_path: Path, metric: Metric) -> None:
    from pytest_deploygate.report import json_report, model

    policy = Policy(Path("thresholds.toml"), (*POLICY.thresholds,
                                              _threshold("performance.error_rate", "> 5", "> 1")))
    result = judge("staging", [metric], policy, {}).metrics[0]
    assert model._metric_json(result) == json.dumps(model._metric_dict(result))
    report = _model(_failing_run(tmp_path))
    report = dataclasses.replace(report, metrics=(*report.metrics, result))
    assert report.json() == json_report.dumps(report.to_dict())
    json.loads(report.json().replace("NaN", "0").replace("Infinity", "0"))


# --------------------------------------------------------------------------------------------------
# the webhook text and CloudWatch data


def test_the_webhook_text_names_what_failed_and_carries_no_secret(tmp_path: Path) -> None:
    run = _failing_run(tmp_path)
    payload = webhook_payload(_model(run), run.environment, f"https://ci.example.test/{SECRET}/report.json",
                              run.secrets)
    text = payload["text"]
    assert text.startswith(f"*Deploy gate FAIL* for `staging` (shop), run {run.run_id}; blocks promotion: yes "
                           "(1 check failed; 1 threshold failed; 1 threshold warned)\n"
                           "checks: 3 passed, 1 failed, 1 skipped · thresholds: 1 passed, 1 warned, 1 failed\n")
    assert "Categories: smoke: WARN, crud: FAIL" in text
    assert "Failed checks: test_create_read_update_delete" in text
    # the figures read as in the terminal and the Markdown (one wording)
    assert "Breaches: smoke.health.latency_ms{path=/health} 1500 ms (warn level > 1000 ms); " \
           "crud.create_ms 6200 ms (fail level > 5000 ms)" in text
    assert _leaks(json.dumps(payload)) == [] and "Report: https://ci.example.test/***" in text
    assert payload["blocks"][0]["text"]["text"] == text


def test_cloudwatch_data_holds_the_verdicts_and_the_judged_unlabelled_metrics(tmp_path: Path) -> None:
    run = _failing_run(tmp_path)
    report = _model(run)
    data = cloudwatch_data(report, run.environment, CloudWatchSpec(), run.secrets)
    dims = [{"Name": "Service", "Value": "shop"}, {"Name": "Environment", "Value": "staging"}]
    assert data[0] == {"MetricName": "GateVerdict", "Dimensions": dims, "Value": 2.0, "Unit": "None"}
    assert {d["Dimensions"][-1]["Value"]: d["Value"] for d in data if d["MetricName"] == "CategoryVerdict"} == {
        "smoke": 1.0, "crud": 2.0, "performance": 0.0}  # custom: recorded only, no verdict to publish
    # labelled and INFO metrics stay out unless listed
    assert [(d["MetricName"], d["Value"], d["Unit"]) for d in data[4:]] == [
        ("crud.create_ms", 6200.0, "Milliseconds"), ("performance.p95_ms", 180.0, "Milliseconds")]
    listed = cloudwatch_data(report, run.environment, CloudWatchSpec(metrics=("custom.queue_depth_count",)))
    assert [(d["MetricName"], d["Unit"]) for d in listed[4:]] == [("custom.queue_depth_count", "Count")]
