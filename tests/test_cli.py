"""What the command line tells a user: ``deploygate check-config`` (errors with their location) and what
``pytest --help``, ``--fixtures`` and ``--markers`` document of the plugin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gatehelpers import REPO, Gate

pytestmark = pytest.mark.e2e  # every test here runs the deploygate command or pytest as a subprocess


def test_check_config_reports_errors_with_location(tmp_path: Path) -> None:
    deploygate = str(Path(sys.executable).with_name("deploygate"))
    ok = subprocess.run([deploygate, "check-config"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "deploygate.toml: ok (dev, staging, prod)" in ok.stdout
    (tmp_path / "deploygate.toml").write_text('[environments.dev]\nbase_url = "http://x"\nprotected = "no"\n')
    bad = subprocess.run([deploygate, "check-config"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert bad.returncode == 4
    assert "deploygate.toml:3: environments.dev.protected: expected a boolean, got 'no'" in bad.stderr


def test_help_and_fixtures_document_the_plugin(gate_project: Gate) -> None:
    res = gate_project.pytester.runpytest_subprocess("--help")
    out = res.stdout.str()
    for option in ("--env=NAME", "--gate-report=PATH", "--fail-on-warn", "--allow-writes", "--allow-load",
                   "--no-builtin-suites", "deploygate_env"):
        assert option in out, option
    res = gate_project.pytester.runpytest_subprocess("--fixtures", "--env", "staging", "--co")
    out = res.stdout.str()
    for fixture in ("deploy_env [session scope]", "api --", "frontend --", "aws [session scope]",
                    "peers [session scope]", "gate --", "http_client --"):
        assert fixture in out, fixture
    res = gate_project.pytester.runpytest_subprocess("--markers")
    for marker in ("@pytest.mark.gate", "@pytest.mark.smoke", "@pytest.mark.crud", "@pytest.mark.isolation",
                   "@pytest.mark.performance", "@pytest.mark.security", "@pytest.mark.destructive"):
        assert marker in res.stdout.str(), marker
