"""pytest hooks of the deployment gate: options and markers. With ``--env`` (or ``DEPLOYGATE_ENV``), a
:class:`~pytest_deploygate.session.GateSession` is registered that owns the run: launch, collection of
metrics, the verdict and the reports.

PYTEST_DONT_REWRITE: pytest assertion-rewrites every module of an installed plugin's distribution that it
imports (``_mark_plugins_for_rewrite``): parsed, rewritten and compiled from source, never loaded from the
install's ``.pyc``, and without a bytecode cache (``PYTHONDONTWRITEBYTECODE``, a read-only site-packages) in every
run. This module and the package's ``__init__`` are loaded before any hook of the plugin runs; the first one,
:func:`pytest_addhooks`, narrows pytest's mark to the built-in suites (:mod:`~pytest_deploygate.pytest_compat`),
so the rest of the package imports normally. The word in the docstring of the modules loaded at start-up makes
pytest skip its pass over their asserts (internal invariants, not checks a user reads) wherever they are still
rewritten (an editable install, a module a user marks by name). See bench/README.md, startup.py."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

# Installed, the plugin loads in every pytest run of the environment: this module (the hooks) and the fixture
# definitions, nothing else of the plugin. What configures, judges and reports (the run state, config, gate,
# thresholds, redaction) is imported by the session, once --env is given. The fixture definitions are registered
# by pytest_addhooks, not named in ``pytest_plugins`` (pytest would mark that module for assertion rewriting by
# its own name: compiled from source in every run without a bytecode cache).
FIXTURES = "pytest_deploygate.fixtures"

MARKERS = {
    "gate": "a deployment gate check (select with -m gate)",
    "smoke": "smoke check: the deployment is up and wired to the right environment",
    "crud": "CRUD check: collections can be created, read, updated and deleted",
    "isolation": "isolation check: no data or configuration crosses environments",
    "performance": "performance check: load and latency against thresholds",
    "security": "security check: code scan, dependency audit, HTTP posture",
    "destructive": "writes to the environment: skipped on protected environments unless --allow-writes",
}


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    # the first hook pytest calls here, before this plugin imports anything more: from now on the package's
    # modules load from their .pyc, not through pytest's assertion rewriting (see pytest_compat)
    from .pytest_compat import stop_rewriting_plugin

    stop_rewriting_plugin(pluginmanager)
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)
    # what pytest_plugins = [FIXTURES] would do (pytest's import_plugin), but without marking it for rewriting
    if not pluginmanager.is_blocked(FIXTURES) and pluginmanager.get_plugin(FIXTURES) is None:
        from . import fixtures

        pluginmanager.register(fixtures, FIXTURES)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("deploygate", "deployment gate (pytest-deploygate)")
    group.addoption("--env", dest="deploygate_env", metavar="NAME",
                    help="environment to gate (default: $DEPLOYGATE_ENV, then ini deploygate_env)")
    group.addoption("--gate-report", dest="deploygate_report", metavar="PATH",
                    help="where to write the JSON gate report (default: .deploygate/report.json)")
    group.addoption("--gate-markdown", dest="deploygate_markdown", metavar="PATH",
                    help="also write the verdict as Markdown to PATH (e.g. \"$GITHUB_STEP_SUMMARY\")")
    group.addoption("--fail-on-warn", action="store_true", dest="deploygate_fail_on_warn",
                    help="a WARN verdict fails the gate too")
    group.addoption("--fail-on-inconclusive", action="store_true", dest="deploygate_fail_on_inconclusive",
                    help="an INCONCLUSIVE verdict (a rate measured on too few requests to tell) fails the gate too")
    group.addoption("--allow-writes", action="store_true", dest="deploygate_allow_writes",
                    help="allow destructive checks on a protected environment")
    group.addoption("--allow-load", action="store_true", dest="deploygate_allow_load",
                    help="allow load tests on a protected environment")
    group.addoption("--deploygate-config", dest="deploygate_config", metavar="PATH",
                    help="environment definitions (default: deploygate.toml, or [tool.deploygate] "
                         "in pyproject.toml, at the rootdir)")
    group.addoption("--thresholds", dest="deploygate_thresholds", metavar="PATH",
                    help="gate policy (default: thresholds.toml at the rootdir, else the built-in one)")
    group.addoption("--no-builtin-suites", action="store_true", dest="deploygate_no_suites",
                    help="do not collect the built-in gate suites (fixtures only)")
    group.addoption("--skip-absent", action="store_true", dest="deploygate_skip_absent",
                    help="first deploys: a declared AWS resource that does not exist yet is SKIPPED with the "
                         "reason (as if it were optional = true); one that exists but is broken still FAILS")
    group.addoption("--no-preflight", action="store_true", dest="deploygate_no_preflight",
                    help="skip the reachability check of the environment before the checks")
    parser.addini("deploygate_env", "default environment for the gate")
    parser.addini("deploygate_config", "path of the environment definitions file")
    parser.addini("deploygate_thresholds", "path of the gate policy file")
    parser.addini("deploygate_report", "path of the JSON gate report")
    parser.addini("deploygate_builtin_suites", "collect the built-in gate suites when --env is given",
                  type="bool", default=True)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """``--gate-report /path/report.json`` (space form, file already there) must not move the rootdir."""
    from .invocation import correct_rootdir

    correct_rootdir(early_config, parser, args)


def env_name_from(option: str | None, ini: str | None) -> tuple[str | None, str]:
    """The selected environment and where it was named: ``--env``, then ``DEPLOYGATE_ENV``, then the
    ``deploygate_env`` ini value; (None, "") when none is: the plugin is then installed but inactive."""
    if option:
        return option, "--env"
    if os.environ.get("DEPLOYGATE_ENV"):
        return os.environ["DEPLOYGATE_ENV"], "DEPLOYGATE_ENV"
    if ini:
        return ini, "ini deploygate_env"
    return None, ""


@pytest.hookimpl(tryfirst=True)  # first, so that an interrupt in any other plugin's configure is this run's
def pytest_configure(config: pytest.Config) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
    if not env_name_from(config.getoption("deploygate_env"), config.getini("deploygate_env"))[0]:
        return  # installed but inactive: the session module is not even loaded
    from .session import ExitStatusWatch, is_worker, start_session

    session = start_session(config)
    if session is not None and not is_worker(config):
        config.pluginmanager.register(ExitStatusWatch(session), "deploygate-exit-status")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> Generator[None, None, None]:
    """Let pytest report an interruption whatever instruction the signal landed on (see
    :mod:`pytest_deploygate.pytest_compat`)."""
    from .pytest_compat import fix_interrupt_traceback

    fix_interrupt_traceback(excinfo)
    return (yield)
