"""The project gates itself: its pinned dependency set, audited by its own dependency-audit check.

``python bench/self_audit.py [REQUIREMENTS]`` pins the running environment (``pip freeze --all``: pip and
setuptools included, the editable project left out) unless a pinned requirements file is given, and runs

    pytest --env self -m security -k dependency_audit --fail-on-warn

with ``bench/selfaudit/deploygate.toml``: pip-audit ``--strict`` against the reference deployment's local
OSV service (``pytest_deploygate/demo/advisories.json``). A known vulnerability fails the gate (exit 1); so
does a dependency that could not be audited (``--fail-on-warn``). The exit status is the gate's; the report
goes to ``.deploygate/self-audit.json`` (or ``$DEPLOYGATE_SELF_AUDIT_REPORT``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "bench" / "selfaudit" / "deploygate.toml"


def freeze(python: str = sys.executable) -> str:
    """The environment's installed set as pins (pip and setuptools too: the venv ships them)."""
    return subprocess.run([python, "-m", "pip", "freeze", "--all", "--exclude-editable",
                           "--disable-pip-version-check"], check=True, capture_output=True, text=True).stdout


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        print(__doc__, file=sys.stderr)
        return 4
    with tempfile.TemporaryDirectory(prefix="deploygate-self-audit-") as tmp:
        if args:
            requirements = Path(args[0]).resolve()
            if not requirements.is_file():
                print(f"self-audit: no such requirements file: {requirements}", file=sys.stderr)
                return 4
        else:
            requirements = Path(tmp) / "self-audit.txt"
            requirements.write_text(freeze())
        env = dict(os.environ, DEPLOYGATE_SELF_AUDIT_REQUIREMENTS=str(requirements))
        env.pop("DEPLOYGATE_DEMO_FAULTS", None)
        report = os.environ.get("DEPLOYGATE_SELF_AUDIT_REPORT", str(ROOT / ".deploygate" / "self-audit.json"))
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--env", "self",
               "--deploygate-config", str(CONFIG), "-m", "security", "-k", "dependency_audit", "--fail-on-warn",
               "--gate-report", report, "-rs"]
        return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
