"""Secrets never leak, whatever a user's test does: the redaction rules (fast unit tests) and planted secrets
looked for in everything a real gate run writes (terminal, JSON, Markdown, JUnit, Allure, log file)."""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path

import pytest

from gatehelpers import Gate, RunningDemo
from pytest_deploygate.redaction import PIECE_CHARS, aws_credential_secrets, redact, redact_record, redact_value

TOKEN = "dgplant-7f3a9c1e5b2d4f6a8c0e1d3b5a7f9c1d"
AWS = {
    "AWS_ACCESS_KEY_ID": "ASIAPLANTED7F3A9C1E5B",
    "AWS_SECRET_ACCESS_KEY": "plantedSecretKey/7f3a9c1e5b2d4f6a8c0e1d3b5a7f9c",
    "AWS_SESSION_TOKEN": "FwoGZXIvYXdzPLANTEDsessionToken7f3a9c1e5b2d4f6a8c0e1d3b5a7f9c1d3e5f",
}


def pieces(secret: str) -> set[str]:
    """Every piece of ``secret`` that must not appear anywhere."""
    return {secret[i:i + PIECE_CHARS] for i in range(len(secret) - PIECE_CHARS + 1)}


def leaks(text: str, secrets: list[str]) -> list[str]:
    return sorted({p for s in secrets for p in pieces(s) if p in text})


# --------------------------------------------------------------------------------------------------
# the rules


def test_a_truncated_secret_leaves_no_piece_of_eight() -> None:
    # what pytest printed for `assert token == ...`: the start and the end of the repr around "..."
    truncated = f"assert 'Bearer {TOKEN[:13]}...{TOKEN[-14:]}' == 'something else'"
    clean = redact(truncated, [TOKEN])
    assert leaks(clean, [TOKEN]) == []
    assert clean == "assert 'Bearer ***...***' == 'something else'"
    # a piece shorter than 8 characters is no secret (and masking it would shred ordinary text)
    assert redact(f"'Bearer {TOKEN[:5]}...{TOKEN[-2:]}'", [TOKEN]) == f"'Bearer {TOKEN[:5]}...{TOKEN[-2:]}'"


def test_pieces_anywhere_and_escaped_forms_are_masked() -> None:
    odd = 'pa"ss\\word/with+odd&chars<1234>'
    text = f"{TOKEN[3:20]}|{TOKEN[10:30]}| json: {odd!r} xml: pa&quot;ss\\word/with+odd&amp;chars&lt;1234&gt;"
    clean = redact(text, [TOKEN, odd])
    assert leaks(clean, [TOKEN]) == [] and "with+odd" not in clean and "chars&lt;" not in clean
    assert redact(f'{{"h": "{TOKEN}"}}', [TOKEN]) == '{"h": "***"}'


def test_a_url_secret_masks_its_path_not_every_address() -> None:
    hook = "https://hooks.example/services/T000/B000/XXXXSECRETXXXX"
    assert redact(f"posting to {hook}", [hook]) == "posting to ***"
    assert redact("GET https://hooks.example/health: 200", [hook]) == "GET https://hooks.example/health: 200"
    assert "XXXXSECRET" not in redact("…B000/XXXXSECRETX", [hook])


def test_botocore_credential_headers_are_masked_whatever_their_source() -> None:
    line = ("Sending http request: <AWSPreparedRequest headers={'X-Amz-Security-Token': b'IQoJb3JpZ2luX2VjEJr', "
            "'Authorization': b'AWS4-HMAC-SHA256 Credential=ASIAQUNKNOWNKEY12345/20261123/us-east-1/s3/aws4_request'}>")
    clean = redact(line, [])  # resolved at request time: no run knows them beforehand
    assert "IQoJb3JpZ2luX2VjEJr" not in clean and "ASIAQUNKNOWNKEY12345" not in clean
    assert "'X-Amz-Security-Token': b'***'" in clean and "Credential=***/20261123" in clean


