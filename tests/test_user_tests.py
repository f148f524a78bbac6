"""A user's own tests in a gate run, end to end: the plugin's fixtures (``deploy_env``, ``api``, ``gate``,
``aws``) and its hooks (``pytest_deploygate_metrics``, ``pytest_deploygate_verdict``), their metrics judged
by the project's thresholds."""

from __future__ import annotations

import json

from gatehelpers import Gate


def test_user_tests_use_the_fixtures_and_extension_hooks(gate_project: Gate) -> None:
    gate_project.pytester.makeconftest("""
        import json

        def pytest_deploygate_metrics(config, environment, record):
            record("custom.queue_depth_count", 7, queue=environment.name)

        def pytest_deploygate_verdict(config, verdict, report):
            with open("verdict.json", "w") as f:
                json.dump({"verdict": verdict.verdict, "env": verdict.environment,
                           "report_verdict": report["verdict"]}, f)
    """)
    gate_project.pytester.makefile(".toml", thresholds="""
        [metrics]
        "custom.queue_depth_count" = { fail = "> 5" }
        "custom.roundtrip_ms" = { fail = "> 60000" }
    """)
    gate_project.pytester.makepyfile(test_mine="""
        import pytest

        @pytest.mark.gate
        def test_stories_round_trip(deploy_env, api, gate, aws):
            with gate.timer("custom.roundtrip_ms", env=deploy_env.name):
                assert api.get("/api/stories").status_code == 200
            tables = aws.client("dynamodb").list_tables()["TableNames"]
            assert f"aipm-backend-{deploy_env.stage}-stories" in tables
    """)
    res = gate_project.run("--env", "staging", "-m", "gate", "--no-builtin-suites")
    assert res.report is not None
    assert res.report["tests"] == {"passed": 1, "failed": 0, "skipped": 0}
    assert res.metric("custom.roundtrip_ms", env="staging")["verdict"] == "PASS"
    queue = res.metric("custom.queue_depth_count", queue="staging")
    assert queue["verdict"] == "FAIL" and queue["value"] == 7
    assert res.ret == 1

    seen = json.loads((gate_project.path / "verdict.json").read_text())
    assert seen == {"verdict": "FAIL", "env": "staging", "report_verdict": "FAIL"}
