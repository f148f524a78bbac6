"""Installed but inactive (no --env), the plugin costs pytest next to nothing: a whole `pytest --co` run
imports none of the gate's heavy parts (requests, boto3, config, gate, redaction); `pytest --fixtures` still
documents every fixture. Speed figures themselves are in bench/ (startup.py), not here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

HEAVY = ("requests", "urllib3", "boto3", "botocore", "locust", "pytest_deploygate.config",
         "pytest_deploygate.sections", "pytest_deploygate.schema",
         "pytest_deploygate.thresholds", "pytest_deploygate.gate",
         "pytest_deploygate.redaction", "pytest_deploygate.http", "pytest_deploygate.transport",
         "pytest_deploygate.aws", "pytest_deploygate.records", "pytest_deploygate.guard")

CONFTEST = '''
import sys


def pytest_unconfigure(config):
    with open("modules.txt", "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
'''


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                           *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_inactive_plugin_imports_nothing_heavy(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_plain.py").write_text("def test_ok():\n    pass\n")
    done = _pytest(tmp_path, "-q", "test_plain.py")
    assert done.returncode == 0, done.stdout + done.stderr
    modules = set((tmp_path / "modules.txt").read_text().split())
    assert "pytest_deploygate.plugin" in modules and "pytest_deploygate.fixtures" in modules
    assert sorted(m for m in HEAVY if m in modules) == []
    assert "pytest_deploygate.session" not in modules  # inactive: the gate session's module is not loaded


def test_fixtures_are_documented_without_env(tmp_path: Path) -> None:
    done = _pytest(tmp_path, "--fixtures", "-q")
    for name in ("deploy_env", "api", "frontend", "http_client", "aws", "aws_for", "records", "canary", "gate"):
        assert f"\n{name} " in done.stdout or f"\n{name} [" in done.stdout, name


#: what a gate's own start-up must not import before a check needs it (the HTTP and AWS clients)
CLIENTS = ("requests", "urllib3", "boto3", "botocore", "locust", "pytest_deploygate.http",
           "pytest_deploygate.transport", "pytest_deploygate.aws", "pytest_deploygate.records")


def test_active_start_up_imports_no_client(tmp_path: Path) -> None:
    """Active (--env, the built-in suites off), configuring, guarding and collecting import no HTTP or AWS
    client: the process-wide write guard builds its rule at the first write a check sends."""
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_plain.py").write_text("def test_ok():\n    pass\n")
    (tmp_path / "deploygate.toml").write_text((Path(__file__).resolve().parent.parent / "deploygate.toml").read_text())
    done = _pytest(tmp_path, "--co", "-q", "--env", "staging", "--no-builtin-suites", "test_plain.py")
    assert done.returncode == 0, done.stdout + done.stderr
    modules = set((tmp_path / "modules.txt").read_text().split())
    assert "pytest_deploygate.config" in modules and "pytest_deploygate.guard" in modules  # active, guarded
    assert sorted(m for m in CLIENTS if m in modules) == []
