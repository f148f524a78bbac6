"""Tokens of an environment's Cognito user pool (``auth.cognito``): the probe user signed in with
``initiate_auth`` (USER_PASSWORD_AUTH) through the environment's own AWS access (its account, endpoint and
timeouts), once per environment per process (each xdist worker signs in for itself), every token a secret of
the run from the moment it exists.

A token that cannot be had (the pool refused the sign-in, the pool or app client is missing, the endpoint is
down) is :class:`~pytest_deploygate.failures.Unverified`: the checks that need it could not check, which is
never a finding. boto3 is imported only when a token is asked for.
"""

from __future__ import annotations

import base64
import json
import string
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .failures import Unverified
from .sections import LAUNCHED_COGNITO_FIELDS, LAUNCHED_PASSWORD, CognitoSpec

if TYPE_CHECKING:  # pragma: no cover
    from .config import Environment

__all__ = ["CognitoTokens", "Token", "token_claims", "with_launched_cognito"]

#: what the pool says, in words a reader can act on
_WHY = {
    "NotAuthorizedException": "the pool refused the sign-in (check auth.cognito username and password, and that "
                              "the app client allows USER_PASSWORD_AUTH)",
    "UserNotFoundException": "the pool has no such user (auth.cognito.username)",
    "ResourceNotFoundException": "the user pool or app client does not exist in this account "
                                 "(auth.cognito.client_id / user_pool_id)",
    "InvalidParameterException": "the pool refused the request (is USER_PASSWORD_AUTH enabled on the app client?)",
    "UserNotConfirmedException": "the user is not confirmed yet",
    "PasswordResetRequiredException": "the user must reset the password first",
    "TooManyRequestsException": "the pool throttled the sign-in",
}


@dataclass(frozen=True)
class Token:
    """One environment's token: its value (a secret), its kind (``id`` / ``access``) and the pool that
    issued it (from the token's ``iss`` claim; ``""`` when the token does not say)."""

    env: str
    value: str
    kind: str
    pool: str

    def header_value(self, scheme: str) -> str:
        return f"{scheme} {self.value}" if scheme else self.value

    def __repr__(self) -> str:  # never the value, whatever prints a Token
        return f"Token(env={self.env!r}, kind={self.kind!r}, pool={self.pool!r})"


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, read without verifying it (only to name the pool that issued it)."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def with_launched_cognito(env: Environment, address: Mapping[str, Any]) -> Environment:
    """``env`` whose ``auth.cognito`` placeholders of a launched reference deployment (``{user_pool_id}``,
    ``{user_pool_client_id}``, ``{cognito_username}``, ``{cognito_password}``) hold its address values."""
    spec = env.auth.cognito if env.auth is not None else None
    if spec is None:
        return env

    def fill(text: str) -> str:
        for name in LAUNCHED_COGNITO_FIELDS:
            if address.get(name):
                text = text.replace("{" + name + "}", str(address[name]))
        return text

    password = spec.password
    if password == LAUNCHED_PASSWORD and address.get("cognito_password"):
        password = str(address["cognito_password"])
    cognito = replace(spec, user_pool_id=fill(spec.user_pool_id), client_id=fill(spec.client_id),
                      username=fill(spec.username), password=password)
    assert env.auth is not None
    return replace(env, auth=replace(env.auth, cognito=cognito))


def _resolved(env: Environment, spec: CognitoSpec) -> CognitoSpec:
    """``spec`` with ``{stage}``-style placeholders filled in for ``env``; a launched deployment's placeholder
    left over (the environment is not launched) is a reason the token cannot be had."""
    fields = env.fields()
    out = {}
    for name in ("user_pool_id", "client_id", "username"):
        value = getattr(spec, name)
        wanted = {f for _, f, _, _ in string.Formatter().parse(value) if f}
        missing = sorted(wanted - fields.keys())
        if missing:
            raise Unverified(f"auth.cognito of {env.name}: could not get a token: {name} = {value!r} uses "
                             f"{{{missing[0]}}}, which only a launched reference deployment (launch = \"demo\") "
                             "fills in")
        out[name] = value.format_map(fields) if wanted else value
    if spec.password == LAUNCHED_PASSWORD:
        raise Unverified(f"auth.cognito of {env.name}: could not get a token: password = {LAUNCHED_PASSWORD} is "
                         "filled in only by a launched reference deployment (launch = \"demo\")")
    return replace(spec, **out)


class CognitoTokens:
    """The tokens of this process, by environment: fetched on first use, then kept (a failure too: a pool
    that refused once is not asked again in the same run). ``register`` gets every secret the moment it
    exists (the run's ``extra_secrets``), so no output of the run can show it."""

    def __init__(self, register: Callable[[str], None]) -> None:
        self._register = register
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str | None, CognitoSpec], Token | str] = {}

    def configured(self, env: Environment) -> bool:
        return env.auth is not None and env.auth.cognito is not None

    def get(self, env: Environment) -> Token:
        """``env``'s token (its ``auth.cognito``); :class:`Unverified` saying why when there is none."""
        spec = env.auth.cognito if env.auth is not None else None
        if spec is None:
            raise Unverified(f"environment {env.name} has no auth.cognito: no token of its user pool to use")
        key = (env.name, env.aws.endpoint_url, spec)
        with self._lock:
            if key not in self._cache:
                try:
                    self._cache[key] = self._fetch(env, spec)
                except Unverified as exc:
                    self._cache[key] = str(exc)
            found = self._cache[key]
        if isinstance(found, str):
            raise Unverified(found)
        return found

    def _fetch(self, env: Environment, spec: CognitoSpec) -> Token:
        from .aws import EnvironmentAWS

        spec = _resolved(env, spec)
        self._register(spec.password)
        pool = spec.user_pool_id or f"the pool of app client {spec.client_id}"
        where = f"auth.cognito of {env.name}: could not get a token from {pool}"
        aws = EnvironmentAWS(env)
        try:
            answer = aws.client("cognito-idp").initiate_auth(
                ClientId=spec.client_id, AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": spec.username, "PASSWORD": spec.password})
        except Exception as exc:  # botocore: an error answer, no endpoint, no credentials, a timeout
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "") if hasattr(exc, "response") else ""
            why = _WHY.get(code) or ("the Cognito endpoint could not be reached or answered no token" if not code
                                     else "the pool answered an error")
            raise Unverified(f"{where}: {why} ({aws.describe_error(exc)})") from None
        result = answer.get("AuthenticationResult") or {}
        for name in ("IdToken", "AccessToken", "RefreshToken"):
            if result.get(name):
                self._register(str(result[name]))
        value = result.get("IdToken" if spec.token == "id" else "AccessToken")
        if not value:
            challenge = answer.get("ChallengeName")
            why = (f"the pool asks for {challenge} before it issues a token (sign the user in once and settle it)"
                   if challenge else f"the answer holds no {spec.token} token")
            raise Unverified(f"{where}: {why}")
        issuer = str(token_claims(value).get("iss", ""))
        issued_by = issuer.rsplit("/", 1)[-1] if issuer else ""
        if spec.user_pool_id and issued_by and issued_by != spec.user_pool_id:
            raise Unverified(f"{where}: the token is issued by user pool {issued_by}, not auth.cognito.user_pool_id "
                             f"{spec.user_pool_id} (the app client belongs to another pool)")
        return Token(env=env.name, value=str(value), kind=spec.token, pool=issued_by or spec.user_pool_id)
