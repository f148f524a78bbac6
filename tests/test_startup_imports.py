"""Installed but inactive (no --env), the plugin costs pytest next to nothing: a whole pytest run imports its
hooks and fixture definitions and none of the gate's parts (requests, boto3, config, gate, redaction, the run
state); `pytest --fixtures` still documents every fixture, and a test asking for one without --env is told why.
Speed figures themselves are in bench/ (startup.py), not here."""

from __future__ import annotations

import os
import shutil
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
    # inactive: only the hooks (plugin, hookspecs, invocation, pytest_compat: the rewrite mark) and the fixture
    # definitions; not the gate session, the run state, nor what the fixtures hand to a test
    loaded = sorted(m for m in modules if m.startswith("pytest_deploygate"))
    assert loaded == ["pytest_deploygate", "pytest_deploygate.fixtures", "pytest_deploygate.hookspecs",
                      "pytest_deploygate.invocation", "pytest_deploygate.plugin",
                      "pytest_deploygate.pytest_compat"], loaded


def test_fixtures_are_documented_without_env(tmp_path: Path) -> None:
    done = _pytest(tmp_path, "--fixtures", "-q")
    for name in ("deploy_env", "api", "frontend", "http_client", "aws", "aws_for", "records", "canary", "gate"):
        assert f"\n{name} " in done.stdout or f"\n{name} [" in done.stdout, name


#: what a gate's own start-up must not import before a check needs it (the HTTP and AWS clients)
CLIENTS = ("requests", "urllib3", "http.client", "ssl", "boto3", "botocore", "locust", "pytest_deploygate.http",
           "pytest_deploygate.transport", "pytest_deploygate.aws", "pytest_deploygate.records")
#: what a run that judges nothing (``--co``) never needs: the verdict, the report model and its renderers, the load
JUDGING = ("pytest_deploygate.gate", "pytest_deploygate.report.model", "pytest_deploygate.report.terminal",
           "pytest_deploygate.report.json_report", "pytest_deploygate.testkit", "pytest_deploygate.load")


def test_active_start_up_imports_no_client(tmp_path: Path) -> None:
    """Active (--env, the built-in suites off), configuring, guarding and collecting import no HTTP or AWS
    client, nor http.client and ssl: the process-wide write guard patches http.client when it is imported and
    builds its rule at the first write a check sends. Collecting only, it
    imports nothing that judges or reports either."""
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_plain.py").write_text("def test_ok():\n    pass\n")
    (tmp_path / "deploygate.toml").write_text((Path(__file__).resolve().parent.parent / "deploygate.toml").read_text())
    done = _pytest(tmp_path, "--co", "-q", "--env", "staging", "--no-builtin-suites", "test_plain.py")
    assert done.returncode == 0, done.stdout + done.stderr
    modules = set((tmp_path / "modules.txt").read_text().split())
    assert "pytest_deploygate.config" in modules and "pytest_deploygate.guard" in modules  # active, guarded
    assert sorted(m for m in CLIENTS if m in modules) == []
    assert sorted(m for m in JUDGING if m in modules) == []


def test_a_fixture_without_env_says_why(tmp_path: Path) -> None:
    """Inactive, the fixtures are still there: a test that asks for one fails with the reason, not with
    "fixture not found"."""
    (tmp_path / "test_env.py").write_text("def test_env(deploy_env):\n    pass\n")
    done = _pytest(tmp_path, "-q", "test_env.py")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "deploygate: no environment selected: run pytest with --env NAME" in done.stdout
    assert "fixture 'deploy_env' not found" not in done.stdout


def test_a_collect_only_gate_run_still_checks_its_configuration(tmp_path: Path) -> None:
    """What the active start-up leaves out is only what judges and reports: the configuration is still read
    and checked in full (a bad key is an error naming file, line and key)."""
    text = (Path(__file__).resolve().parent.parent / "deploygate.toml").read_text()
    (tmp_path / "deploygate.toml").write_text(text.replace('[environments.staging]\nstage = "staging"',
                                                           '[environments.staging]\nstage = "staging"\nstagee = 1'))
    (tmp_path / "test_plain.py").write_text("def test_ok():\n    pass\n")
    done = _pytest(tmp_path, "--co", "-q", "--env", "staging", "--no-builtin-suites", "test_plain.py")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "deploygate.toml:" in done.stderr + done.stdout and "stagee" in done.stderr + done.stdout


REWRITE_CONFTEST = '''
import sys

import pytest

pytest.register_assert_rewrite("userlib")


def pytest_unconfigure(config):
    with open("loaders.txt", "w") as out:
        for name in sorted(sys.modules):
            if name.startswith(("pytest_deploygate", "userlib", "test_user")):
                out.write(f"{name} {type(sys.modules[name].__loader__).__name__}\\n")
'''
HELPER = "def same(a, b):\n    assert a == b\n"


