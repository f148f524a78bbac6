"""The transport under every gate HTTP client: the production write guard, decided by destination, and
the bounds of each request (a total deadline, a body-size cap, retries of idempotent reads only).

It sits in the session's adapter, so ``session.request``, ``session.send``, redirects and adapters a user
mounts all pass through it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from .failures import READ_METHODS, WriteRefused, read_only_reason
from .reads import graphql_query_body

CHUNK_BYTES = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


# --------------------------------------------------------------------------------------------------
# Where writes are refused


def _scope(url: str) -> tuple[str, str] | None:
    """``(origin, path prefix)`` of ``url``; the prefix ends with ``/``."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        return None
    path = parts.path or "/"
    return f"{scheme}://{parts.hostname.lower()}:{port}", path if path.endswith("/") else path + "/"


def _directory(url: str) -> str:
    """The folder a page is served from (``…/bucket/index.html`` → ``…/bucket/``)."""
    parts = urlsplit(url)
    path = parts.path.rsplit("/", 1)[0] + "/" if "/" in parts.path else "/"
    return f"{parts.scheme}://{parts.netloc}{path}"


#: a request whose body the guard does not see (the process-wide guard, below the transport)
UNSEEN: Any = object()


@dataclass(frozen=True)
class WriteGuard:
    """Which destinations are read-only: the URL scopes (origin + path prefix) of every environment,
    each owned by its environment, ``protected`` or not. A URL belongs to the environment with the
    longest matching scope (a protected one on a tie), so two stages behind one host (``…/staging``,
    ``…/prod``) stay apart, while any URL under a protected environment's API, frontend or AWS endpoint
    is read-only, whichever client or fixture sends it."""

    #: (origin, path prefix, environment name, protected)
    scopes: tuple[tuple[str, str, str, bool], ...] = ()
    #: the POSTs a protected environment's configuration declares reads (issue 12), the only exceptions to
    #: the rule: (origin, exact path, kind). Kind ``post``: a smoke check's ``read_only_post = true`` (that
    #: URL, any body); ``graphql``: a smoke GraphQL check's URL, for a body that is a GraphQL query only
    #: (:func:`~pytest_deploygate.reads.graphql_query_body`), never a mutation.
    reads: frozenset[tuple[str, str, str]] = frozenset()

    @classmethod
    def of(cls, environments: Iterable[Any], allow_writes: bool = False,
           extra: Mapping[str, str] | None = None, endpoints: bool = True) -> WriteGuard:
        """The guard of a run over ``environments`` (:class:`~pytest_deploygate.config.Environment`);
        ``extra`` maps more URLs to a protected environment's name. Empty with ``allow_writes``.
        Without ``endpoints``, AWS endpoint URLs are left out (below botocore a read can be a POST)."""
        if allow_writes:
            return cls()
        scopes: list[tuple[str, str, str, bool]] = []
        reads: set[tuple[str, str, str]] = set()
        for env in environments:
            urls = [env.base_url, _directory(env.frontend_url) if env.frontend_url else "",
                    (env.aws.endpoint_url or "") if endpoints else ""]
            for url in urls:
                scope = _scope(url) if url else None
                if scope is not None:
                    scopes.append((*scope, env.name, bool(env.protected)))
            if env.protected:
                reads |= declared_reads(env)
        for url, name in (extra or {}).items():
            scope = _scope(url)
            if scope is not None:
                scopes.append((*scope, name, True))
        return cls(tuple(scopes), frozenset(reads))

    def owner(self, url: str) -> str | None:
        """The protected environment ``url`` belongs to, or None."""
        target = _scope(url)
        if target is None or not self.scopes:
            return None
        origin, path = target
        best: tuple[int, bool, str] | None = None
        for s_origin, prefix, name, protected in self.scopes:
            if s_origin == origin and path.startswith(prefix):
                rank = (len(prefix), protected, name)
                if best is None or rank[:2] > best[:2]:
                    best = rank
        return best[2] if best is not None and best[1] else None

    def declared_read(self, method: str, url: str, body: Any = UNSEEN) -> bool:
        """Whether this POST is one the configuration declares a read (see ``reads``). ``body`` UNSEEN (the
        process-wide guard sees no body): a GraphQL URL's POST passes only when this thread's gate
        transport has just read its body and let it through."""
        if method != "POST" or not self.reads:
            return False
        target = _endpoint(url)
        if target is None:
            return False
        if (*target, "post") in self.reads:
            return True
        if (*target, "graphql") not in self.reads:
            return False
        if body is UNSEEN:
            return getattr(_current, "vetted", None) == target
        return graphql_query_body(body)

    def check(self, method: str | None, url: str | None, check: str = "",
              redact: Callable[[str], str] = str, body: Any = UNSEEN) -> None:
        """Raise :class:`WriteRefused` for a non-read ``method`` to a protected destination (but for a POST
        its configuration declares a read: :meth:`declared_read`)."""
        verb = (method or "GET").upper()
        if verb in READ_METHODS or not url:
            return
        name = self.owner(url)
        if name is not None and not self.declared_read(verb, url, body):
            prefix = f"{check}: " if check else ""
            raise WriteRefused(redact(f"{prefix}refused {verb} {url}: {read_only_reason(name)}"))


