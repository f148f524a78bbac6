"""boto3 sessions and clients bound to one environment (profile, region, endpoint_url, account).

boto3 is imported lazily: plain test runs and ``pytest --help`` never pay for it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .config import Environment

if TYPE_CHECKING:  # pragma: no cover
    import boto3


#: operations that only read; any other API call is a write for the protected-environment guard
READ_PREFIXES = ("Get", "List", "Describe", "Head", "Scan", "Query", "BatchGet", "TransactGet", "Select",
                 "Lookup", "Search", "Check", "Validate", "Estimate", "Test", "Simulate", "Detect")
#: operations named like writes that change nothing deployed: signing a user in (cognito.py gets a token)
NOT_WRITES = frozenset({"InitiateAuth"})


class EnvironmentAWS:
    """AWS access for one environment. ``client("dynamodb")`` gives a client in its account.

    On a protected environment (unless ``allow_writes``) every call that is not a read is refused before
    it is sent, whether it goes through ``client()``, ``session.client()``, ``session.resource()`` or
    the botocore session under ``session``.
    """

    def __init__(self, env: Environment, allow_writes: bool = False) -> None:
        self.env = env
        self.read_only = env.read_only(allow_writes)
        self._session: boto3.Session | None = None
        self._clients: dict[str, Any] = {}

    @property
    def session(self) -> boto3.Session:
        """The environment's boto3 session: its clients and resources default to the environment's
        endpoint and timeouts, and carry the read-only guard of a protected environment."""
        if self._session is None:
            spec = self.env.aws
            kwargs: dict[str, Any] = {"region_name": spec.region}
            if spec.profile:
                kwargs["profile_name"] = spec.profile
            if spec.static_credentials:
                kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = spec.static_credentials
            session = _session_class()(self._client_defaults, **kwargs)
            if self.read_only:
                # On the botocore session's emitter, before any client exists: every client (and so every
                # resource) copies the emitter when it is created. before-parameter-build also runs when a
                # URL is presigned, so a presigned PUT cannot carry a write past the guard either.
                session.events.register_first("before-parameter-build", self._refuse_writes)
            self._session = session
        return self._session

    def _client_defaults(self) -> dict[str, Any]:
        from botocore.config import Config

        http = self.env.http
        defaults: dict[str, Any] = {
            "config": Config(connect_timeout=http.connect_timeout_s, read_timeout=http.read_timeout_s,
                             retries={"max_attempts": 1 + http.retries, "mode": "standard"})}
        if self.env.aws.endpoint_url:
            defaults["endpoint_url"] = self.env.aws.endpoint_url
        return defaults

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` with timeouts and the environment's endpoint (cached)."""
        if service not in self._clients:
            self._clients[service] = self.session.client(service)
        return self._clients[service]

    def _refuse_writes(self, model: Any, **kwargs: Any) -> None:
        if not model.name.startswith(READ_PREFIXES) and model.name not in NOT_WRITES:
            from .failures import WriteRefused, read_only_reason

            raise WriteRefused(f"refused AWS {model.service_model.service_name}.{model.name}: "
                               f"{read_only_reason(self.env.name)}")

    def describe_error(self, exc: BaseException) -> str:
        """One line for a botocore error: the AWS error code or the connection problem."""
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
        if code:
            return f"{code}: {getattr(exc, 'response', {}).get('Error', {}).get('Message', '')}".rstrip(": ")
        return f"{type(exc).__name__}: {exc}"


@functools.cache
def _session_class() -> type[boto3.Session]:
    """``boto3.Session`` whose ``client()`` (which ``resource()`` uses too) fills in the environment's
    endpoint and timeouts where the caller gives none. Built on first use: boto3 is imported lazily."""
    import boto3

    signature = inspect.signature(boto3.Session.client)

    class EnvironmentSession(boto3.Session):
        def __init__(self, defaults: Callable[[], dict[str, Any]], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._deploygate_defaults = defaults

        def client(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            bound = signature.bind(self, *args, **kwargs)
            given = bound.arguments
            defaults = self._deploygate_defaults()
            if given.get("endpoint_url") is None and "endpoint_url" in defaults:
                given["endpoint_url"] = defaults["endpoint_url"]
            # the caller's settings win; the environment's timeouts fill the rest
            given["config"] = defaults["config"].merge(given["config"]) if given.get("config") else defaults["config"]
            return super().client(*bound.args[1:], **bound.kwargs)

    return EnvironmentSession