def test_installed_the_product_modules_are_not_rewritten_the_suites_and_user_tests_are(tmp_path: Path) -> None:
    """Laid out as a wheel installs it (the suites inside the package) and found on ``sys.path``, pytest marks
    the whole package for assertion rewriting; the plugin narrows that to the built-in suites once its hooks
    are loaded (pytest_compat.stop_rewriting_plugin), so the product modules load normally (from a wheel's .pyc).
    A built-in suite's failing assert (and a helper of the suites') still shows pytest's introspection, and a
    user's tests, conftest and ``pytest.register_assert_rewrite`` module are rewritten as before."""
    repo = Path(__file__).resolve().parent.parent
    site = tmp_path / "site"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(repo / "pytest_deploygate", site / "pytest_deploygate", ignore=ignore)
    suites = site / "pytest_deploygate" / "suites"
    shutil.copytree(repo / "suites", suites, ignore=ignore)
    (suites / "probe_helper.py").write_text(HELPER)
    (suites / "test_probe.py").write_text(
        "from pytest_deploygate.suites.probe_helper import same\n\n\n"
        "def test_suite_assert():\n    assert [1, 2] == [1, 3]\n\n\n"
        "def test_suite_helper():\n    same(2, 3)\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "conftest.py").write_text(REWRITE_CONFTEST)
    (work / "userlib.py").write_text(HELPER)
    (work / "test_user.py").write_text(
        "from userlib import same\n\n\n"
        "def test_user_assert():\n    assert {'a': 1} == {'a': 2}\n\n\n"
        "def test_user_helper():\n    same(4, 5)\n")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{work}", "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                           "-q", "--rootdir", str(work), str(suites / "test_probe.py"), "test_user.py"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 1 and "4 failed" in out, out
    loaders = dict(line.split() for line in (work / "loaders.txt").read_text().splitlines())
    assert loaders["pytest_deploygate"] == "AssertionRewritingHook", loaders  # pytest marked the package
    for product in ("pytest_deploygate.hookspecs", "pytest_deploygate.invocation", "pytest_deploygate.fixtures"):
        assert loaders[product] == "SourceFileLoader", loaders  # loaded after the plugin narrowed the mark
    for rewritten in ("pytest_deploygate.suites.test_probe", "pytest_deploygate.suites.probe_helper", "test_user",
                      "userlib"):
        assert loaders[rewritten] == "AssertionRewritingHook", loaders
    assert "At index 1 diff: 2 != 3" in out, out  # the suite's own assert
    assert "E       assert 2 == 3" in out, out  # a helper module of the suites
    assert "Differing items" in out and "E       assert 4 == 5" in out, out  # the user's test, register_assert_rewrite
    assert "site/pytest_deploygate/suites/test_probe.py" in out, out  # the wheel-like layout, not the checkout


GUARD_SCRIPT = '''
import sys
from types import SimpleNamespace

import pytest

from pytest_deploygate.failures import WriteRefused
from pytest_deploygate.guard import install_process_guard, remove_process_guard

assert "http.client" not in sys.modules, "imported before the guard: this script checks nothing"
prod = SimpleNamespace(name="prod", base_url="http://127.0.0.1:9/v1", protected=True, frontend_url=None,
                       aws=SimpleNamespace(endpoint_url=None))
project = SimpleNamespace(environments={"prod": prod})
run = SimpleNamespace(project=project, allow_writes=False, environments={}, secrets=frozenset())
config = SimpleNamespace(stash=pytest.Stash())
install_process_guard(config, run)
assert "http.client" not in sys.modules  # installed without importing http.client
import http.client

original = http.client.HTTPConnection.putrequest
try:
    http.client.HTTPConnection("127.0.0.1", 9, timeout=5).request("POST", "/v1/items", body=b"{}")
except WriteRefused as exc:
    print("refused:", exc)
remove_process_guard(config)
assert getattr(original, "deploygate_guard", False) and http.client.HTTPConnection.putrequest is not original
assert http.client.__loader__.__class__.__name__ == "SourceFileLoader", http.client.__loader__
print("removed")
'''


def test_the_write_guard_installed_before_http_client_is_imported_guards_it_on_import(tmp_path: Path) -> None:
    """The process-wide write guard does not import http.client (and ssl) at start-up: when a guarded run
    starts before anything imported it, http.client is guarded the moment it is imported (a write to the
    protected environment is refused before it is sent), and left as it was when the run ends."""
    script = tmp_path / "guard_on_import.py"
    script.write_text(GUARD_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "refused: " in done.stdout and "http://127.0.0.1:9/v1/items" in done.stdout, done.stdout
    assert "removed" in done.stdout
