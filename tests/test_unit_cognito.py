"""``auth.cognito`` without a deployment: its configuration errors (file:line: key), the launched deployment's
placeholders, what a token that cannot be had says (could not check, never a finding), how client_for sends a
token, and that a token never shows in a repr. The sign-in itself, against the reference deployment's user
pools: test_cognito_auth.py."""

from __future__ import annotations

import base64
import json
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_deploygate.cognito import CognitoTokens, Token, token_claims, with_launched_cognito
from pytest_deploygate.config import ConfigError, Environment, load_project
from pytest_deploygate.failures import Unverified
from pytest_deploygate.http import client_for

BASE = '''service = "svc"

[defaults]
base_url = "http://127.0.0.1:9"

[defaults.auth.cognito]
client_id = "abc123"
username = "probe-{stage}"
password = "${PW}"

[environments.staging]
stage = "staging"
'''

ENV, DEF = "environments.staging.auth.cognito", "defaults.auth.cognito"


def load(tmp_path: Path, text: str, **environ: str) -> dict[str, Environment]:
    path = tmp_path / "deploygate.toml"
    path.write_text(text)
    return dict(load_project(path, environ={"PW": "s3cret-Passw0rd!", **environ}).environments)


def error(tmp_path: Path, text: str, **environ: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, **environ)
    return str(info.value)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_cognito_auth_is_read_and_its_password_is_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "deploygate.toml"
    path.write_text(BASE + '\n[environments.staging.isolation]\nprotected_endpoints = ["/api/me"]\n')
    project = load_project(path, environ={"PW": "s3cret-Passw0rd!"})
    env = project.environments["staging"]
    assert env.auth is not None and env.auth.cognito is not None
    assert (env.auth.header, env.auth.value, env.auth.scheme) == ("Authorization", "", "Bearer")
    assert (env.auth.cognito.client_id, env.auth.cognito.username, env.auth.cognito.token) == \
        ("abc123", "probe-{stage}", "id")
    assert env.isolation.protected_endpoints == ("/api/me",)
    assert "s3cret-Passw0rd!" in project.secrets


@pytest.mark.parametrize(("old", "new", "needle", "key", "message"), [
    ('password = "${PW}"', 'password = "hunter2-literal"', "hunter2", f"{ENV}.password",
     "secrets must be references like \"${COGNITO_PASSWORD}\", not literals"),
    ('client_id = "abc123"\n', "", "[defaults.auth.cognito]", ENV,
     "auth.cognito needs 'client_id'"),
    # the schema names the table a key is written in; the rules after it name the environment (at that line)
    ('password = "${PW}"', 'password = "${PW}"\ntoken = "refresh"', "refresh", f"{DEF}.token",
     "'refresh'"),
    ('client_id = "abc123"', 'client_id = "{pool_client}"', "pool_client", f"{ENV}.client_id",
     "unknown placeholder {pool_client}"),
    ('password = "${PW}"', 'password = "${PW}"\nclientid = "x"', "clientid", f"{DEF}.clientid",
     "unknown key 'clientid'"),
    ('password = "${PW}"', 'password = "{user_pool_id}"', "{user_pool_id}", f"{ENV}.password",
     "not literals (or {cognito_password}"),
])
def test_a_bad_cognito_table_names_file_line_and_key(tmp_path: Path, old: str, new: str, needle: str, key: str,
                                                      message: str) -> None:
    assert old in BASE
    text = BASE.replace(old, new)
    text_error = error(tmp_path, text)
    assert f"deploygate.toml:{line_of(text, needle)}: {key}" in text_error, text_error
    assert message in text_error, text_error
    assert "hunter2" not in text_error or "hunter2" in needle  # a literal password is named by its key only


def test_protected_endpoints_must_be_a_list_of_paths(tmp_path: Path) -> None:
    text = BASE + '\n[environments.staging.isolation]\nprotected_endpoints = "/api/me"\n'
    text_error = error(tmp_path, text)
    assert f"deploygate.toml:{line_of(text, 'protected_endpoints')}: environments.staging.isolation." \
           "protected_endpoints" in text_error, text_error


def test_a_missing_password_variable_names_it(tmp_path: Path) -> None:
    path = tmp_path / "deploygate.toml"
    path.write_text(BASE)
    with pytest.raises(ConfigError, match=r"\$\{PW\} is not set"):
        load_project(path, environ={})


