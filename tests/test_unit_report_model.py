"""The report model's answers (pure, fast, no pytest run): whether a run blocks promotion and why, counts of
checks and thresholds said one way, headroom, the run's metadata (commit, CI job, deployed version read from
an endpoint served on 127.0.0.1), artifact links, the ``[report]`` table, the JSON form read back, and the JUnit
properties and Allure results files built from it (Allure's own file logger into a temporary directory)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from gatehelpers import serve
from pytest_deploygate.config import AwsSpec, Environment, HttpSpec, Project
from pytest_deploygate.gate import FAIL, INCONCLUSIVE, PASS, WARN, Metric, MetricResult, judge
from pytest_deploygate.report.cases import marker, threshold_properties, verdict_nodeid, verdict_properties
from pytest_deploygate.report.metadata import (
    ReportSpec,
    artifact_links,
    ci_job_url,
    collect_metadata,
    commit_of,
    deployed_version,
    fill_url,
)
from pytest_deploygate.report.model import GateReport, headroom, headroom_text
from pytest_deploygate.run import GateRun, RunSettings, Target
from pytest_deploygate.schema import ConfigError, Source, Where
from pytest_deploygate.sections import SmokeSpec
from pytest_deploygate.thresholds import Policy, Threshold, parse_condition

LATENCY = "smoke.health.latency_ms"
RATE = "performance.success_rate"


def _threshold(metric: str, fail: str, warn: str | None = None) -> Threshold:
    return Threshold(metric, parse_condition(fail, metric), parse_condition(warn, metric) if warn else None)


POLICY = Policy(Path("thresholds.toml"), (_threshold(LATENCY, "> 3000", "> 1000"), _threshold(RATE, "< 95", "< 99"),
                                          _threshold("crud.create_ms", "> 5000")))


def _run(tmp_path: Path, metrics: list[Metric], outcomes: dict[str, tuple[str, str, str]],
         fail_on_warn: bool = False, base_url: str = "https://staging.example.test/api") -> GateRun:
    env = Environment(name="staging", service="shop", stage="staging", base_url=base_url, frontend_url="",
                      protected=False, launch=None, aws=AwsSpec(), auth=None, tables=(), buckets=(), http=HttpSpec(),
                      smoke=SmokeSpec())
    project = Project(path=tmp_path / "deploygate.toml", service="shop", environments={"staging": env})
    settings = RunSettings(env_name="staging", env_source="--env", project=project, policy=POLICY,
                           config_path=project.path, report_path=tmp_path / ".deploygate" / "report.json",
                           fail_on_warn=fail_on_warn)
    run = GateRun(settings, Target(project))
    run.results.metrics = metrics
    run.results.outcomes = outcomes
    return run


def _report(run: GateRun, exit_status: int = 0, environ: dict[str, str] | None = None) -> GateReport:
    verdict = judge("staging", run.results.metrics, POLICY, run.results.tallies(),
                    fail_on_warn=run.settings.fail_on_warn)
    return GateReport.of_verdict(run, verdict, exit_status, "0", environ=environ or {})


def _m(name: str, value: float, samples: int | None = None, **labels: str) -> Metric:
    unit = "ms" if name.endswith("_ms") else "%" if name.endswith("_rate") else ""
    return Metric(name, value, unit, labels, "suites/test_x.py::t", samples)


OK = {"suites/test_smoke.py::test_health": ("smoke", "passed", "")}


# --------------------------------------------------------------------------------------------------
# blocks promotion, and why


def test_a_warn_blocks_promotion_only_with_fail_on_warn_and_says_so(tmp_path: Path) -> None:
    metrics = [_m(LATENCY, 1500.0, path="/health"), _m(LATENCY, 380.0, path="/items")]
    lenient = _report(_run(tmp_path, metrics, OK))
    assert lenient.promotion() == "blocks promotion: no (1 threshold warned, which blocks only with --fail-on-warn)"
    strict = _report(_run(tmp_path, metrics, OK, fail_on_warn=True), exit_status=1)
    assert strict.promotion() == "blocks promotion: yes (1 threshold warned, and --fail-on-warn makes that block)"
    assert lenient.counts_line() == strict.counts_line() == "checks: 1 passed · thresholds: 1 passed, 1 warned"


def test_what_blocks_is_named_first_and_counts_keep_checks_and_thresholds_apart(tmp_path: Path) -> None:
    outcomes = {**OK, "suites/test_crud.py::test_crud": ("crud", "failed", "401"),
                "suites/test_crud.py::test_prod": ("crud", "skipped", "protected")}
    run = _run(tmp_path, [_m("crud.create_ms", 6200.0), _m("crud.create_ms", 6300.0, path="/b"),
                          _m(LATENCY, 1500.0), _m(RATE, 97.0, samples=20)], outcomes)
    report = _report(run, exit_status=1)
    assert report.promotion() == ("blocks promotion: yes (1 check failed; 2 thresholds failed; 1 threshold warned; "
                                  "1 threshold could not be told)")
    assert report.counts_line() == ("checks: 1 passed, 1 failed, 1 skipped · "
                                    "thresholds: 0 passed, 1 warned, 2 failed, 1 inconclusive")
    data = report.to_dict()
    assert data["promotion"] == report.promotion()
    assert data["counts"] == {"checks": {"passed": 1, "failed": 1, "skipped": 1},
                              "thresholds": {"passed": 0, "warned": 1, "failed": 2, "inconclusive": 1},
                              "line": report.counts_line()}


def test_a_healthy_run_and_runs_without_a_verdict(tmp_path: Path) -> None:
    assert _report(_run(tmp_path, [_m(LATENCY, 12.0)], OK)).promotion() == \
        "blocks promotion: no (every check and threshold passed)"
    assert _report(_run(tmp_path, [], {})).promotion() == "blocks promotion: yes (nothing was checked)"
    interrupted = GateReport.from_dict({"verdict": "INTERRUPTED", "partial_verdict": PASS, "interrupted": True})
    assert interrupted.promotion() == "blocks promotion: yes (the run was interrupted; partial verdict PASS)"
    error = GateReport.from_dict({"verdict": "ERROR", "error": "cannot connect"})
    assert error.promotion() == "blocks promotion: yes (the gate could not run)"


# --------------------------------------------------------------------------------------------------
# headroom


@pytest.mark.parametrize(("name", "value", "samples", "verdict", "room", "text"), [
    (LATENCY, 380.0, None, PASS, 87.3, "380 ms of 3000 ms, 87 % headroom"),
    (LATENCY, 1500.0, None, WARN, 50.0, "1500 ms of 3000 ms, 50 % headroom (past warn level > 1000 ms)"),
    ("crud.create_ms", 6200.0, None, FAIL, -24.0, "6200 ms of 5000 ms, 24 % over"),
    (RATE, 99.6, 5000, PASS, 4.8, "99.6 % of 95 %, 5 % headroom"),
    (RATE, 97.9605, 5000, WARN, 3.1, "98.0 % of 95 %, 3 % headroom (past warn level < 99 %)"),
])
def test_headroom_is_measured_to_the_fail_level(tmp_path: Path, name: str, value: float, samples: int | None,
                                                verdict: str, room: float, text: str) -> None:
    (result,) = _report(_run(tmp_path, [_m(name, value, samples=samples)], OK)).metrics
    assert result.verdict == verdict
    assert headroom(result) == pytest.approx(room, abs=0.05)
    assert headroom_text(result) == text


def test_no_headroom_without_a_comparable_level() -> None:
    zero = MetricResult("smoke.frontend.missing_assets_count", "smoke.frontend.missing_assets_count", {}, 0.0, "",
                        PASS, "> 0", "fail > 0", "")
    assert headroom(zero) is None and headroom_text(zero) == "0 (> 0)"


# --------------------------------------------------------------------------------------------------
# JUnit properties and names


def test_threshold_properties_read_as_every_report_writes_numbers(tmp_path: Path) -> None:
    report = _report(_run(tmp_path, [_m(RATE, 97.9605, samples=5000), _m(LATENCY, 380.0, samples=3)], OK))
    rate, latency = sorted(report.metrics, key=lambda m: m.name)
    props = dict(threshold_properties(rate))
    assert (props["verdict"], props["value"], props["unit"], props["limit"]) == (WARN, "98.0", "%", "< 99 %")
    assert props["headroom"] == "3 %" and props["samples"] == 5000
    assert props["interval"] == "97.5 % to 98.3 %"
    assert props["figure"] == "98.0 % of 95 %, 3 % headroom (past warn level < 99 %)"
    assert marker(rate) == "[WARN 98.0 % < 99 %]" and marker(latency) == ""
    assert dict(threshold_properties(latency))["figure"] == "380 ms of 3000 ms, 87 % headroom"
    assert verdict_nodeid(report) == "deploygate::gate::verdict [GATE WARN, blocks promotion: no]"


def test_the_verdict_case_holds_no_local_absolute_path(tmp_path: Path) -> None:
    run = _run(tmp_path, [_m(LATENCY, 12.0)], OK)
    run.results.artifacts["locust_html"] = str(tmp_path / ".deploygate" / "locust" / "staging.html")
    props = dict(verdict_properties(_report(run, environ={"GITHUB_SHA": "abc1234"})))
    assert props["artifact:locust_html"] == "locust/staging.html" and props["artifact:report"] == "report.json"
    assert props["commit"] == "abc1234" and props["blocks_promotion"] == "no"
    assert str(tmp_path) not in json.dumps(props)


# --------------------------------------------------------------------------------------------------
# metadata


def test_ci_job_links_and_commits_from_the_usual_variables(tmp_path: Path) -> None:
    github = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "42",
              "GITHUB_SHA": "f" * 40, "GITHUB_ACTIONS": "true"}
    assert ci_job_url(github) == "https://github.com/o/r/actions/runs/42"
    assert ci_job_url({"CI_JOB_URL": "https://gitlab.example.test/o/r/-/jobs/7"}) == \
        "https://gitlab.example.test/o/r/-/jobs/7"
    assert commit_of({"CI_COMMIT_SHA": "0123abc"}, tmp_path) == "0123abc"
    assert commit_of({}, tmp_path) == ""  # not a repository: no commit rather than a guess
    meta = collect_metadata(_run(tmp_path, [], {}), github)
    assert meta == {"commit": "f" * 40, "ci": "GitHub Actions", "ci_job_url": "https://github.com/o/r/actions/runs/42",
                    "target_url": "https://staging.example.test/api"}


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_commit_of_a_checkout_when_no_ci_variable_names_it(tmp_path: Path) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.test", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert commit_of({}, tmp_path) == head.strip() and len(head.strip()) == 40


class _Version(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        routes: dict[str, tuple[int, dict[str, str], bytes]] = {
            "/api/version": (200, {"Content-Type": "application/json"}, b'{"version": "1.4.2", "build": 7}'),
            "/api/header": (200, {"X-App-Version": "2.0.0-rc1"}, b"ok"),
            "/api/text": (200, {"Content-Type": "text/plain"}, b"3.1.0\n"),
            "/api/broken": (500, {}, b"boom"),
        }
        status, headers, body = routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def version_api() -> Iterator[str]:
    server, url = serve(_Version)
    yield url + "/api"
    server.shutdown()
    server.server_close()


def test_the_deployed_version_from_an_endpoint_its_header_or_text(tmp_path: Path, version_api: str) -> None:
    run = _run(tmp_path, [], {}, base_url=version_api)
    assert deployed_version(run, ReportSpec()) == ""  # not configured: not asked
    assert deployed_version(run, ReportSpec(version_url="/version")) == "1.4.2"
    assert deployed_version(run, ReportSpec(version_url="/header", version_header="X-App-Version")) == "2.0.0-rc1"
    assert deployed_version(run, ReportSpec(version_url="/text")) == "3.1.0"
    # what could not be read says so; never a version
    assert deployed_version(run, ReportSpec(version_url="/broken")) == "could not read /broken: HTTP 500"
    dead = _run(tmp_path, [], {}, base_url="http://127.0.0.1:9/api")
    assert deployed_version(dead, ReportSpec(version_url="/version", timeout_s=2)).startswith(
        "could not read /version: ")


# --------------------------------------------------------------------------------------------------
# links and the [report] table


def test_artifact_links_relative_to_the_report_directory_or_through_the_template(tmp_path: Path) -> None:
    run = _run(tmp_path, [], {})
    artifacts = {"locust_html": str(tmp_path / ".deploygate" / "locust-staging.html")}
    assert artifact_links(run, artifacts, {}) == {"locust_html": "locust-staging.html", "report": "report.json"}
    template = "${CI_JOB_URL}/artifacts/file/.deploygate/{path}?name={name}"
    assert fill_url(template, "a b.html", "x", {"CI_JOB_URL": "https://ci.example.test/jobs/9"}) == \
        "https://ci.example.test/jobs/9/artifacts/file/.deploygate/a b.html?name=x"
    assert fill_url(template, "a.html", "x", {}) is None  # a local run: the relative path instead


def test_the_report_table_checks_its_placeholders(tmp_path: Path) -> None:
    text = '[report]\nreport_url = "${CI_JOB_URL}/{paht}"\n'
    src = Source(tmp_path / "deploygate.toml", text, {"report": {"report_url": "${CI_JOB_URL}/{paht}"}})
    with pytest.raises(ConfigError, match=r"unknown placeholder \{paht\}"):
        ReportSpec.from_table({"report_url": "${CI_JOB_URL}/{paht}"}, Where(src, ("report",)))
    spec = ReportSpec.from_table({"report_url": "${CI_JOB_URL}/{path}", "version_url": "/version"},
                                 Where(src, ("report",)))
    assert (spec.report_url, spec.version_url, spec.version_key) == ("${CI_JOB_URL}/{path}", "/version", "version")


# --------------------------------------------------------------------------------------------------
# the JSON form read back


def test_the_json_form_keeps_metadata_links_and_reads_back_the_same(tmp_path: Path) -> None:
    run = _run(tmp_path, [_m(LATENCY, 380.0, samples=3), _m("crud.create_ms", 6200.0)],
               {**OK, "suites/test_crud.py::t": ("crud", "passed", "")})
    report = _report(run, exit_status=1, environ={"CI_JOB_URL": "https://ci.example.test/j/1", "CI_COMMIT_SHA": "c0"})
    data = report.to_dict()
    assert data["metadata"] == {"commit": "c0", "ci_job_url": "https://ci.example.test/j/1",
                                "target_url": "https://staging.example.test/api"}
    assert data["links"] == {"report": "report.json"}
    assert {m["name"]: m.get("headroom_pct") for m in data["metrics"]} == {LATENCY: 87.3, "crud.create_ms": -24.0}
    back = GateReport.from_dict(json.loads(json.dumps(data)))
    assert back.metadata == report.metadata and back.links == report.links
    assert back.promotion() == report.promotion() and back.counts_line() == report.counts_line()
    assert back.duration_s == report.duration_s


# --------------------------------------------------------------------------------------------------
# Allure results files


@pytest.fixture
def allure_dir(tmp_path: Path) -> Iterator[Path]:
    """Allure's own file logger registered as --alluredir would, writing to a temporary directory."""
    import allure_commons
    from allure_commons.logger import AllureFileLogger

    out = tmp_path / "allure-results"
    logger = AllureFileLogger(str(out))
    allure_commons.plugin_manager.register(logger)
    yield out
    allure_commons.plugin_manager.unregister(logger)


