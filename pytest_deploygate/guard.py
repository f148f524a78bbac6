"""The process-wide production write guard of a gate run: while the run lasts, a request this process
sends through ``http.client`` (so requests, urllib3 and urllib too, whatever session or fixture made it)
that is not a read and goes to a protected environment's API or frontend is refused before it is sent.

Active only when the run has a protected environment and no ``--allow-writes``. AWS endpoints are left
to the boto3 session guard (``aws.py``): below botocore a DynamoDB read is a POST, only the operation
name tells. Other processes (the reference deployment, Locust) are not touched.
"""

from __future__ import annotations

import functools
import http.client
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from .failures import READ_METHODS
from .redaction import redact

if TYPE_CHECKING:  # pragma: no cover
    from .config import Environment
    from .run import GateRun
    from .transport import WriteGuard

__all__ = ["ProcessGuard", "destination", "install_process_guard", "remove_process_guard"]


class ProcessGuard:
    """The rule of one run, read from its environments at each request: their addresses may be filled
    in only once the reference deployment is up (``GateRun.resolve``, on xdist workers before the
    first test)."""

    def __init__(self, run: GateRun) -> None:
        self.run = run
        self._seen: Mapping[str, Environment] | None = None
        self._guard: WriteGuard | None = None

    def write_guard(self) -> WriteGuard:
        environments = self.run.environments or self.run.project.environments
        if self._guard is None or environments is not self._seen:
            # built at the first write, not at start-up: the rule lives beside the transport, which imports
            # requests (~30 ms), and a run whose checks only read never needs it
            from .transport import WriteGuard

            self._guard = WriteGuard.of(environments.values(), self.run.allow_writes, endpoints=False)
            self._seen = environments
        return self._guard

    def check(self, method: str, url: str) -> None:
        """Raise :class:`~pytest_deploygate.failures.WriteRefused` for a write to a protected destination."""
        secrets = self.run.secrets
        self.write_guard().check(method, url, redact=lambda text: redact(text, secrets))


def destination(conn: http.client.HTTPConnection, url: str) -> str:
    """The absolute URL a connection's ``putrequest(method, url)`` is about to ask for: ``url`` itself
    when absolute (a proxy request), else the connection's (or its tunnel's) scheme, host and port."""
    if "://" in url.split("?", 1)[0]:
        return url
    # urllib3's HTTPS connection is not http.client's HTTPSConnection: both say 443 by default
    scheme = "https" if isinstance(conn, http.client.HTTPSConnection) or conn.default_port == 443 else "http"
    tunnel = getattr(conn, "_tunnel_host", None)
    host = str(tunnel or conn.host)
    port = (getattr(conn, "_tunnel_port", None) if tunnel else conn.port) or conn.default_port
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    path = url if url.startswith("/") else "/" + url
    return f"{scheme}://{host}:{port}{path}"


# http.client is one per process: so is the list of runs guarding it (pytester's in-process runs nest)
_active: list[ProcessGuard] = []
_lock = threading.Lock()
_original: list[Callable[..., Any]] = []


def _guarded(putrequest: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(putrequest)
    def guarded_putrequest(self: http.client.HTTPConnection, method: str, url: str, *args: Any,
                           **kwargs: Any) -> Any:
        if _active and str(method).upper() not in READ_METHODS:  # reads pay for nothing
            target = destination(self, url)
            for guard in list(_active):
                guard.check(method, target)
        return putrequest(self, method, url, *args, **kwargs)

    guarded_putrequest.deploygate_guard = True  # type: ignore[attr-defined]
    return guarded_putrequest


GUARD_KEY = pytest.StashKey[ProcessGuard]()


def install_process_guard(config: pytest.Config, run: GateRun) -> None:
    """Guard this process for the run, when it has a protected environment and no --allow-writes."""
    if run.allow_writes or not any(env.protected for env in run.project.environments.values()):
        return
    guard = ProcessGuard(run)
    with _lock:
        if not _original:
            _original.append(http.client.HTTPConnection.putrequest)
            http.client.HTTPConnection.putrequest = _guarded(_original[0])  # type: ignore[method-assign]
        _active.append(guard)
    config.stash[GUARD_KEY] = guard


def remove_process_guard(config: pytest.Config) -> None:
    guard = config.stash.get(GUARD_KEY, None)
    if guard is None:
        return
    del config.stash[GUARD_KEY]
    with _lock:
        if guard in _active:
            _active.remove(guard)
        current = http.client.HTTPConnection.putrequest
        # put the original back only if nobody wrapped ours meanwhile; else ours stays, idle
        if not _active and _original and getattr(current, "deploygate_guard", False):
            http.client.HTTPConnection.putrequest = _original.pop()  # type: ignore[method-assign]
