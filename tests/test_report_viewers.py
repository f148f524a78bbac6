"""What the people deciding on a promotion see, end to end: the gate run against the reference deployment for
a WARN and a FAIL run, its JUnit XML parsed (the verdict case, values on PASS and WARN cases, no local absolute
path), its Markdown summary rendered to HTML as GitHub does (CommonMark and tables: markdown-it-py), its Allure
results generated into a report by Allure 3 (npm ``allure``, tests/allure) and read back from the report's own
data files (verdict case, WARN marker, categories, environment block, attachments present and readable).

With Chromium (Debian's ``chromium``) and Playwright installed, each viewer is also opened headless and what it
shows is asserted on; ``DEPLOYGATE_SCREENSHOTS=1`` then keeps the screenshots under docs/ (the README's
"Reading the reports"). Without them those steps are skipped, never faked; on CI (``CI`` set) the Allure 3
and Chromium steps are required."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from gatehelpers import Gate

REPO = Path(__file__).resolve().parent.parent
VIEWERS = REPO / "tests" / "allure"
DOCS = REPO / "docs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SELECT = "gate and (smoke or performance)"
WARN_LEVEL = '\n[environments.staging.metrics]\n"smoke.health.latency_ms" = { warn = "> 0", fail = "> 60 s" }\n'


def _require(ok: bool, what: str) -> None:
    """Skip a viewer that is not installed here; on CI it must be there."""
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is not installed (.ci/run installs it)")
        pytest.skip(f"{what} is not installed")


def _warn_policy(gate: Gate) -> None:
    """Every latency far from its fail level (a busy machine decides nothing), and the health latency warning
    at any value: a WARN run whatever the machine does."""
    path = gate.generous_policy()
    path.write_text(path.read_text() + WARN_LEVEL)


def _run(gate: Gate, *extra: str, faults: str | None = None) -> Any:
    return gate.run("--env", "staging", "-m", SELECT, "--junitxml", "junit.xml", "--alluredir", "allure-results",
                    "--gate-markdown", "out/summary.md", *extra, faults=faults)


# --------------------------------------------------------------------------------------------------
# JUnit


def _cases(path: Path) -> dict[str, ET.Element]:
    return {c.get("name") or "": c for c in ET.parse(path).getroot().iter("testcase")}


def _props(case: ET.Element) -> dict[str, str]:
    return {p.get("name") or "": p.get("value") or "" for p in case.iter("property")}


def _check_junit(gate: Gate, verdict: str, blocks: str) -> dict[str, ET.Element]:
    path = gate.path / "junit.xml"
    text = path.read_text()
    assert str(gate.path) not in text and str(gate.tmp) not in text  # no local absolute path
    cases = _cases(path)
    name = f"verdict [GATE {verdict}, blocks promotion: {blocks}]"
    assert name in cases, sorted(cases)
    case = cases[name]
    assert case.get("classname") == "deploygate.gate"
    assert (case.find("failure") is not None) == (blocks == "yes")
    props = _props(case)
    assert props["blocks_promotion"] == blocks and props["promotion"].startswith(f"blocks promotion: {blocks} (")
    assert props["counts"].startswith("checks: ") and " · thresholds: " in props["counts"]
    assert props["artifact:locust_html"].endswith(".html") and not props["artifact:locust_html"].startswith("/")
    # a passing threshold shows its value, limit, headroom and sample size
    p95 = _props(cases["performance.p95_ms"])
    assert p95["verdict"] == "PASS" and p95["unit"] == "ms" and p95["limit"] == "> 60000 ms"
    assert float(p95["value"]) >= 0 and p95["figure"].endswith(" % headroom") and p95["headroom"].endswith(" %")
    api = [_props(c) for n, c in cases.items() if n.startswith("smoke.api.latency_ms{")]
    assert api and all(p["verdict"] == "PASS" and int(p["samples"]) >= 1 and "headroom" in p["figure"] for p in api)
    return cases


# --------------------------------------------------------------------------------------------------
# Markdown as GitHub renders it


def _markdown_html(markdown: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").render(markdown)


GITHUB_CSS = """body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;font-size:14px;line-height:1.5;
color:#1f2328;max-width:1012px;margin:24px auto;padding:0 16px}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #d1d9e0;padding:6px 13px}tr:nth-child(2n){background:#f6f8fa}code{background:#eff1f3;
padding:.2em .4em;border-radius:6px;font-size:85%}h2{border-bottom:1px solid #d1d9e0;padding-bottom:.3em}
summary{cursor:pointer;font-weight:600}a{color:#0969da}"""


def _check_markdown(gate: Gate, verdict: str, blocks: str, url_prefix: str = "") -> str:
    summary = (gate.path / "out" / "summary.md").read_text()
    html = _markdown_html(summary)
    heading = html.split("</h2>", 1)[0]
    assert f"GATE {verdict} · blocks promotion: {blocks} (" in heading, heading
    assert "<details" in html and "<th>value of limit, headroom</th>" in html
    assert "% headroom</td>" in html
    assert '<a href="locust-' in html or '<a href="locust/' in html or "Locust HTML report</a>" in html
    # every relative artifact link resolves from the report directory
    report_dir = gate.path / ".deploygate"
    report = json.loads((report_dir / "report.json").read_text())
    for name, link in report["links"].items():
        assert link.startswith(url_prefix) and (report_dir / link.removeprefix(url_prefix)).is_file(), (name, link)
        assert f'href="{link}"' in html.replace("%20", " ")
    assert "checks: " in html and " · thresholds: " in html
    return f"<!doctype html><meta charset=utf-8><style>{GITHUB_CSS}</style>{html}"


# --------------------------------------------------------------------------------------------------
# Allure 3


def _allure_generate(results: Path, out: Path) -> Path:
    _require((VIEWERS / "node_modules" / ".bin" / "allure").exists(), "Allure 3 (npm ci --prefix tests/allure)")
    executor = json.loads((results / "executor.json").read_text())
    env = dict(os.environ, DEPLOYGATE_ALLURE_RESULTS=str(results), NO_COLOR="1")
    done = subprocess.run([str(VIEWERS / "node_modules" / ".bin" / "allure"), "generate", str(results), "-o", str(out),
                           "--config", str(VIEWERS / "allurerc.mjs"), "--report-name", executor["reportName"]],
                          cwd=VIEWERS, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def _check_allure(out: Path, verdict: str, blocks: str, status: str) -> dict[str, Any]:
    results = [json.loads(p.read_text()) for p in (out / "data" / "test-results").glob("*.json")]
    by_name = {r["name"]: r for r in results}
    case = by_name[f"verdict: GATE {verdict} (blocks promotion: {blocks})"]
    assert case["status"] == status
    assert case["error"]["message"].startswith(f"GATE {verdict} — blocks promotion: {blocks} (")
    # the attachments are in the report and readable
    files = {a["link"]["name"]: out / "data" / "attachments" / f"{a['link']['id']}{a['link']['ext']}"
             for a in _attachments(case)}
    assert {"Locust HTML report", "locustfile", "findings (JSON)", "gate report (JSON)"} <= set(files), files
    assert files["Locust HTML report"].read_text().lower().lstrip().startswith("<!doctype html")
    assert "class " in files["locustfile"].read_text() or "def " in files["locustfile"].read_text()
    assert isinstance(json.loads(files["findings (JSON)"].read_text()), list)
    assert json.loads(files["gate report (JSON)"].read_text())["verdict"] == verdict
    # the Environment block
    env = {e["name"]: e["values"][0] for e in json.loads((out / "widgets" / "allure_environment.json").read_text())}
    assert env["deploygate.verdict"] == verdict and env["target.url"].startswith("http://127.0.0.1:")
    assert env["deploygate.blocks_promotion"].startswith(f"blocks promotion: {blocks} (")
    categories = json.loads((out / "widgets" / "categories.json").read_text())
    names = {n["name"] for n in categories["nodes"].values() if n.get("type") == "category"}
    return {"results": by_name, "categories": names, "env": env}


def _attachments(case: dict[str, Any]) -> list[dict[str, Any]]:
    """The attachments of a test result as Allure 3 stores them (steps of type attachment)."""
    found = []
    for step in case.get("steps") or []:
        if step.get("type") == "attachment":
            found.append(step)
    return found


# --------------------------------------------------------------------------------------------------
# headless Chromium


@contextmanager
def _served(directory: Path) -> Iterator[str]:
    """``directory`` over HTTP on a free loopback port (the Allure report fetches its data files)."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "Playwright for Python")
    _require(CHROMIUM is not None, "Chromium (apt-get install chromium)")
    # Chromium's singleton socket lives in $TMPDIR: a test's deep temporary path is past a socket path's limit
    short = tempfile.mkdtemp(prefix="dg-chromium-", dir="/tmp" if Path("/tmp").is_dir() else None)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"],
                                        env={**os.environ, "TMPDIR": short})
            try:
                yield browser.new_page(viewport={"width": 1280, "height": 900})
            finally:
                browser.close()
    finally:
        shutil.rmtree(short, ignore_errors=True)


def _allure_pages(page: Any, url: str, tmp: Path, verdict: str, blocks: str) -> None:
    """Allure 3's overview (the Environment block says the verdict), then the verdict case's own page (its
    message says whether it blocks promotion; its attachments are listed)."""
    page.goto(url)
    page.wait_for_selector("text=deploygate.verdict", timeout=30_000)
    page.wait_for_timeout(1000)  # it scrolls to the first test once its tree is in: back to the top
    page.evaluate("() => { for (const e of document.querySelectorAll('*')) { if (e.scrollTop) e.scrollTop = 0; } }")
    page.wait_for_timeout(300)
    assert f"GATE {verdict} (blocks promotion: {blocks})" in page.inner_text("body")  # the report's name
    _shot(page, tmp, f"allure-{verdict.lower()}.png")
    name = f"verdict: GATE {verdict} (blocks promotion: {blocks})"
    path = ("deploygate gate: staging", "verdict", name)  # the tree: parent suite, suite, case
    for step, inner in pairwise(path):
        page.wait_for_timeout(300)
        if not page.get_by_text(inner, exact=True).count():  # a group with a failure opens by itself
            page.get_by_text(step, exact=True).first.click()
    page.get_by_text(name, exact=True).first.click()
    page.wait_for_selector("text=Test body", timeout=30_000)
    page.wait_for_selector("text=locustfile", timeout=30_000)
    body = page.inner_text("body")  # (the description is in a frame of its own)
    assert f"Category: {'gate FAIL' if blocks == 'yes' else verdict}" in body, body
    if blocks == "yes":  # a failed case shows its message
        assert f"GATE {verdict} — blocks promotion: yes (" in body, body
    assert "Locust HTML report" in body and "findings (JSON)" in body and "locustfile" in body, body
    _shot(page, tmp, f"allure-verdict-{verdict.lower()}.png")


def _scroll_to(page: Any, text: str) -> None:
    """Scroll down until ``text`` is on the page (a viewer that renders only what is near the view), and bring it
    to the top of the view."""
    find = """text => {
        const el = [...document.querySelectorAll('body *')]
            .find(e => e.children.length === 0 && e.textContent.includes(text));
        if (el) { el.scrollIntoView({block: 'center'}); }
        return Boolean(el);
    }"""
    for _ in range(200):
        if page.evaluate(find, text):
            for _ in range(3):  # what renders above it as it comes into view moves it: settle
                page.wait_for_timeout(150)
                page.evaluate(find, text)
            return
        page.mouse.wheel(0, 600)
        page.wait_for_timeout(50)
    raise AssertionError(f"{text!r} is not shown")


def _shot(page: Any, tmp: Path, name: str, full_page: bool = False) -> None:
    path = tmp / name
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 5000
    if os.environ.get("DEPLOYGATE_SCREENSHOTS"):
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS / name)


def _junit_html(junit: Path, out: Path) -> tuple[Path, Path]:
    """The JUnit XML through junit2html and xunit-viewer."""
    j2h = Path(shutil.which("junit2html") or Path(sys.executable).with_name("junit2html"))
    _require(j2h.exists(), "junit2html")
    _require((VIEWERS / "node_modules" / ".bin" / "xunit-viewer").exists(),
             "xunit-viewer (npm ci --prefix tests/allure)")
    subprocess.run([str(j2h), str(junit), str(out / "junit2html.html")], check=True, timeout=120, capture_output=True)
    subprocess.run([str(VIEWERS / "node_modules" / ".bin" / "xunit-viewer"), "-r", str(junit), "-o",
                    str(out / "xunit-viewer.html"), "-t", "deploygate"], check=True, timeout=120, capture_output=True,
                   cwd=VIEWERS)
    return out / "junit2html.html", out / "xunit-viewer.html"


# --------------------------------------------------------------------------------------------------
# the runs


def test_a_warn_run_in_every_viewer(gate_project: Gate, tmp_path: Path) -> None:
    _warn_policy(gate_project)
    res = _run(gate_project)
    assert res.ret == 0, res.output
    assert res.report is not None and res.report["verdict"] == "WARN" and res.report["blocks_promotion"] is False
    cases = _check_junit(gate_project, "WARN", "no")
    warned = [n for n in cases if n.startswith("smoke.health.latency_ms{path=/health} [WARN ")]
    assert warned and warned[0].endswith(" > 0 ms]") and cases[warned[0]].find("failure") is None
    props = _props(cases[warned[0]])
    assert props["verdict"] == "WARN" and props["limit"] == "> 0 ms" and "past warn level > 0 ms" in props["figure"]
    page_html = _check_markdown(gate_project, "WARN", "no")
    out = _allure_generate(gate_project.path / "allure-results", tmp_path / "allure-report")
    allure = _check_allure(out, "WARN", "no", "passed")
    warn_case = next(r for n, r in allure["results"].items() if n.startswith("smoke.health.latency_ms{path=/health} "))
    assert warn_case["status"] == "passed" and "[WARN " in warn_case["name"]
    assert {"name": "tag", "value": "WARN"} in warn_case["labels"]
    assert "WARN" in allure["categories"] and "gate FAIL" not in allure["categories"]
    # with --fail-on-warn the same WARN blocks, and the verdict case says so
    strict = gate_project.run("--env", "staging", "-m", "gate and smoke", "--junitxml", "strict.xml",
                              "--fail-on-warn")
    assert strict.ret == 1, strict.output
    verdict = _cases(gate_project.path / "strict.xml")["verdict [GATE WARN, blocks promotion: yes]"]
    failure = verdict.find("failure")
    assert failure is not None and "and --fail-on-warn makes that block" in (failure.get("message") or "")
    # what the viewers show, in headless Chromium
    (tmp_path / "summary.html").write_text(page_html)
    junit2html, xunit = _junit_html(gate_project.path / "junit.xml", tmp_path)
    with _browser() as page, _served(tmp_path) as url:
        page.goto(f"{url}/summary.html")
        assert "blocks promotion: no" in page.inner_text("h2")
        _shot(page, tmp_path, "markdown-warn.png", full_page=True)
        _allure_pages(page, f"{url}/allure-report/index.html", tmp_path, "WARN", "no")
        page.goto(f"{url}/{junit2html.name}")
        body = page.inner_text("body")
        assert "verdict [GATE WARN, blocks promotion: no]" in body and "[WARN " in body
        _shot(page, tmp_path, "junit2html-warn.png")
        page.goto(f"{url}/{xunit.name}")
        # it renders the cases near the view only, sorted by name: the WARN case, then the verdict further down
        _scroll_to(page, "smoke.health.latency_ms{path=/health} [WARN ")
        _scroll_to(page, "verdict [GATE WARN, blocks promotion: no]")
        _shot(page, tmp_path, "xunit-viewer-warn.png")


JOB = "https://ci.example.test/o/r/-/jobs/7"
REPORT_TABLE = """
[report]
report_url = "${CI_JOB_URL}/artifacts/file/.deploygate/{path}"
# the reference API has no version endpoint: its health answer's "stage" stands in for one
version_url = "/health"
version_key = "stage"
"""


def test_a_failing_run_in_every_viewer(gate_project: Gate, tmp_path: Path) -> None:
    _warn_policy(gate_project)
    config = gate_project.path / "deploygate.toml"
    config.write_text(config.read_text() + REPORT_TABLE)
    for var in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_SHA", "GITHUB_ACTIONS"):
        gate_project.monkeypatch.delenv(var, raising=False)
    gate_project.monkeypatch.setenv("CI_JOB_URL", JOB)
    gate_project.monkeypatch.setenv("CI_COMMIT_SHA", "0123456789abcdef0123")
    res = _run(gate_project, faults="staging:frontend-broken")
    assert res.ret == 1, res.output
    assert res.report is not None and res.report["verdict"] == "FAIL" and res.report["blocks_promotion"] is True
    meta = res.report["metadata"]
    assert (meta["commit"], meta["ci_job_url"], meta["deployed_version"]) == ("0123456789abcdef0123", JOB, "staging")
    cases = _check_junit(gate_project, "FAIL", "yes")
    props = _props(cases["verdict [GATE FAIL, blocks promotion: yes]"])
    assert props["deployed_version"] == "staging" and props["ci_job_url"] == JOB
    assert props["artifact:locust_html"].startswith(f"{JOB}/artifacts/file/.deploygate/")
    failure = cases["verdict [GATE FAIL, blocks promotion: yes]"].find("failure")
    assert failure is not None and (failure.get("message") or "").startswith(
        "GATE FAIL — blocks promotion: yes (1 check failed; 1 threshold failed")
    breach = next(n for n in cases if n.startswith("smoke.frontend.missing_assets_count ["))
    assert breach == "smoke.frontend.missing_assets_count [FAIL 1 > 0]"
    # failed and warned threshold cases come first, after the verdict
    gate_names = [c.get("name") or "" for c in ET.parse(gate_project.path / "junit.xml").getroot().iter("testcase")
                  if c.get("classname") == "deploygate.gate"]
    assert gate_names[0].startswith("verdict [") and gate_names[1] == breach and "[WARN " in gate_names[2]
    page_html = _check_markdown(gate_project, "FAIL", "yes", url_prefix=f"{JOB}/artifacts/file/.deploygate/")
    assert f"[CI job]({JOB})" in (gate_project.path / "out" / "summary.md").read_text()
    assert "deployed version `staging`" in (gate_project.path / "out" / "summary.md").read_text()
    out = _allure_generate(gate_project.path / "allure-results", tmp_path / "allure-report")
    allure = _check_allure(out, "FAIL", "yes", "failed")
    assert {"gate FAIL", "WARN"} <= allure["categories"]
    assert (allure["env"]["deployed.version"], allure["env"]["ci.job"], allure["env"]["commit"]) == (
        "staging", JOB, "0123456789abcdef0123")
    executor = json.loads((gate_project.path / "allure-results" / "executor.json").read_text())
    assert executor["buildUrl"] == JOB
    (tmp_path / "summary.html").write_text(page_html)
    with _browser() as page, _served(tmp_path) as url:
        page.goto(f"{url}/summary.html")
        assert "blocks promotion: yes" in page.inner_text("h2")
        _shot(page, tmp_path, "markdown-fail.png", full_page=True)
        _allure_pages(page, f"{url}/allure-report/index.html", tmp_path, "FAIL", "yes")