def test_allure_results_verdict_first_categories_environment_and_attachments(tmp_path: Path, allure_dir: Path) -> None:
    from pytest_deploygate.report.allure import report_gate

    run = _run(tmp_path, [_m(LATENCY, 380.0, samples=3), _m(LATENCY, 1500.0, path="/slow"),
                          _m(RATE, 87.5, samples=8)], OK)
    html = tmp_path / ".deploygate" / "locust-staging.html"
    html.parent.mkdir(parents=True)
    html.write_text("<!DOCTYPE html><title>Locust</title>")
    run.results.artifacts["locust_html"] = "locust-staging.html"  # recorded relative to the report directory
    report = _report(run, environ={"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r",
                                   "GITHUB_RUN_ID": "42", "GITHUB_SHA": "abc", "GITHUB_ACTIONS": "true"})
    assert report_gate(report, allure_dir, run.settings.report_path.parent) == 4
    results = sorted((json.loads(p.read_text()) for p in allure_dir.glob("*-result.json")), key=lambda r: r["start"])
    assert [r["name"] for r in results] == [
        "verdict: GATE WARN (blocks promotion: no)",
        "smoke.health.latency_ms{path=/slow} [WARN 1500 ms > 1000 ms]",
        "performance.success_rate [INCONCLUSIVE 87.5 %, n = 8, cannot tell against < 95 %]",
        "smoke.health.latency_ms"]
    verdict, warned, unsure, passed = results
    assert [r["status"] for r in results] == ["passed"] * 4  # a WARN that does not block stays green
    assert verdict["statusDetails"]["message"] == (
        "GATE WARN — blocks promotion: no (1 threshold warned, which blocks only with --fail-on-warn; "
        "1 threshold could not be told, which blocks only with --fail-on-inconclusive)")
    assert verdict["links"] == [{"type": "link", "url": "https://github.com/o/r/actions/runs/42", "name": "CI job"}]
    assert {"name": "tag", "value": "WARN"} in warned["labels"]
    assert warned["statusDetails"]["message"].startswith("WARN: smoke.health.latency_ms{path=/slow} = 1500 ms ")
    assert {p["name"]: p["value"] for p in passed["parameters"]} == {
        "value": "380 ms", "limit": "> 3000 ms", "threshold": "warn > 1000 ms, fail > 3000 ms", "headroom": "87 %",
        "n": "3"}
    assert unsure["statusDetails"]["message"].startswith("INCONCLUSIVE: ")
    attached = {a["name"]: allure_dir / a["source"] for a in verdict["attachments"]}
    assert sorted(attached) == ["Locust HTML report", "findings (JSON)", "gate report (JSON)",
                                "gate summary (Markdown)"]
    assert attached["Locust HTML report"].read_text().startswith("<!DOCTYPE html>")
    assert json.loads(attached["gate report (JSON)"].read_text())["verdict"] == WARN
    assert json.loads(attached["findings (JSON)"].read_text()) == []
    categories = json.loads((allure_dir / "categories.json").read_text())
    assert [c["name"] for c in categories] == ["gate FAIL", "WARN", "could not check"]
    env = (allure_dir / "environment.properties").read_text(encoding="latin-1")
    assert "deploygate.verdict=WARN\n" in env and "commit=abc\n" in env
    assert "ci.job=https://github.com/o/r/actions/runs/42\n" in env
    assert "deploygate.counts=checks\\: 1 passed \\u00b7 thresholds\\: " not in env  # values need no escaping
    assert "deploygate.counts=checks: 1 passed \\u00b7 thresholds: 1 passed, 1 warned, 1 inconclusive\n" in env
    executor = json.loads((allure_dir / "executor.json").read_text())
    assert executor["type"] == "github" and executor["buildUrl"] == "https://github.com/o/r/actions/runs/42"
    assert executor["reportName"] == "deploygate: staging — GATE WARN (blocks promotion: no)"


