"""``auth.cognito`` and the isolation check that a protected endpoint refuses a peer pool's token, against the
reference deployment (issue 12): each environment's probe user signs in to its own user pool (through the
environment's own moto server); healthy staging's ``GET /api/me`` takes staging's token and refuses dev's and
prod's; with ``foreign-token-accepted`` it takes dev's, and the check fails naming itself and the peer. The
password and every token stay out of the terminal, the JSON report and JUnit, even when a test prints them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gatehelpers import Gate, RunningDemo
from pytest_deploygate.redaction import PIECE_CHARS

pytestmark = pytest.mark.e2e

CHECK = "test_protected_endpoints_refuse_peer_pool_tokens"
#: any JSON web token (header and payload are base64url JSON objects: they start with "eyJ")
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")

#: a user's test that does everything wrong with the credentials: prints them and fails showing them
LEAKY = '''
def test_shows_the_cognito_credentials(deploygate_run, deploy_env):
    token = deploygate_run.target.tokens.get(deploy_env)
    print("token:", token.value, "password:", deploy_env.auth.cognito.password)
    assert token.value == deploy_env.auth.cognito.password
'''


def outputs(gate: Gate, res_output: str) -> dict[str, str]:
    texts = {"terminal": res_output}
    for name in (".deploygate/report.json", "junit.xml"):
        path = gate.path / name
        texts[name] = path.read_text() if path.exists() else ""
    return texts


def leaks(text: str, secrets: list[str]) -> list[str]:
    """Pieces of ``secrets`` in ``text`` (a piece this long of a secret must not survive anywhere)."""
    return sorted({s[i:i + PIECE_CHARS] for s in secrets for i in range(len(s) - PIECE_CHARS + 1)
                   if s[i:i + PIECE_CHARS] in text})


def assert_no_credentials(gate: Gate, demo: RunningDemo, res_output: str) -> None:
    passwords = [info["cognito_password"] for info in demo.state["environments"].values()]
    for where, text in outputs(gate, res_output).items():
        assert text, f"{where} is empty"
        assert leaks(text, passwords) == [], where
        assert JWT.findall(text) == [], where


def test_healthy_staging_takes_its_own_token_and_refuses_the_peers(gate_project: Gate,
                                                                  running_demo: RunningDemo) -> None:
    (gate_project.path / "test_leaky.py").write_text(LEAKY)
    res = gate_project.run("--env", "staging", "-m", "gate and isolation", "-k", CHECK, "-rA",
                           "--junitxml", "junit.xml")
    assert res.ret == 0, res.output
    assert res.report is not None and res.report["categories"]["isolation"]["verdict"] == "PASS"
    for peer in ("dev", "prod"):
        assert f"PASSED test_isolation.py::{CHECK}[{peer}]" in res.stdout, res.stdout
        metric = res.metric("isolation.foreign_token_accepted_count", env="staging", peer=peer, endpoint="/api/me")
        assert (metric["value"], metric["verdict"]) == (0, "PASS")
    assert "could not check" not in res.output and "Traceback" not in res.output
    assert_no_credentials(gate_project, running_demo, res.output)

    # a user's test that prints the token and the password and fails showing both: both are masked everywhere
    # ... also when an xdist worker signed in (the worker masks what it reports; the controller never saw the token)
    for xdist in ((), ("-n", "2")):
        res = gate_project.run("--env", "staging", "-k", "shows_the_cognito", "--junitxml", "junit.xml", *xdist)
        assert res.ret == 1, res.output
        assert "token: *** password: ***" in res.stdout, res.stdout
        assert_no_credentials(gate_project, running_demo, res.output)


@pytest.mark.demo_faults("staging:foreign-token-accepted")
def test_a_peer_pools_token_taken_fails_naming_the_check_and_the_peer(gate_project: Gate,
                                                                      running_demo: RunningDemo) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate and isolation", "-k", CHECK, "-rA",
                           "--junitxml", "junit.xml")
    assert res.ret == 1, res.output
    assert res.report is not None and res.report["verdict"] == "FAIL"
    failed = res.failed_tests()
    assert [n.rsplit("::", 1)[-1] for n in failed] == [f"{CHECK}[dev]"], failed
    dev_pool = running_demo.state["environments"]["dev"]["user_pool_id"]
    reason = res.reason(f"{CHECK}[dev]")
    assert reason.startswith(f"foreign-token-accepted: staging accepts a token of dev's user pool {dev_pool}: "
                             "GET http://127.0.0.1:"), reason
    assert "/api/me answered 200" in reason
    dev = res.metric("isolation.foreign_token_accepted_count", env="staging", peer="dev", endpoint="/api/me")
    prod = res.metric("isolation.foreign_token_accepted_count", env="staging", peer="prod", endpoint="/api/me")
    assert (dev["value"], dev["verdict"]) == (1, "FAIL")
    assert (prod["value"], prod["verdict"]) == (0, "PASS")  # the fault trusts dev's pool only
    assert "could not check" not in res.output
    assert_no_credentials(gate_project, running_demo, res.output)


def test_no_token_or_an_own_token_refused_is_could_not_check(gate_project: Gate, running_demo: RunningDemo) -> None:
    """A wrong password for staging's probe user: no token, so nothing is judged (never a finding); an endpoint
    that refuses staging's own token: the check cannot tell either."""
    config = gate_project.path / "deploygate.toml"
    original = config.read_text()
    config.write_text(original + '\n[environments.staging.auth.cognito]\npassword = "${WRONG_PW}"\n')
    gate_project.monkeypatch.setenv("WRONG_PW", "not-the-probe-users-password-42")
    res = gate_project.run("--env", "staging", "-m", "gate and isolation", "-k", CHECK, "-rA")
    assert res.ret != 0, res.output
    reasons = res.failed_tests()
    assert {n.rsplit("::", 1)[-1] for n in reasons} == {f"{CHECK}[dev]", f"{CHECK}[prod]"}
    for reason in reasons.values():
        assert reason.startswith("foreign-token: could not check: auth.cognito of staging: could not get a token "
                                 f"from {running_demo.state['environments']['staging']['user_pool_id']}: the pool "
                                 "refused the sign-in"), reason
        assert "NotAuthorizedException" in reason
    assert res.metric("isolation.unverified_count", check="foreign-token", peer="dev")["value"] == 1
    assert res.report is not None
    assert not [m for m in res.report["metrics"] if m["name"] == "isolation.foreign_token_accepted_count"]
    assert "not-the-probe-users-password-42" not in Path(gate_project.path / ".deploygate/report.json").read_text()
    assert "not-the-probe-users-password-42" not in res.output

    # an endpoint that refuses the environment's own token cannot show what it does with a peer's: not a pass
    config.write_text(original + '\n[environments.staging.isolation]\nprotected_endpoints = ["/api/admin/export"]\n')
    res = gate_project.run("--env", "staging", "-m", "gate and isolation", "-k", CHECK, "-rA")
    assert res.ret != 0, res.output
    reason = res.reason(f"{CHECK}[dev]")
    assert reason.startswith("foreign-token: could not check: GET http://127.0.0.1:"), reason
    assert "/api/admin/export answered 403 to staging's own token" in reason
    assert "cannot show whether it refuses a peer's" in reason


