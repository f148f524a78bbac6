"""boto3 sessions and clients bound to one environment (profile, region, endpoint_url, account).

boto3 is imported lazily: plain test runs and ``pytest --help`` never pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import Environment

if TYPE_CHECKING:  # pragma: no cover
    import boto3


#: operations that only read; any other API call is a write for the protected-environment guard
READ_PREFIXES = ("Get", "List", "Describe", "Head", "Scan", "Query", "BatchGet", "TransactGet", "Select",
                 "Lookup", "Search", "Check", "Validate", "Estimate", "Test", "Simulate", "Detect")


class EnvironmentAWS:
    """AWS access for one environment. ``client("dynamodb")`` gives a client in its account.

    On a protected environment (unless ``allow_writes``) every write call is refused before it is sent.
    """

    def __init__(self, env: Environment, allow_writes: bool = False) -> None:
        self.env = env
        self.read_only = env.protected and not allow_writes
        self._session: boto3.Session | None = None
        self._clients: dict[str, Any] = {}

    @property
    def session(self) -> boto3.Session:
        if self._session is None:
            import boto3

            spec = self.env.aws
            kwargs: dict[str, Any] = {"region_name": spec.region}
            if spec.profile:
                kwargs["profile_name"] = spec.profile
            if spec.static_credentials:
                kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = spec.static_credentials
            self._session = boto3.Session(**kwargs)
        return self._session

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` with timeouts and the environment's endpoint."""
        if service not in self._clients:
            from botocore.config import Config

            http = self.env.http
            cfg = Config(connect_timeout=http.connect_timeout_s, read_timeout=http.read_timeout_s,
                         retries={"max_attempts": 1 + http.retries, "mode": "standard"})
            kwargs: dict[str, Any] = {"config": cfg}
            if self.env.aws.endpoint_url:
                kwargs["endpoint_url"] = self.env.aws.endpoint_url
            client = self.session.client(service, **kwargs)
            if self.read_only:
                client.meta.events.register("before-call.*.*", self._refuse_writes)
            self._clients[service] = client
        return self._clients[service]

    def _refuse_writes(self, model: Any, **kwargs: Any) -> None:
        if not model.name.startswith(READ_PREFIXES):
            from .failures import WriteRefused

            raise WriteRefused(f"refused AWS {model.service_model.service_name}.{model.name}: environment "
                               f"{self.env.name} is protected (read-only); pass --allow-writes to let the gate "
                               "write to it")

    def describe_error(self, exc: BaseException) -> str:
        """One line for a botocore error: the AWS error code or the connection problem."""
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
        if code:
            return f"{code}: {getattr(exc, 'response', {}).get('Error', {}).get('Message', '')}".rstrip(": ")
        return f"{type(exc).__name__}: {exc}"