def test_allure_categories_match_what_each_case_says() -> None:
    """The categories' regexes against the messages the cases carry (Python's re agrees with JavaScript's and
    Java's on these patterns: no inline flags, ``[\\s\\S]`` for any character)."""
    import re

    from pytest_deploygate.report.allure import CATEGORIES

    def category(status: str, message: str) -> str | None:
        for c in CATEGORIES:
            if status in c["matchedStatuses"] and re.fullmatch(c["messageRegex"], message):
                return str(c["name"])
        return None

    assert category("failed", "FAIL: crud.create_ms = 6200 ms breaches fail level > 5000 ms") == "gate FAIL"
    assert category("failed", "GATE FAIL — blocks promotion: yes (1 check failed)") == "gate FAIL"
    assert category("failed", "GATE WARN — blocks promotion: yes (1 threshold warned, and --fail-on-warn ...)") \
        == "gate FAIL"
    assert category("passed", "GATE WARN — blocks promotion: no (1 threshold warned, ...)") == "WARN"
    assert category("passed", "WARN: x = 1500 ms breaches warn level > 1000 ms; does not block") == "WARN"
    assert category("passed", "INCONCLUSIVE: x = 50.0 % cannot be told against < 95 %") == "could not check"
    assert category("failed", "could not verify https://staging/api: 503") == "could not check"
    assert category("failed", "pytest_deploygate.failures.RequestFailed: GET /api: 503") == "could not check"
    assert category("passed", "GATE WARN — blocks promotion: no (1 threshold warned, ...; 1 threshold could not "
                              "be told, ...)") == "WARN"
    assert category("passed", "PASS: x = 380 ms of 3000 ms, 87 % headroom") is None
    assert INCONCLUSIVE  # the level the "could not check" category is about


