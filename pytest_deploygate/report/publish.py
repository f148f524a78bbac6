"""Publishing the verdict: CloudWatch metrics (so existing alarms can page someone) and a Slack-compatible
webhook. Both are configured under ``[publish]``; both only ever see redacted values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..redaction import redact
from ..thresholds import FAIL, INCONCLUSIVE, NO_CHECKS, PASS, SKIP, WARN

if TYPE_CHECKING:  # pragma: no cover
    from ..gate import Verdict
    from ..run import GateRun
    from ..specs import CloudWatchSpec, WebhookSpec

#: an alarm on ``GateVerdict >= 2`` pages for what blocks promotion: FAIL, and a run that checked nothing;
#: INCONCLUSIVE (the sample could not tell) sits between PASS and WARN
LEVEL_VALUE = {PASS: 0.0, SKIP: 0.0, INCONCLUSIVE: 0.5, WARN: 1.0, FAIL: 2.0, NO_CHECKS: 2.0}
UNITS = {"ms": "Milliseconds", "%": "Percent", "s": "Seconds", "req/s": "Count/Second", "days": "None"}


def _unit(metric: str, unit: str) -> str:
    if unit in UNITS:
        return UNITS[unit]
    return "Count" if metric.endswith("_count") else "None"


def cloudwatch_data(run: GateRun, verdict: Verdict, spec: CloudWatchSpec) -> list[dict[str, Any]]:
    """``put_metric_data`` entries: the gate verdict (0 PASS, 1 WARN, 2 FAIL), each category's, and the
    judged metrics without labels (or those listed in ``metrics``)."""
    env = run.environment
    base = [{"Name": k, "Value": redact(env.format(v), run.secrets)} for k, v in spec.dimensions.items()]
    data = [{"MetricName": "GateVerdict", "Dimensions": base, "Value": LEVEL_VALUE.get(verdict.verdict, 2.0),
             "Unit": "None"}]
    for name, cat in verdict.categories.items():
        data.append({"MetricName": "CategoryVerdict", "Dimensions": [*base, {"Name": "Category", "Value": name}],
                     "Value": LEVEL_VALUE.get(cat["verdict"], 2.0), "Unit": "None"})
    for m in verdict.metrics:
        wanted = m.name in spec.metrics if spec.metrics else (m.verdict != "INFO" and not m.labels)
        if wanted:
            data.append({"MetricName": m.name, "Dimensions": base, "Value": float(m.value),
                         "Unit": _unit(m.name, m.unit)})
    return data


def publish_cloudwatch(run: GateRun, verdict: Verdict, spec: CloudWatchSpec) -> int:
    """Send the metrics through boto3 in the configured environment's account; returns how many."""
    from ..aws import EnvironmentAWS

    target = run.environments.get(spec.environment or run.env_name) or run.environment
    # Publishing monitoring data is what a scheduled prod run is for: not a write to the environment's
    # data, so the protected-environment guard does not apply to it.
    client = EnvironmentAWS(target, allow_writes=True).client("cloudwatch")
    data = cloudwatch_data(run, verdict, spec)
    for i in range(0, len(data), 20):  # small batches keep well under the API's request limits
        client.put_metric_data(Namespace=spec.namespace, MetricData=data[i:i + 20])
    return len(data)


def webhook_payload(run: GateRun, verdict: Verdict, report_url: str) -> dict[str, Any]:
    env = run.environment
    failing = [f"{c}: {d['verdict']}" for c, d in verdict.categories.items() if d["verdict"] in (FAIL, WARN)]
    breaches = [f"{m.key} = {m.value:g} {m.unit} ({m.verdict.lower()} level {m.limit})".replace("  ", " ")
                for m in verdict.metrics if m.verdict in (FAIL, WARN)][:5]
    failed = [f["nodeid"].rsplit("::", 1)[-1] for c in verdict.categories.values() for f in c["failed_tests"]][:5]
    lines = [f"*Deploy gate {verdict.verdict}* for `{env.name}` ({env.service or env.stage}), run {run.run_id}"]
    if failing:
        lines.append("Categories: " + ", ".join(failing))
    if failed:
        lines.append("Failed checks: " + ", ".join(failed))
    if breaches:
        lines.append("Breaches: " + "; ".join(breaches))
    lines.append(f"Report: {report_url or run.report_path}")
    text = redact("\n".join(lines), run.secrets)
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def post_webhook(run: GateRun, verdict: Verdict, spec: WebhookSpec) -> bool:
    """POST the summary when the verdict is one of ``spec.on``; returns whether it was sent."""
    if verdict.verdict not in spec.on:
        return False
    import requests

    payload = webhook_payload(run, verdict, spec.report_url)
    response = requests.post(spec.url, json=payload, timeout=spec.timeout_s)
    response.raise_for_status()
    return True
