"""The CRUD and isolation suites against the reference deployment: healthy environments pass, and a leak, a
wrong configuration or a CORS wildcard fails the check that names it. (Third-party APIs:
test_isolation_thirdparty.py; prod's read-only runs: test_protected_environment.py.)"""

from __future__ import annotations

import pytest

from gatehelpers import Gate

pytestmark = pytest.mark.e2e


def test_healthy_staging_and_dev_pass_crud_and_isolation(gate_project: Gate) -> None:
    for env in ("staging", "dev"):
        res = gate_project.run("--env", env, "-m", "gate and (crud or isolation)")
        assert res.ret == 0, res.output
        assert res.report is not None
        cats = res.report["categories"]
        assert cats["crud"]["verdict"] == "PASS" and cats["crud"]["tests"]["passed"] == 2
        assert cats["isolation"]["verdict"] == "PASS"
        assert res.metric("crud.lifecycle_ok", collection="stories")["value"] == 1
        assert res.metric("crud.create_ms", collection="acceptance-tests")["verdict"] == "PASS"
        peers = {"staging": ["dev", "prod"], "dev": ["prod", "staging"]}[env]
        for peer in peers:
            assert res.metric("isolation.leaks_count", check="canary-out", env=env, seen_in=peer)["value"] == 0
        assert res.metric("isolation.leaks_count", check="configuration", env=env)["value"] == 0
        assert res.metric("isolation.leaks_count", check="cors", env=env)["value"] == 0


def test_leak_names_the_record_and_where_it_leaked(gate_project: Gate) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate and isolation", faults="staging:leak")
    assert res.ret == 1, res.output
    failed = res.failed_tests()
    reason = next(r for n, r in failed.items() if "test_canary_stays_here[prod]" in n)
    assert "leak: canary stories/" in reason and "written in staging is visible in prod" in reason
    assert "by id (GET http://127.0.0.1:" in reason
    assert "in prod's list" in reason
    assert "in prod's table aipm-backend-prod-stories (account 333333333333)" in reason
    assert res.metric("isolation.leaks_count", check="canary-out", env="staging", seen_in="prod")["verdict"] == "FAIL"
    assert not any("[dev]" in n for n in failed)  # dev is not involved


def test_leak_is_caught_reading_prod_only(gate_project: Gate) -> None:
    res = gate_project.run("--env", "prod", "-m", "gate and isolation", faults="staging:leak")
    assert res.ret == 1, res.output
    reason = next(r for n, r in res.failed_tests().items() if "test_peer_canary_stays_there[staging]" in n)
    assert "written in staging is visible in prod" in reason


def test_leak_breaks_crud_datastore_verification(gate_project: Gate) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate and crud", faults="staging:leak")
    assert res.ret == 1
    reason = next(r for n, r in res.failed_tests().items() if "test_crud_lifecycle[stories]" in n)
    assert "datastore: created item" in reason and "is not in staging's table aipm-backend-staging-stories" in reason
    assert res.metric("crud.lifecycle_ok", collection="stories")["verdict"] == "FAIL"
    assert res.metric("crud.lifecycle_ok", collection="acceptance-tests")["verdict"] == "PASS"


def test_wrong_config_is_an_isolation_finding(gate_project: Gate) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate and isolation", faults="staging:wrong-config")
    assert res.ret == 1
    reason = next(r for n, r in res.failed_tests().items() if "test_configuration_is_own" in n)
    assert "config.js apiEndpoint" in reason and "references prod's API endpoint" in reason
    assert "references prod's table aipm-backend-prod-stories" in reason


def test_cors_wildcard_on_prod(gate_project: Gate) -> None:
    res = gate_project.run("--env", "prod", "-m", "gate and isolation", faults="prod:cors-wildcard")
    assert res.ret == 1
    reason = next(r for n, r in res.failed_tests().items() if "test_cors_allows_only_own_origins" in n)
    assert "answers Access-Control-Allow-Origin: * to https://deploygate-foreign-origin.invalid" in reason
    # dev allows * by its own configuration: the same answer there is no finding
    dev = gate_project.run("--env", "dev", "-m", "gate and isolation", faults="dev:cors-wildcard")
    assert dev.ret == 0, dev.output


def test_a_peer_answering_500_is_could_not_check(gate_project: Gate) -> None:
    # prod answers every second /api request with a 500: the canary lookups there cannot all be answered
    res = gate_project.run("--env", "staging", "-m", "gate and isolation", "-k", "canary_stays_here",
                           faults="prod:errors")
    assert res.ret == 1, res.output
    failed = res.failed_tests()
    reason = next(r for n, r in failed.items() if "test_canary_stays_here[prod]" in n)
    assert "canary-out: could not check: canary stories/" in reason and "looked for in prod" in reason
    assert "answered 500" in reason and "leak" not in reason
    assert res.metric("isolation.unverified_count", check="canary-out", env="staging", seen_in="prod")["value"] == 1
    assert not any("[dev]" in n for n in failed)
    assert res.metric("isolation.leaks_count", check="canary-out", env="staging", seen_in="dev")["value"] == 0


def test_xdist_gives_the_same_verdict_for_crud_and_isolation(gate_project: Gate) -> None:
    serial = gate_project.run("--env", "staging", "-m", "gate and isolation", faults="staging:leak")
    parallel = gate_project.run("--env", "staging", "-m", "gate and isolation", "-n", "2", faults="staging:leak")
    assert serial.ret == parallel.ret == 1
    assert serial.report is not None and parallel.report is not None
    assert set(serial.failed_tests()) == set(parallel.failed_tests())
    healthy = gate_project.run("--env", "staging", "-m", "gate", "-n", "2")
    assert healthy.ret == 0, healthy.output