def test_a_deployment_named_by_its_ids_signs_in_and_every_request_carries_the_token(
        gate_project: Gate, running_demo: RunningDemo) -> None:
    """The shape of a real deployment's configuration (nothing launched): pool and client named, the password a
    ``${VAR}``; with no ``auth.value`` the ``api`` fixture sends the Cognito token, and the isolation check runs."""
    envs = running_demo.state["environments"]
    text = 'service = "aipm-backend"\n'
    for name in ("staging", "dev"):
        info = envs[name]
        gate_project.monkeypatch.setenv(f"{name.upper()}_COGNITO_PASSWORD", info["cognito_password"])
        text += (f'\n[environments.{name}]\nbase_url = "{info["api_url"]}"\n'
                 f'[environments.{name}.aws]\nendpoint_url = "{info["endpoint_url"]}"\n'
                 f'account_id = "{info["account_id"]}"\n'
                 f'[environments.{name}.auth.cognito]\nuser_pool_id = "{info["user_pool_id"]}"\n'
                 f'client_id = "{info["user_pool_client_id"]}"\nusername = "{info["cognito_username"]}"\n'
                 f'password = "${{{name.upper()}_COGNITO_PASSWORD}}"\ntoken = "access"\n'
                 f'[environments.{name}.isolation]\nprotected_endpoints = ["/api/me"]\n')
    # the load sends the token too: every request of it goes to the route that takes only a pool token
    text += ('\n[environments.staging.performance]\nusers = 2\nspawn_rate = 2\nduration_s = 2\nwarmup_s = 0\n'
             'tasks = [{ path = "/api/me", status = 200 }]\n')
    (gate_project.path / "deploygate.toml").write_text(text)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        gate_project.monkeypatch.setenv(var, "testing")
    (gate_project.path / "test_me.py").write_text('''
def test_cognito_me(api):
    answer = api.get("/api/me")
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_use"] == "access" and answer.json()["stage"] == "staging"
''')
    res = gate_project.run("--env", "staging", "-k", f"cognito_me or {CHECK} or test_performance", "-rA",
                           "--junitxml", "junit.xml")
    assert res.ret == 0, res.output
    assert "PASSED test_me.py::test_cognito_me" in res.stdout
    assert res.metric("performance.success_rate")["value"] == 100  # every load request carried the token
    assert res.metric("performance.requests_count")["value"] > 0
    metric = res.metric("isolation.foreign_token_accepted_count", env="staging", peer="dev", endpoint="/api/me")
    assert (metric["value"], metric["verdict"]) == (0, "PASS")
    assert_no_credentials(gate_project, running_demo, res.output)