def _endpoint(url: str) -> tuple[str, str] | None:
    """``(origin, path)`` of ``url``, the path without its query and trailing slash."""
    scope = _scope(url)
    if scope is None:
        return None
    return scope[0], scope[1].rstrip("/") or "/"


def declared_reads(env: Any) -> set[tuple[str, str, str]]:
    """The POSTs ``env``'s smoke checks declare reads: ``read_only_post = true`` checks and GraphQL checks."""
    smoke = getattr(env, "smoke", None)
    if smoke is None or not env.base_url:
        return set()
    out: set[tuple[str, str, str]] = set()
    base = env.base_url.rstrip("/") + "/"
    for check in (*smoke.health, *smoke.endpoints):
        kind = "graphql" if getattr(check, "graphql", None) is not None else \
            "post" if getattr(check, "read_only_post", False) else None
        if kind is None:
            continue
        path = check.path if check.path.startswith(("http://", "https://")) else base + check.path.lstrip("/")
        target = _endpoint(path)
        if target is not None:
            out.add((*target, kind))
    return out


# --------------------------------------------------------------------------------------------------
# Bounds: a total deadline enforced by closing the socket, a size cap on the body


class DeadlineExceeded(requests.exceptions.Timeout):
    """No complete answer within the total deadline."""


class AnswerTooLarge(requests.exceptions.RequestException):
    """The answer's body exceeds the size cap."""


class AnswerCutOff(requests.exceptions.ConnectionError):
    """The connection closed in the middle of the answer's body."""


class _Watch:
    """One request's deadline: when it passes, the socket in use is shut down, which ends any read
    blocked on it (a read timeout alone restarts with each byte a slow server trickles)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.fired = False
        self._conn: Any = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def attach(self, conn: Any) -> None:
        with self._lock:
            self._conn = conn
            fired = self.fired
        if fired:
            self._shut(conn)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            conn = self._conn
        if conn is not None:
            self._shut(conn)

    @staticmethod
    def _shut(conn: Any) -> None:
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                # the plain socket's shutdown, also under TLS: SSLSocket.shutdown would drop its
                # SSL object under the reading thread
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self._timer.cancel()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


_current = threading.local()


def _watching(conn: Any) -> None:
    watch = getattr(_current, "watch", None)
    if watch is not None:
        watch.attach(conn)


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        _watching(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        _watching(self)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class ReadRetry(Retry):
    """urllib3 retries: refused connections for any method (nothing was sent), dropped connections
    for idempotent reads only; never a read timeout (a slow endpoint is a finding, not noise) and
    never once the request's deadline has passed."""

    def increment(self, method: str | None = None, url: str | None = None, response: Any = None,
                  error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None) -> ReadRetry:
        watch = getattr(_current, "watch", None)
        if error is not None and (isinstance(error, ReadTimeoutError) or (watch is not None and watch.fired)):
            raise error
        return super().increment(method, url, response, error, _pool, _stacktrace)


def read_retry(retries: int) -> Retry:
    return ReadRetry(total=None, connect=retries, read=retries, status=0, other=0, redirect=10,
                     allowed_methods=READ_METHODS, backoff_factor=0.1, raise_on_status=False)


@dataclass(frozen=True)
class Limits:
    total_timeout_s: float = 30.0
    max_body_bytes: int = 10_000_000


def size_text(n: int) -> str:
    """``10 MB`` for 10_000_000 bytes (decimal units, as the limit is configured)."""
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


