"""The process-wide production write guard of a gate run: while the run lasts, a request this process
sends through ``http.client`` (so requests, urllib3 and urllib too, whatever session or fixture made it)
that is not a read and goes to a protected environment's API or frontend is refused before it is sent.

Active only when the run has a protected environment and no ``--allow-writes``. AWS endpoints are left
to the boto3 session guard (``aws.py``): below botocore a DynamoDB read is a POST, only the operation
name tells. Other processes (the reference deployment, Locust) are not touched.
"""

from __future__ import annotations

import functools
import importlib.abc
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from .failures import READ_METHODS
from .redaction import redact

if TYPE_CHECKING:  # pragma: no cover
    import http.client
    from importlib.machinery import ModuleSpec

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
    https = getattr(sys.modules.get("http.client"), "HTTPSConnection", ())
    scheme = "https" if isinstance(conn, https) or conn.default_port == 443 else "http"
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


def _patch(client: ModuleType) -> None:
    """Guard ``client`` (the http.client module); under ``_lock``, while a run is guarded."""
    if not _original and _active:
        _original.append(client.HTTPConnection.putrequest)
        client.HTTPConnection.putrequest = _guarded(_original[0])


class _GuardOnImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Guards http.client the moment it is imported, when a guarded run starts before anything imported it
    (a gate run that sends nothing, ``--co``, does not pay for importing http.client and ssl, ~5 ms): first on
    ``sys.meta_path``, it finds ``http.client`` through the other finders, lets that module's own loader run
    it, then patches it, before the import returns to whoever asked."""

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if name != "http.client":
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None) if finder is not self else None
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is None or not hasattr(spec.loader, "exec_module"):
                    return spec
                self._loader = spec.loader
                spec.loader = self
                return spec
        return None

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        loader = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = loader
        module.__loader__ = loader
        loader.exec_module(module)
        with _lock:
            _patch(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)


_on_import = _GuardOnImport()

GUARD_KEY = pytest.StashKey[ProcessGuard]()


def install_process_guard(config: pytest.Config, run: GateRun) -> None:
    """Guard this process for the run, when it has a protected environment and no --allow-writes: http.client
    now, or the moment it is imported."""
    if run.allow_writes or not any(env.protected for env in run.project.environments.values()):
        return
    guard = ProcessGuard(run)
    with _lock:
        _active.append(guard)
        if "http.client" not in sys.modules and not _original and _on_import not in sys.meta_path:
            sys.meta_path.insert(0, _on_import)
    if "http.client" in sys.modules:  # imported already (by another thread now: this waits until it is)
        import http.client

        with _lock:
            _patch(http.client)
    config.stash[GUARD_KEY] = guard


def remove_process_guard(config: pytest.Config) -> None:
    guard = config.stash.get(GUARD_KEY, None)
    if guard is None:
        return
    del config.stash[GUARD_KEY]
    with _lock:
        if guard in _active:
            _active.remove(guard)
        if _active:
            return
        if _on_import in sys.meta_path:
            sys.meta_path.remove(_on_import)
        client = sys.modules.get("http.client")
        if client is None or not _original:
            return
        current = client.HTTPConnection.putrequest
        # put the original back only if nobody wrapped ours meanwhile; else ours stays, idle
        if getattr(current, "deploygate_guard", False):
            client.HTTPConnection.putrequest = _original.pop()
