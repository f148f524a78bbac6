"""Publishing the verdict: the webhook (only on the verdicts it is configured for, its URL kept secret) and
CloudWatch metrics a reader can get back from the environment's AWS endpoint."""

from __future__ import annotations

import time

import boto3

from gatehelpers import Gate, RunningDemo


def test_webhook_on_fail_only(gate_project: Gate, webhook: list[dict[str, object]]) -> None:
    ok = gate_project.run("--env", "staging", "-m", "gate and smoke")
    assert ok.ret == 0 and webhook == []
    bad = gate_project.run("--env", "staging", "-m", "gate and smoke", faults="staging:health-down")
    assert bad.ret == 1
    assert len(webhook) == 1
    text = str(webhook[0]["text"])
    assert "*Deploy gate FAIL* for `staging`" in text
    assert "test_health[/health]" in text and "Report: https://ci.example/gate/report.json" in text
    assert webhook[0]["blocks"]
    assert "XXXXSECRETXXXX" not in bad.output  # the webhook URL is itself a secret


def test_cloudwatch_metrics_can_be_read_back(gate_project: Gate) -> None:
    path = gate_project.path / "deploygate.toml"
    path.write_text(path.read_text() + '\n[publish.cloudwatch]\nnamespace = "DeployGate"\n'
                    'dimensions = { Service = "{service}", Environment = "{env}" }\n')
    demo = RunningDemo(gate_project, ["staging:slow"])
    try:
        res = gate_project.run("--env", "staging", "-m", "gate and smoke")
        assert res.ret == 1
        assert any("published" in n and "CloudWatch" in n for n in res.report["notes"]) if res.report else False
        info = demo.state["environments"]["staging"]
        cw = boto3.client("cloudwatch", endpoint_url=info["endpoint_url"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        dims = [{"Name": "Service", "Value": "aipm-backend"}, {"Name": "Environment", "Value": "staging"}]
        names = {m["MetricName"] for m in cw.list_metrics(Namespace="DeployGate")["Metrics"]}
        assert {"GateVerdict", "CategoryVerdict", "smoke.frontend.missing_assets_count"} <= names
        now = time.time()
        stats = cw.get_metric_statistics(Namespace="DeployGate", MetricName="GateVerdict", Dimensions=dims,
                                         StartTime=now - 600, EndTime=now + 600, Period=60, Statistics=["Maximum"])
        assert [p["Maximum"] for p in stats["Datapoints"]] == [2.0]  # FAIL
    finally:
        demo.stop()
