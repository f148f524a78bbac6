"""The code scan: bandit, run as a subprocess, its JSON findings by severity."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from ..failures import CheckFailure


@dataclass(frozen=True)
class CodeFinding:
    test_id: str
    severity: str
    confidence: str
    filename: str
    line: int
    cwe: str
    text: str

    def describe(self) -> str:
        cwe = f" CWE-{self.cwe}" if self.cwe else ""
        return f"{self.severity} {self.test_id}{cwe} {self.filename}:{self.line} {self.text}"


def run_bandit(paths: Iterable[str], severity: str = "low", confidence: str = "low",
               exclude: Iterable[str] = (), timeout_s: float = 300.0) -> list[CodeFinding]:
    paths = list(paths)
    cmd = [sys.executable, "-m", "bandit", "-r", *paths, "-f", "json", "-q",
           "--severity-level", severity, "--confidence-level", confidence]
    excluded = list(exclude)
    if excluded:
        cmd += ["-x", ",".join(excluded)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise CheckFailure(f"code scan: bandit did not finish within {timeout_s:g} s") from None
    return parse_bandit(done.stdout, done.stderr, done.returncode)


def parse_bandit(stdout: str, stderr: str = "", returncode: int = 0) -> list[CodeFinding]:
    try:
        data = json.loads(stdout)
    except ValueError:
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        raise CheckFailure(f"code scan: bandit failed (exit code {returncode}): {last}") from None
    errors = data.get("errors") or []
    if errors:
        raise CheckFailure("code scan: bandit could not scan " + "; ".join(
            f"{e.get('filename')}: {e.get('reason')}" for e in errors))
    return [CodeFinding(r["test_id"], r["issue_severity"].upper(), r["issue_confidence"].upper(), r["filename"],
                        int(r["line_number"]), str((r.get("issue_cwe") or {}).get("id", "")), r["issue_text"])
            for r in data.get("results", [])]