# --------------------------------------------------------------------------------------------------
# the [report] table through the model into Markdown (a project carrying it, as config.py builds it)


@dataclass(frozen=True)
class _ReportingProject(Project):
    report: ReportSpec = field(default_factory=ReportSpec)


def test_markdown_says_where_the_run_came_from_and_links_through_report_url(tmp_path: Path, version_api: str) -> None:
    from pytest_deploygate.report.markdown import render_markdown

    run = _run(tmp_path, [_m(LATENCY, 380.0, samples=3)], OK, base_url=version_api)
    spec = ReportSpec(report_url="${CI_JOB_URL}/artifacts/file/.deploygate/{path}", version_url="/version")
    project = _ReportingProject(path=run.project.path, service="shop", environments=run.project.environments,
                                report=spec)
    run = GateRun(replace(run.settings, project=project), Target(project), run.results)
    run.results.artifacts["locust_html"] = "performance/locust staging.html"
    environ = {"CI_JOB_URL": "https://gitlab.example.test/o/r/-/jobs/7", "CI_COMMIT_SHA": "0123456789abcdef",
               "GITLAB_CI": "true"}
    report = _report(run, environ=environ)
    assert report.metadata["deployed_version"] == "1.4.2"
    md = render_markdown(report)
    assert (f"**Run** · commit `0123456789ab` · [GitLab CI job](https://gitlab.example.test/o/r/-/jobs/7) · "
            f"target {version_api} · deployed version `1.4.2` · started ") in md
    job = "https://gitlab.example.test/o/r/-/jobs/7/artifacts/file/.deploygate"
    assert (f"**Artifacts** · [Locust HTML report](<{job}/performance/locust staging.html>) · "
            f"[gate report (JSON)]({job}/report.json)\n") in md
    # the same run where the job's variable is not set: links relative to the report directory
    local = render_markdown(_report(run, environ={}))
    assert "[Locust HTML report](<performance/locust staging.html>) · [gate report (JSON)](report.json) " \
           "(paths relative to the report directory)" in local
