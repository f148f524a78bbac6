"""The ways a check can fail, shared by the transport, the suites, the reports and the scanners.

A check either *found* something (a ``CheckFailure`` whose message names the finding), or it *could not
check* (``Unverified``: a 5xx, a timeout, a dropped connection met while verifying). The second is never
reported as a finding ("open", "leaked", "insecure"); it is counted as ``<category>.unverified_count``.
"""

from __future__ import annotations


class CheckFailure(AssertionError):
    """A check failed for a reason the message fully explains; reported without a traceback."""


class Unverified(CheckFailure):
    """The check could not verify what it checks (5xx, timeout, dropped connection, unreadable answer).

    The message says what could not be checked and why; it never claims a finding.
    """


class RequestFailed(Unverified):
    """The request itself failed: unreachable host, timeout, TLS error, redirect loop, dropped connection,
    an answer too large or too slow as a whole.

    ``kind`` is one of ``dns``, ``connect``, ``connect-timeout``, ``read-timeout``, ``tls``, ``redirects``,
    ``dropped``, ``deadline``, ``too-large``, ``other``; the first three mean nothing answered at all.
    """

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def unreachable(self) -> bool:
        return self.kind in ("dns", "connect", "connect-timeout")


class WriteRefused(CheckFailure):
    """A write was about to reach a protected environment without --allow-writes."""


#: the methods that only read: allowed on a protected environment, and the only ones ever sent twice
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def read_only_reason(env_name: str) -> str:
    """Why a write to a protected environment is refused: the one wording for HTTP, AWS and Locust."""
    return f"environment {env_name} is protected (read-only); pass --allow-writes to let the gate write to it"


__all__ = ["READ_METHODS", "CheckFailure", "RequestFailed", "Unverified", "WriteRefused", "read_only_reason"]
