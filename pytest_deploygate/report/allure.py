"""The gate in Allure, written through allure-pytest's own reporter and into its results directory.

allure-pytest follows collected items only, so the gate's synthetic cases (which reach JUnit through
``pytest_runtest_logreport``) would be missing from Allure. Here they are handed to Allure's plugin manager
(``report_result``, ``report_attached_data``), i.e. to the ``AllureFileLogger`` that ``--alluredir``
registered: Allure's own model and file format, nothing home-made. Besides the cases, the results directory
gets what Allure reads from it (https://allurereport.org/docs/how-it-works/):

- ``deploygate::gate::verdict``: failed exactly when the run blocks promotion, its message
  ``GATE WARN — blocks promotion: no (why)``, with the gate report (JSON and Markdown), the findings, the Locust
  HTML report, the locustfile and the other artifacts attached, and a link to the CI job;
- one case per judged threshold, its level in its name, message, ``tag`` label and parameters (value, limit,
  headroom, n): a WARN that does not block stays "passed" and reads WARN; cases that fail, warn or cannot tell
  come first (distinct start stamps);
- ``categories.json``: "gate FAIL", "could not check", "WARN" (Allure 3 reads categories from its
  configuration: ``tests/allure/allurerc.mjs`` loads this file);
- ``environment.properties`` and ``executor.json``: commit, CI job, target, deployed version, times.
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..gate import FAIL, INCONCLUSIVE, PASS, WARN, format_value
from ..run import THRESHOLD_PREFIX
from .model import GateReport, headroom, iso

if TYPE_CHECKING:  # pragma: no cover
    from ..gate import MetricResult

#: Allure categories (categories.json): first match wins; regexes work as Java's ``matches`` (Allure 2) and as
#: JavaScript's ``test`` (Allure 3)
CATEGORIES: list[dict[str, Any]] = [
    {"name": "gate FAIL", "matchedStatuses": ["failed"],
     "messageRegex": r"^(FAIL: |GATE [^\n]*blocks promotion: yes)[\s\S]*"},
    {"name": "WARN", "matchedStatuses": ["passed", "failed"], "messageRegex": r"^(WARN: |GATE WARN)[\s\S]*"},
    # a threshold the sample cannot settle, and a check that could not verify (5xx, timeout: never a finding)
    {"name": "could not check", "matchedStatuses": ["failed", "broken", "passed", "skipped"],
     "messageRegex": r"^(INCONCLUSIVE: |GATE INCONCLUSIVE)[\s\S]*"
                     r"|[\s\S]*(Unverified|RequestFailed|could not (check|verify|read))[\s\S]*"},
]

#: MIME types of the attachments by artifact name; others by their file's extension
_MIME = {"locust_html": "text/html", "locustfile": "text/plain", "locust_json": "application/json",
         "locust_log": "text/plain", "locust_failures": "application/json"}
#: a larger artifact is named in the report, not copied into Allure's results
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024


def report_gate(report: GateReport, results_dir: str | Path, report_dir: Path | None = None,
                secrets: frozenset[str] = frozenset()) -> int:
    """Send the verdict case and one case per judged threshold, and write categories, environment and executor
    files; returns how many cases (0 without allure-pytest)."""
    try:
        import allure_commons  # noqa: F401
    except ImportError:
        return 0
    from allure_commons.utils import now

    results = Path(results_dir)
    results.mkdir(parents=True, exist_ok=True)
    start = now()
    # the verdict first, then what blocks, fails, warns or cannot tell: each a millisecond later than the last
    _send(_verdict_case(report, start, _attachments(report, report_dir, secrets)))
    sent = 1
    for i, (result, failed) in enumerate(report.ordered_thresholds(), start=1):
        _send(_threshold_case(report, result, failed, start + i))
        sent += 1
    write_results_files(report, results)
    return sent


def _send(case: Any) -> None:
    import allure_commons

    allure_commons.plugin_manager.hook.report_result(result=case)


def _labels(report: GateReport, suite: str, *tags: str) -> list[Any]:
    from allure_commons.model2 import Label

    labels = [Label(name="parentSuite", value=f"deploygate gate: {report.env_name}"),
              Label(name="suite", value=suite), Label(name="feature", value=suite),
              Label(name="framework", value="pytest-deploygate")]
    return labels + [Label(name="tag", value=t) for t in tags]


def _verdict_case(report: GateReport, stamp: int, attachments: list[Any]) -> Any:
    from allure_commons.model2 import Link, Parameter, Status, StatusDetails, TestResult
    from allure_commons.utils import md5, uuid4

    from .cases import verdict_message

    level = report.judged_verdict
    meta = report.metadata
    links = [Link(type="link", url=meta["ci_job_url"], name="CI job")] if meta.get("ci_job_url") else []
    tags = [f"verdict:{level}", f"blocks promotion: {report.blocks_word}"] + ([level] if level != PASS else [])
    return TestResult(
        uuid=uuid4(), name=f"verdict: GATE {report.headline} (blocks promotion: {report.blocks_word})",
        fullName=f"{THRESHOLD_PREFIX}verdict", historyId=md5("deploygate", report.env_name, "verdict"),
        testCaseId=md5("deploygate", "verdict"),
        status=Status.FAILED if report.blocks_promotion else Status.PASSED,
        statusDetails=StatusDetails(message=verdict_message(report), trace=report.counts_line()),
        stage="finished", start=stamp, stop=stamp + 1,
        description=f"{report.promotion()}\n\n{report.counts_line()}",
        labels=_labels(report, "verdict", *tags), links=links,
        parameters=[Parameter(name=k, value=v) for k, v in (
            ("environment", report.env_name), ("verdict", level), ("blocks promotion", report.blocks_word),
            ("checks and thresholds", report.counts_line()), *meta.items())],
        attachments=attachments)


def _threshold_case(report: GateReport, result: MetricResult, failed: bool, stamp: int) -> Any:
    from allure_commons.model2 import Parameter, Status, StatusDetails, TestResult
    from allure_commons.utils import md5, uuid4

    from .cases import marker, threshold_message

    mark = marker(result)
    message = threshold_message(result, failed, report)
    params = [("value", format_value(result.value, result.unit)), ("limit", result.limit or "—"),
              ("threshold", result.threshold)]
    room = headroom(result)
    if room is not None:
        params.append(("headroom", f"{room:.0f} %" if room >= 0 else f"{-room:.0f} % over"))
    if result.samples is not None:
        params.append(("n", str(result.samples)))
    tags = [f"verdict:{result.verdict}"] + ([result.verdict] if result.verdict in (WARN, FAIL, INCONCLUSIVE) else [])
    return TestResult(
        uuid=uuid4(), name=result.key + (f" {mark}" if mark else ""), fullName=f"{THRESHOLD_PREFIX}{result.key}",
        historyId=md5("deploygate", report.env_name, result.key), testCaseId=md5("deploygate", result.key),
        status=Status.FAILED if failed else Status.PASSED,
        statusDetails=StatusDetails(message=message) if result.verdict != PASS else None,
        stage="finished", start=stamp, stop=stamp + 1, description=message,
        labels=_labels(report, result.category, *tags)
        + ([_severity(result.verdict)] if result.verdict in (FAIL, WARN) else []),
        parameters=[Parameter(name=k, value=v) for k, v in params])


def _severity(level: str) -> Any:
    from allure_commons.model2 import Label

    return Label(name="severity", value="critical" if level == FAIL else "minor")


# --------------------------------------------------------------------------------------------------
# attachments


def _attach(body: bytes, title: str, mime: str, ext: str) -> Any:
    import allure_commons
    from allure_commons.model2 import ATTACHMENT_PATTERN, Attachment
    from allure_commons.utils import uuid4

    file_name = ATTACHMENT_PATTERN.format(prefix=uuid4(), ext=ext)
    allure_commons.plugin_manager.hook.report_attached_data(body=body, file_name=file_name)
    return Attachment(name=title, source=file_name, type=mime)


def _attachments(report: GateReport, report_dir: Path | None, secrets: frozenset[str]) -> list[Any]:
    """The gate report (JSON, Markdown), the findings and every artifact that is still there, redacted."""
    from ..redaction import redact
    from .json_report import dumps
    from .markdown import render_markdown
    from .metadata import ARTIFACT_TITLES, resolve

    out = [_attach(dumps(report.to_dict()).encode(), "gate report (JSON)", "application/json", "json"),
           _attach(render_markdown(report).encode(), "gate summary (Markdown)", "text/markdown", "md"),
           _attach(json.dumps([dict(f) for f in report.findings], indent=2).encode(), "findings (JSON)",
                   "application/json", "json")]
    base = report_dir or Path.cwd()
    for name, path in report.artifacts.items():
        file = resolve(path, base)
        try:
            if not file.is_file() or file.stat().st_size > MAX_ATTACHMENT_BYTES:
                continue
            data = file.read_bytes()
        except OSError:
            continue
        title = ARTIFACT_TITLES.get(name, name)
        mime = _MIME.get(name) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if secrets:
            try:
                data = redact(data.decode("utf-8"), secrets).encode("utf-8")
            except UnicodeDecodeError:
                pass
        ext = file.suffix.lstrip(".") or "txt"
        out.append(_attach(data, title, mime, ext))
    return out


# --------------------------------------------------------------------------------------------------
# the results directory's own files


def environment_properties(report: GateReport) -> dict[str, str]:
    """What Allure's Environment widget shows: the gate's verdict, counts, where and when it ran."""
    meta = report.metadata
    props = {
        "deploygate.verdict": report.headline,
        "deploygate.blocks_promotion": report.promotion(),
        "deploygate.counts": report.counts_line(),
        "deploygate.environment": report.env_name,
        "deploygate.run_id": report.run_id,
        "commit": meta.get("commit", ""),
        "ci.job": meta.get("ci_job_url", ""),
        "target.url": meta.get("target_url", ""),
        "deployed.version": meta.get("deployed_version", ""),
        "started": iso(report.started_at) or "",
        "finished": iso(report.finished_at) or "",
        "deploygate.version": report.plugin_version,
    }
    return {k: v for k, v in props.items() if v}


def _properties_text(props: dict[str, str]) -> str:
    def esc(text: str, is_key: bool = False) -> str:
        text = text.replace("\\", "\\\\").replace("\n", "\\n")
        if is_key:
            for ch in " =:":
                text = text.replace(ch, "\\" + ch)
        # .properties files are ISO-8859-1: anything else as \uXXXX
        return "".join(c if ord(c) < 128 else f"\\u{ord(c):04x}" for c in text)

    return "".join(f"{esc(k, True)}={esc(v)}\n" for k, v in props.items())


def executor(report: GateReport) -> dict[str, Any]:
    """executor.json: who ran the gate and where its job is."""
    meta = report.metadata
    kind = {"GitHub Actions": "github", "GitLab CI": "gitlab", "Jenkins": "jenkins"}.get(meta.get("ci", ""), "local")
    data: dict[str, Any] = {"name": meta.get("ci") or "pytest-deploygate", "type": kind,
                            "buildName": report.run_id,
                            "reportName": f"deploygate: {report.env_name} — GATE {report.headline} "
                                          f"(blocks promotion: {report.blocks_word})"}
    if meta.get("ci_job_url"):
        data["url"] = data["buildUrl"] = meta["ci_job_url"]
    return data


def write_results_files(report: GateReport, results: Path) -> None:
    """categories.json, environment.properties and executor.json in Allure's results directory."""
    (results / "categories.json").write_text(json.dumps(CATEGORIES, indent=2) + "\n", encoding="utf-8")
    (results / "environment.properties").write_text(_properties_text(environment_properties(report)),
                                                    encoding="latin-1")
    (results / "executor.json").write_text(json.dumps(executor(report), indent=2) + "\n", encoding="utf-8")


__all__ = ["CATEGORIES", "environment_properties", "executor", "report_gate", "write_results_files"]