def test_aws_credentials_of_every_source_are_secrets(tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = AKIAFROMTHEFILE00001\n"
                     "aws_secret_access_key = fileSecret/0123456789abcdefghij\n[ci]\naws_session_token = "
                     "TokenOfTheCiProfile0123456789\n")
    found = aws_credential_secrets([], {**AWS, "AWS_SHARED_CREDENTIALS_FILE": str(creds),
                                        "AWS_CONFIG_FILE": str(tmp_path / "missing")})
    assert found == {*AWS.values(), "AKIAFROMTHEFILE00001", "fileSecret/0123456789abcdefghij",
                     "TokenOfTheCiProfile0123456789"}
    # an emulator's placeholder credentials are not secrets: "testing" would mask ordinary words
    assert aws_credential_secrets([], {"AWS_ACCESS_KEY_ID": "testing", "AWS_CONFIG_FILE": "/nonexistent",
                                       "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}) == set()


def test_a_log_record_loses_the_secret_of_its_exception_but_not_the_exception() -> None:
    try:
        raise RuntimeError(f"auth failed with {TOKEN}")
    except RuntimeError:
        record = logging.getLogger("app").makeRecord("app", logging.ERROR, __file__, 1, "failed: %s",
                                                     (TOKEN[:20],), sys.exc_info())
    redact_record(record, frozenset([TOKEN]))
    text = logging.Formatter().format(record)
    assert leaks(text, [TOKEN]) == []
    assert "RuntimeError: auth failed with ***" in text and "failed: ***" in text
    assert record.exc_info is not None  # caplog users still see the exception


def test_failure_representations_keep_their_shape() -> None:
    try:
        assert TOKEN == "something else"
    except AssertionError:
        info = pytest.ExceptionInfo.from_current()
    longrepr = info.getrepr()
    redact_value(longrepr, frozenset([TOKEN]))
    assert leaks(str(longrepr), [TOKEN]) == []
    assert longrepr.reprcrash is not None and "***" in longrepr.reprcrash.message  # the short summary's line
    report = redact_value({"nodeid": f"t.py::test[{TOKEN}]", "n": 3, "l": [(TOKEN, 1)]}, frozenset([TOKEN]))
    assert report == {"nodeid": "t.py::test[***]", "n": 3, "l": [("***", 1)]}


def test_warnings_are_redacted_before_anything_records_them() -> None:
    from pytest_deploygate.redaction import SecretGuard

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn(f"token {TOKEN} is deprecated", DeprecationWarning, stacklevel=1)
    guard = SecretGuard(None, lambda: frozenset([TOKEN]))  # type: ignore[arg-type]
    guard.pytest_warning_recorded(caught[0])
    assert str(caught[0].message) == "token *** is deprecated"
    assert isinstance(caught[0].message, DeprecationWarning)


# --------------------------------------------------------------------------------------------------
# a real run: every pattern a user's test can produce, in every file the run writes


LEAKY_TESTS = f"""
    import logging
    import os
    import warnings

    import boto3
    import pytest

    TOKEN = os.environ["STAGING_TOKEN"]


    @pytest.mark.gate
    @pytest.mark.parametrize("value", [TOKEN, "Bearer " + TOKEN])
    def test_parametrized_with_the_token(value):
        assert value


    @pytest.mark.gate
    def test_logs_an_exception(deploy_env):
        try:
            raise RuntimeError("auth failed with " + deploy_env.auth.value)
        except RuntimeError:
            logging.getLogger("app").exception("call failed")


    @pytest.mark.gate
    def test_warns(deploy_env):
        warnings.warn("this token is deprecated: " + deploy_env.auth.value)


    @pytest.mark.gate
    def test_truncated_assertion(deploy_env):
        assert deploy_env.auth.value == "Bearer {'x' * 30}"


    @pytest.mark.gate
    def test_botocore_debug_log(deploy_env, caplog):
        caplog.set_level(logging.DEBUG)
        # the default credential chain: the planted AWS_* variables, session token included
        s3 = boto3.client("s3", endpoint_url=deploy_env.aws.endpoint_url, region_name="us-east-1")
        assert "Buckets" in s3.list_buckets()
        logging.getLogger("app").info("headers %s", {{"X-Amz-Security-Token": os.environ["AWS_SESSION_TOKEN"]}})


    @pytest.mark.gate
    def test_leaks_everywhere(api, deploy_env, gate):
        token = deploy_env.auth.value
        print("stdout:", token)
        gate.note(f"note: {{token}}")
        assert api.get("/health", headers={{"X-Debug": token}}).status_code == 200
        assert token == "something else", token
"""


def _plant(gate_project: Gate) -> list[str]:
    gate_project.monkeypatch.setenv("STAGING_TOKEN", TOKEN)
    for var, value in AWS.items():
        gate_project.monkeypatch.setenv(var, value)
    path = gate_project.path / "deploygate.toml"
    path.write_text(path.read_text().replace(
        '[environments.staging]\nstage = "staging"',
        '[environments.staging]\nstage = "staging"\nauth = { value = "Bearer ${STAGING_TOKEN}" }'))
    gate_project.pytester.makepyfile(test_leaky=LEAKY_TESTS)
    # Allure's result files as they stand before the last net (the redaction of the files at the end):
    # allure-pytest writes each result as its test ends, and those must be clean already
    gate_project.pytester.makeconftest("""
        import shutil

        def pytest_sessionfinish(session):
            if session.config.getoption("allure_report_dir", None):
                shutil.copytree("allure-results", "allure-as-written", dirs_exist_ok=True)
    """)
    return [TOKEN, *AWS.values()]


def _produced(gate: Gate) -> dict[str, str]:
    return {str(p): p.read_text(errors="replace") for p in gate.path.rglob("*")
            if p.is_file() and p.suffix != ".py" and p.name != "deploygate.toml"}


@pytest.mark.e2e
def test_planted_secrets_appear_nowhere_whatever_a_test_does(gate_project: Gate) -> None:
    planted = _plant(gate_project)
    demo = RunningDemo(gate_project, [])  # both runs reuse it
    try:
        # 1. serial, the built-in suites too, every report, live logs at DEBUG
        res = gate_project.run("--env", "staging", "-m", "gate and not performance", "-rA",
                               "--alluredir", "allure-results", "--junitxml", "junit.xml", "--gate-markdown",
                               "summary.md", "--log-file", "gate.log", "--log-file-level", "DEBUG",
                               "-o", "log_cli=true", "--log-cli-level", "DEBUG", "-v")
        assert res.ret == 1, res.output[-3000:]
        failed = res.failed_tests()
        assert {"test_leaky.py::test_truncated_assertion", "test_leaky.py::test_leaks_everywhere"} <= set(failed)
        assert leaks(res.output, planted) == []
        produced = _produced(gate_project)
        names = {Path(p).name for p in produced}
        assert {"junit.xml", "report.json", "summary.md", "gate.log"} <= names
        assert any(Path(p).parent.name == "allure-results" for p in produced)
        assert any(Path(p).parent.name == "allure-as-written" for p in produced)
        assert {p: leaks(text, planted) for p, text in produced.items() if leaks(text, planted)} == {}
        # redacted, not dropped: each pattern still says what happened
        assert "test_leaky.py::test_parametrized_with_the_token[***]" in res.stdout
        assert "RuntimeError: auth failed with Bearer ***" in res.stdout
        assert "this token is deprecated: Bearer ***" in res.stdout
        assert "X-Amz-Security-Token" in produced[str(gate_project.path / "gate.log")]
        junit = produced[str(gate_project.path / "junit.xml")]
        assert 'name="test_parametrized_with_the_token[***]"' in junit

        # 2. the user's tests alone under xdist: reports, warnings and logs come from workers
        res = gate_project.run("--env", "staging", "--no-builtin-suites", "test_leaky.py", "-n", "2", "-rA",
                               "--junitxml", "junit-xdist.xml", "--log-level", "DEBUG")
        assert res.ret == 1, res.output[-3000:]
        assert leaks(res.output, planted) == []
        assert "this token is deprecated: Bearer ***" in res.stdout
        produced = _produced(gate_project)
        assert {p: leaks(text, planted) for p, text in produced.items() if leaks(text, planted)} == {}
    finally:
        demo.stop()


def test_a_planted_secret_appears_nowhere(gate_project: Gate, webhook: list[dict[str, object]]) -> None:
    secret = "dg-canary-token-7f3a9c1e5b"
    gate_project.monkeypatch.setenv("STAGING_TOKEN", secret)
    path = gate_project.path / "deploygate.toml"
    path.write_text(path.read_text().replace(
        '[environments.staging]\nstage = "staging"',
        '[environments.staging]\nstage = "staging"\nauth = { value = "Bearer ${STAGING_TOKEN}" }'))
    gate_project.pytester.makepyfile(test_leaky="""
        import logging
        import pytest

        @pytest.mark.gate
        def test_leaks_everywhere(api, deploy_env, gate):
            token = deploy_env.auth.value
            print("stdout:", token)
            logging.getLogger("app").warning("log: %s", token)
            gate.note(f"note: {token}")
            assert api.get("/health", headers={"X-Debug": token}).status_code == 200
            assert token == "something else", token
    """)
    res = gate_project.run("--env", "staging", "-m", "gate and not performance",
                           "--alluredir", "allure-results", "--junitxml", "junit.xml", "--gate-markdown", "summary.md",
                           "-rA", "-o", "log_cli=true")
    assert res.ret == 1
    assert webhook, "the failing run notified the webhook"
    assert secret not in res.stdout + res.stderr
    assert secret not in json.dumps(webhook)
    produced = [p for p in gate_project.path.rglob("*") if p.is_file() and p.suffix != ".py"
                and p.name != "deploygate.toml"]
    assert any(p.name == "junit.xml" for p in produced)
    assert any(p.parent.name == "allure-results" for p in produced)
    assert any(p.name == "report.json" for p in produced)
    assert "`test_leaky.py::test_leaks_everywhere`" in (gate_project.path / "summary.md").read_text()
    leaks = [str(p) for p in produced if secret.encode() in p.read_bytes()]
    assert leaks == []
    # nor any piece of it a truncation could leave (tests/test_secrets.py tries every pattern)
    pieces = {secret[i:i + 8] for i in range(len(secret) - 7)}
    texts = [res.stdout, res.stderr, json.dumps(webhook), *(p.read_text(errors="replace") for p in produced)]
    assert [piece for piece in pieces if any(piece in t for t in texts)] == []
    assert "***" in (gate_project.path / "junit.xml").read_text()  # redacted, not dropped
