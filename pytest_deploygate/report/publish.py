"""Publishing the verdict: CloudWatch metrics (so existing alarms can page someone) and a Slack-compatible
webhook. Both are configured under ``[publish]``; both only ever see redacted values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..redaction import redact
from ..thresholds import FAIL, INCONCLUSIVE, INFO, NO_CHECKS, PASS, SKIP, WARN
from .terminal import figure

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Environment
    from ..run import GateRun
    from ..sections import CloudWatchSpec, WebhookSpec
    from .model import GateReport

#: an alarm on ``GateVerdict >= 2`` pages for what blocks promotion: FAIL, and a run that checked nothing;
#: INCONCLUSIVE (the sample could not tell) sits between PASS and WARN
LEVEL_VALUE = {PASS: 0.0, SKIP: 0.0, INCONCLUSIVE: 0.5, WARN: 1.0, FAIL: 2.0, NO_CHECKS: 2.0}
UNITS = {"ms": "Milliseconds", "%": "Percent", "s": "Seconds", "req/s": "Count/Second", "days": "None"}


def _unit(metric: str, unit: str) -> str:
    if unit in UNITS:
        return UNITS[unit]
    return "Count" if metric.endswith("_count") else "None"


def cloudwatch_data(report: GateReport, env: Environment, spec: CloudWatchSpec,
                    secrets: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """``put_metric_data`` entries: the gate verdict (0 PASS, 1 WARN, 2 FAIL), each category's, and the
    judged metrics without labels (or those listed in ``metrics``)."""
    base = [{"Name": k, "Value": redact(env.format(v), secrets)} for k, v in spec.dimensions.items()]
    data = [{"MetricName": "GateVerdict", "Dimensions": base,
             "Value": LEVEL_VALUE.get(report.judged_verdict, 2.0), "Unit": "None"}]
    for name, cat in report.categories.items():
        if cat["verdict"] == INFO:
            continue  # recorded metrics only: nothing was judged, no verdict to publish
        data.append({"MetricName": "CategoryVerdict", "Dimensions": [*base, {"Name": "Category", "Value": name}],
                     "Value": LEVEL_VALUE.get(cat["verdict"], 2.0), "Unit": "None"})
    for m in report.metrics:
        wanted = m.name in spec.metrics if spec.metrics else (m.verdict != "INFO" and not m.labels)
        if wanted:
            data.append({"MetricName": m.name, "Dimensions": base, "Value": float(m.value),
                         "Unit": _unit(m.name, m.unit)})
    return data


def publish_cloudwatch(report: GateReport, run: GateRun, spec: CloudWatchSpec) -> int:
    """Send the metrics through boto3 in the configured environment's account; returns how many."""
    from ..aws import EnvironmentAWS

    target = run.target.get(spec.environment or run.env_name)
    # Publishing monitoring data is what a scheduled prod run is for: not a write to the environment's
    # data, so the protected-environment guard does not apply to it.
    client = EnvironmentAWS(target, allow_writes=True).client("cloudwatch")
    data = cloudwatch_data(report, run.environment, spec, run.secrets)
    for i in range(0, len(data), 20):  # small batches keep well under the API's request limits
        client.put_metric_data(Namespace=spec.namespace, MetricData=data[i:i + 20])
    return len(data)


def webhook_payload(report: GateReport, env: Environment, report_url: str,
                    secrets: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A Slack-compatible message: the verdict, what failed, the worst figures, where the report is."""
    verdict = report.judged_verdict
    failing = [f"{c}: {d['verdict']}" for c, d in report.categories.items() if d["verdict"] in (FAIL, WARN)]
    breaches = [figure(m) for m in report.metrics if m.verdict in (FAIL, WARN)][:5]
    failed = [nodeid.rsplit("::", 1)[-1] for nodeid, _ in report.failed_tests()][:5]
    state = f"INTERRUPTED (partial {verdict})" if report.interrupted else verdict
    lines = [f"*Deploy gate {state}* for `{env.name}` ({env.service or env.stage}), run {report.run_id}; "
             + report.promotion()]
    if report.judged:
        lines.append(report.counts_line())
    if failing:
        lines.append("Categories: " + ", ".join(failing))
    if failed:
        lines.append("Failed checks: " + ", ".join(failed))
    if breaches:
        lines.append("Breaches: " + "; ".join(breaches))
    lines.append(f"Report: {report_url}")
    if report.metadata.get("ci_job_url"):
        lines.append(f"CI job: {report.metadata['ci_job_url']}")
    text = redact("\n".join(lines), secrets)
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def post_webhook(report: GateReport, run: GateRun, spec: WebhookSpec) -> bool:
    """POST the summary when the verdict is one of ``spec.on`` (the report file is written by then, so the
    link is good); returns whether it was sent."""
    if report.judged_verdict not in spec.on:
        return False
    import requests

    payload = webhook_payload(report, run.environment, spec.report_url or str(run.settings.report_path),
                              run.secrets)
    response = requests.post(spec.url, json=payload, timeout=spec.timeout_s)
    response.raise_for_status()
    return True


def publish(report: GateReport, run: GateRun) -> list[str]:
    """CloudWatch metrics and the webhook, as configured; returns notes on what was published. A publishing
    failure is a note: it does not change the verdict."""
    project, notes = run.project, []
    if project.cloudwatch is not None:
        try:
            sent = publish_cloudwatch(report, run, project.cloudwatch)
            notes.append(f"published {sent} metrics to CloudWatch namespace {project.cloudwatch.namespace}")
        except Exception as exc:
            notes.append(redact(f"publishing to CloudWatch failed: {type(exc).__name__}: {exc}", run.secrets))
    if project.webhook is not None:
        try:
            if post_webhook(report, run, project.webhook):
                notes.append("webhook notified")
        except Exception as exc:
            notes.append(redact(f"webhook failed: {type(exc).__name__}: {exc}", run.secrets))
    return notes
