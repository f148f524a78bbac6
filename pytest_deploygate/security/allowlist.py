"""Accepted findings (bandit test ids, advisory ids and aliases, posture ``DG-…`` ids): each with a reason
and an expiry date; an expired entry counts again and says so."""

from __future__ import annotations

import datetime
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ..sections import AllowEntry
from .posture import Finding


@dataclass(frozen=True)
class Decision:
    entry: AllowEntry | None
    expired: bool

    @property
    def accepted(self) -> bool:
        return self.entry is not None and not self.expired

    def note(self) -> str:
        if self.entry is None:
            return ""
        if self.expired:
            return f" (allowlist entry {self.entry.id} expired on {self.entry.expires.isoformat()}: counts again)"
        return f" (allowlisted until {self.entry.expires.isoformat()}: {self.entry.reason})"


def decide(entries: Iterable[AllowEntry], ids: Iterable[str], path: str = "",
           today: datetime.date | None = None) -> Decision:
    """Whether a finding known by ``ids`` (test id, advisory id, aliases) at ``path`` is accepted."""
    wanted = {i.upper() for i in ids if i}
    for entry in entries:
        if entry.id.upper() in wanted and (not path or fnmatch.fnmatch(path, entry.path)
                                           or fnmatch.fnmatch(path, "*/" + entry.path.lstrip("*/"))):
            return Decision(entry, entry.expired(today))
    return Decision(None, False)


class FindingSink(Protocol):
    def finding(self, check: str, severity: str, text: str) -> None: ...


def screen(gate: FindingSink, check: str, findings: Iterable[Finding], entries: Iterable[AllowEntry],
           today: datetime.date | None = None) -> list[Finding]:
    """List every posture finding in the report (an accepted one as INFO, with its allowlist note) and
    return the ones that count: not allowlisted, or allowlisted by an entry that has expired."""
    entries = tuple(entries)
    counted = []
    for finding in findings:
        decision = decide(entries, [finding.id], finding.where, today)
        gate.finding(check, "INFO" if decision.accepted else finding.severity, finding.describe() + decision.note())
        if not decision.accepted:
            counted.append(finding)
    return counted
