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
import weakref
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
    # urllib3's HTTPS connection is not http.client's HTTPSConnection: both say 443 by default; by name, so that
    # a connection of an http.client imported again or reloaded (not the one in sys.modules) counts too
    https = any(kind.__name__ == "HTTPSConnection" and kind.__module__ == "http.client"
                for kind in type(conn).__mro__)
    scheme = "https" if https or conn.default_port == 443 else "http"
    tunnel = getattr(conn, "_tunnel_host", None)
    host = str(tunnel or conn.host)
    port = (getattr(conn, "_tunnel_port", None) if tunnel else conn.port) or conn.default_port
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    path = url if url.startswith("/") else "/" + url
    return f"{scheme}://{host}:{port}{path}"


# the runs guarding this process (pytester's in-process runs nest)
_active: list[ProcessGuard] = []
_lock = threading.Lock()
#: each HTTPConnection class guarded while runs are, with the putrequest it had and the guard put in its place:
#: one per http.client module object the process has used meanwhile (one dropped from sys.modules and imported
#: again, by pytester's inline_run putting its snapshot back, ``monkeypatch.delitem``, or ``importlib.reload``,
#: makes a new one, while the old one's classes stay in use by whoever holds them)
_patched: dict[type, tuple[Callable[..., Any], Callable[..., Any]]] = {}
#: every HTTPConnection class guarded so far that is still alive: a later run guards those too (urllib3's
#: connections may still derive from one whose module is no longer in sys.modules)
_known: weakref.WeakSet[type] = weakref.WeakSet()


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


def _is_guarded(putrequest: object) -> bool:
    """Whether a guard of ours is in this ``putrequest``: itself, or a function it wraps (``functools.wraps``,
    which also copies the mark onto the wrapper)."""
    for _ in range(32):  # a chain of wrappers, bounded: a Mock has every attribute
        if getattr(putrequest, "deploygate_guard", False) is True:
            return True
        putrequest = getattr(putrequest, "__wrapped__", None)
        if putrequest is None:
            return False
    return False


def _patch(client: ModuleType) -> None:
    """Guard ``client`` (an http.client module) unless its HTTPConnection is already: decided by the class in it,
    not by what was patched before; under ``_lock``, while a run is guarded."""
    _patch_class(getattr(client, "HTTPConnection", None))


def _patch_class(connection: object) -> None:
    putrequest = getattr(connection, "putrequest", None)
    if not _active or not isinstance(connection, type) or putrequest is None or _is_guarded(putrequest):
        return
    guarded = _guarded(putrequest)
    _patched[connection] = (putrequest, guarded)
    _known.add(connection)
    connection.putrequest = guarded  # type: ignore[attr-defined]


class _GuardOnImport(importlib.abc.MetaPathFinder):
    """Guards http.client the moment it is imported, each time it is, while a run is guarded (a gate run that sends
    nothing, ``--co``, does not pay for importing http.client and ssl, ~5 ms; one that drops it from sys.modules
    gets the next one guarded too): first on ``sys.meta_path`` for as long as a run is guarded, it finds
    ``http.client`` through the other finders and hands back their spec, its loader wrapped so that the module's
    own loader runs it and the guard is put on it before the import returns to whoever asked."""

    deploygate_guard = True

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if name != "http.client" or not _active:
            return None
        for finder in list(sys.meta_path):
            if getattr(finder, "deploygate_guard", False) is True:  # this one, or a copy of this module's
                continue
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = (_PatchAfterExec(spec.loader) if hasattr(spec.loader, "exec_module")
                                   else _PatchAfterLoad(spec.loader))
                return spec
        return None


class _PatchAfterExec(importlib.abc.Loader):
    """The loader of one import of http.client: its own runs the module, then the guard goes on."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        create = getattr(self.loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        loader = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = loader
        module.__loader__ = loader
        loader.exec_module(module)
        with _lock:
            _patch(module)


class _PatchAfterLoad:
    """The same for a loader that only has the old ``load_module`` (none of the standard library's)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def load_module(self, name: str) -> ModuleType:
        module: ModuleType = self.loader.load_module(name)
        with _lock:
            _patch(module)
        return module


_on_import = _GuardOnImport()

GUARD_KEY = pytest.StashKey[ProcessGuard]()


def install_process_guard(config: pytest.Config, run: GateRun) -> None:
    """Guard this process for the run, when it has a protected environment and no --allow-writes: http.client
    now, if imported, and each time it is imported until the run ends."""
    if run.allow_writes or not any(env.protected for env in run.project.environments.values()):
        return
    guard = ProcessGuard(run)
    with _lock:
        _active.append(guard)
        if _on_import not in sys.meta_path:
            sys.meta_path.insert(0, _on_import)
        for connection in list(_known):
            _patch_class(connection)
    if "http.client" in sys.modules:  # imported already (by another thread now: this waits until it is)
        client = importlib.import_module("http.client")
        # the ``http`` package's attribute is the one imported last: another if it was dropped from sys.modules
        # and put back since (``monkeypatch.delitem``)
        package = getattr(sys.modules.get("http"), "client", client)
        with _lock:
            _patch(client)
            if isinstance(package, ModuleType) and package is not client:
                _patch(package)
    config.stash[GUARD_KEY] = guard


def remove_process_guard(config: pytest.Config) -> None:
    """End the run's guard; with the last run guarded, put back each putrequest it replaced, where nobody wrapped
    the guard meanwhile (else it stays, idle)."""
    guard = config.stash.get(GUARD_KEY, None)
    if guard is None:
        return
    del config.stash[GUARD_KEY]
    with _lock:
        if guard in _active:
            _active.remove(guard)
        if _active:
            return
        while _on_import in sys.meta_path:
            sys.meta_path.remove(_on_import)
        for connection, (putrequest, guarded) in _patched.items():
            if connection.__dict__.get("putrequest") is guarded:
                connection.putrequest = putrequest  # type: ignore[attr-defined]
        _patched.clear()