class _BoundedStream:
    """``response.raw`` for a caller that streams: the same cap and deadline, chunk by chunk."""

    def __init__(self, raw: Any, adapter: GuardedAdapter, watch: _Watch) -> None:
        self._raw = raw
        self._adapter = adapter
        self._watch = watch
        self._read = 0

    def stream(self, amt: int | None = CHUNK_BYTES, decode_content: bool | None = None) -> Iterator[bytes]:
        try:
            yield from self._adapter._chunks(self._raw, self._watch, amt or CHUNK_BYTES, decode_content)
        finally:
            self._watch.cancel()

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        return b"".join(self.stream(amt or CHUNK_BYTES)) if amt is None else next(iter(self.stream(amt)), b"")

    def close(self) -> None:
        self._watch.cancel()
        self._raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class GuardedAdapter(HTTPAdapter):
    """requests' HTTPAdapter with the write guard and the bounds of :class:`Limits`. The body is always
    read as a stream, within the deadline and the cap, then handed to the caller as usual
    (``.text``, ``.json()``); a caller asking ``stream=True`` gets a bounded stream."""

    def __init__(self, guard: WriteGuard, limits: Limits, *, retries: int = 2, check: str = "",
                 redact: Callable[[str], str] = str, deadline: Callable[[], float | None] = lambda: None) -> None:
        self.guard = guard
        self.limits = limits
        self.check = check
        self.redact = redact
        self._deadline = deadline
        super().__init__(max_retries=read_retry(retries))

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if hasattr(manager, "pool_classes_by_scheme"):
            manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
        return manager

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        self.guard.check(request.method, request.url, self.check, self.redact, body=request.body)
        deadline = self._deadline() or time.monotonic() + self.limits.total_timeout_s
        watch = _Watch(deadline)
        outer = getattr(_current, "watch", None)
        _current.watch = watch
        outer_vetted = getattr(_current, "vetted", None)
        # a GraphQL query whose body the gate transport has just read: the process-wide guard, which sees no
        # body, lets this very request through if its URL is a declared GraphQL read (and no other request)
        _current.vetted = _endpoint(request.url or "") if request.method == "POST" and \
            graphql_query_body(request.body) else None
        handed_on = False
        try:
            try:
                response = super().send(request, stream=True, timeout=timeout, verify=verify, cert=cert,
                                        proxies=proxies)
            except requests.exceptions.RequestException as exc:
                if watch.fired:
                    raise self._late(request) from exc
                raise
            try:
                # a HEAD answer announces the length of a body it does not send
                length = int(response.headers.get("Content-Length") or 0) if request.method != "HEAD" else 0
            except ValueError:
                length = 0
            if length > self.limits.max_body_bytes:
                response.close()
                raise self._too_large(request)
            if stream:
                response.raw = _BoundedStream(response.raw, self, watch)
                handed_on = True
                return response
            try:
                response._content = b"".join(self._chunks(response.raw, watch, CHUNK_BYTES, True))
            except BaseException:
                response.close()
                raise
            response._content_consumed = True
            return response
        finally:
            _current.watch = outer
            _current.vetted = outer_vetted
            if not handed_on:
                watch.cancel()

    def _chunks(self, raw: Any, watch: _Watch, amt: int, decode_content: bool | None) -> Iterator[bytes]:
        size = 0
        chunks = raw.stream(amt, decode_content=decode_content)
        while True:
            # requests' errors are OSErrors too: raise ours outside the guarded read
            try:
                chunk = next(chunks, None)
            except (Urllib3Error, OSError) as exc:
                raw.close()
                if watch.fired:
                    raise DeadlineExceeded(f"no complete answer within {self.limits.total_timeout_s:g} s") from exc
                if isinstance(exc, ReadTimeoutError):
                    raise requests.exceptions.ReadTimeout(exc) from exc
                raise AnswerCutOff("connection closed before the whole answer arrived") from exc
            if chunk is None:
                return
            size += len(chunk)
            if size > self.limits.max_body_bytes:
                raw.close()
                raise AnswerTooLarge(f"answer larger than {size_text(self.limits.max_body_bytes)}")
            if watch.fired or watch.remaining() <= 0:
                raw.close()
                raise DeadlineExceeded(f"no complete answer within {self.limits.total_timeout_s:g} s")
            yield chunk

    def _too_large(self, request: requests.PreparedRequest) -> AnswerTooLarge:
        return AnswerTooLarge(f"answer larger than {size_text(self.limits.max_body_bytes)}", request=request)

    def _late(self, request: requests.PreparedRequest) -> DeadlineExceeded:
        return DeadlineExceeded(f"no complete answer within {self.limits.total_timeout_s:g} s", request=request)


class ForeignAdapter(BaseAdapter):
    """An adapter a user mounted on a gate client, kept behind the write guard."""

    def __init__(self, inner: BaseAdapter, guard: WriteGuard, check: str = "",
                 redact: Callable[[str], str] = str) -> None:
        super().__init__()
        self.inner = inner
        self.guard = guard
        self.check = check
        self.redact = redact

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.guard.check(request.method, request.url, self.check, self.redact, body=request.body)
        return self.inner.send(request, *args, **kwargs)

    def close(self) -> None:
        self.inner.close()


__all__ = ["READ_METHODS", "AnswerCutOff", "AnswerTooLarge", "DeadlineExceeded", "ForeignAdapter", "GuardedAdapter",
           "Limits", "WriteGuard", "read_retry", "size_text"]