def test_launched_placeholders_are_filled_from_the_addresses(tmp_path: Path) -> None:
    text = BASE.replace('client_id = "abc123"', 'client_id = "{user_pool_client_id}"\nuser_pool_id = "{user_pool_id}"')
    text = text.replace('username = "probe-{stage}"', 'username = "{cognito_username}"')
    text = text.replace('password = "${PW}"', 'password = "{cognito_password}"')
    env = load(tmp_path, text)["staging"]
    filled = with_launched_cognito(env, {"user_pool_id": "us-east-1_abc", "user_pool_client_id": "cid",
                                         "cognito_username": "deploygate-probe", "cognito_password": "pw-123456"})
    assert filled.auth is not None and filled.auth.cognito is not None
    c = filled.auth.cognito
    assert (c.user_pool_id, c.client_id, c.username, c.password) == ("us-east-1_abc", "cid", "deploygate-probe",
                                                                      "pw-123456")
    # not launched: the placeholder is left, and asking for a token says why there is none
    tokens = CognitoTokens(lambda secret: None)
    with pytest.raises(Unverified, match=r"user_pool_id = '\{user_pool_id\}' uses \{user_pool_id\}, "
                                         r"which only a launched reference deployment"):
        tokens.get(env)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_pool_is_could_not_check_once_per_run(tmp_path: Path) -> None:
    env = load(tmp_path, BASE)["staging"]
    env = replace(env, aws=replace(env.aws, endpoint_url=f"http://127.0.0.1:{_closed_port()}",
                                   static_credentials=("testing", "testing")),
                  http=replace(env.http, retries=0, connect_timeout_s=2.0))
    seen: list[str] = []
    tokens = CognitoTokens(seen.append)
    with pytest.raises(Unverified) as first:
        tokens.get(env)
    text = str(first.value)
    assert text.startswith("auth.cognito of staging: could not get a token from the pool of app client abc123: "
                           "the Cognito endpoint could not be reached"), text
    assert "EndpointConnectionError" in text
    assert seen == ["s3cret-Passw0rd!"]  # the password is a secret before anything is sent
    with pytest.raises(Unverified) as again:  # remembered: the run does not ask again
        tokens.get(env)
    assert str(again.value) == text and seen == ["s3cret-Passw0rd!"]


def _jwt(claims: dict[str, str]) -> str:
    def part(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


class _Tokens(CognitoTokens):
    """A token source that has signed in already (the sign-in is test_cognito_auth.py's)."""

    def __init__(self, token: Token) -> None:
        super().__init__(lambda secret: None)
        self.token = token

    def get(self, env: Environment) -> Token:
        return self.token


def test_client_for_sends_the_pools_token_unless_a_value_is_set(tmp_path: Path) -> None:
    env = load(tmp_path, BASE.replace('[defaults.auth.cognito]', '[defaults.auth]\nheader = "X-Auth"\n'
                                      'scheme = "JWT"\n\n[defaults.auth.cognito]'))["staging"]
    value = _jwt({"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc"})
    token = Token(env="staging", value=value, kind="id", pool="us-east-1_abc")
    client = client_for(env, tokens=_Tokens(token))
    assert client.headers["X-Auth"] == f"JWT {value}"
    assert value in client.secrets  # redacted from whatever the client says
    assert "X-Auth" not in client_for(env).headers  # no token source: no header
    assert env.auth is not None
    with_value = replace(env, auth=replace(env.auth, value="Bearer launched-token"))
    assert client_for(with_value, tokens=_Tokens(token)).headers["X-Auth"] == "Bearer launched-token"
    assert value not in repr(token) and token_claims(value)["iss"].endswith("/us-east-1_abc")
    assert token_claims("not-a-jwt") == {}


def test_signing_in_passes_the_protected_guard_and_nothing_else_write_named_does(tmp_path: Path) -> None:
    from pytest_deploygate.aws import EnvironmentAWS
    from pytest_deploygate.failures import WriteRefused

    env = load(tmp_path, BASE.replace('stage = "staging"', 'stage = "staging"\nprotected = true'))["staging"]
    env = replace(env, aws=replace(env.aws, endpoint_url=f"http://127.0.0.1:{_closed_port()}",
                                   static_credentials=("testing", "testing")),
                  http=replace(env.http, retries=0, connect_timeout_s=2.0))
    idp = EnvironmentAWS(env).client("cognito-idp")
    with pytest.raises(WriteRefused, match=r"cognito-idp\.AdminCreateUser: environment staging is protected"):
        idp.admin_create_user(UserPoolId="us-east-1_abc", Username="someone")
    with pytest.raises(Exception) as info:  # sent (nothing listens there): the guard let the sign-in through
        idp.initiate_auth(ClientId="abc123", AuthFlow="USER_PASSWORD_AUTH",
                          AuthParameters={"USERNAME": "u", "PASSWORD": "p"})
    assert type(info.value).__name__ == "EndpointConnectionError"
