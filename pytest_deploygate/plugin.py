"""pytest hooks of the deployment gate: options, markers, configuration, the launched reference
deployment, metric collection across xdist workers, the verdict, the summary and the exit status."""

from __future__ import annotations

import json
import signal
import types
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from . import __version__
from .config import ConfigError, load_gate, locate_files
from .failures import CheckFailure
from .gate import CATEGORIES, Metric, category_of, judge, make_metric
from .redaction import guard, redact, redact_value
from .run import (
    ARTIFACT_PROPERTY,
    FINDING_PROPERTY,
    METRICS_ATTR,
    METRICS_KEY,
    NOTE_PROPERTY,
    RUN_KEY,
    GateRun,
    env_name_from,
    get_run,
)
from .target import demo_stages, launch_demo, preflight
from .thresholds import unused_note

pytest_plugins = ["pytest_deploygate.fixtures"]

MARKERS = {
    "gate": "a deployment gate check (select with -m gate)",
    "smoke": "smoke check: the deployment is up and wired to the right environment",
    "crud": "CRUD check: collections can be created, read, updated and deleted",
    "isolation": "isolation check: no data or configuration crosses environments",
    "performance": "performance check: load and latency against thresholds",
    "security": "security check: code scan, dependency audit, HTTP posture",
    "destructive": "writes to the environment: skipped on protected environments unless --allow-writes",
}
THRESHOLD_PREFIX = "deploygate::gate::"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


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
    group.addoption("--no-preflight", action="store_true", dest="deploygate_no_preflight",
                    help="skip the reachability check of the environment before the checks")
    parser.addini("deploygate_env", "default environment for the gate")
    parser.addini("deploygate_config", "path of the environment definitions file")
    parser.addini("deploygate_thresholds", "path of the gate policy file")
    parser.addini("deploygate_report", "path of the JSON gate report")
    parser.addini("deploygate_builtin_suites", "collect the built-in gate suites when --env is given",
                  type="bool", default=True)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _path_option(config: pytest.Config, option: str, ini: str) -> str | None:
    value = config.getoption(option)
    if value:
        return str(value)
    ini_value = config.getini(ini)
    return str(ini_value) if ini_value else None


def _explicit_path(config: pytest.Config, name: str) -> Path | None:
    """A file named by ``--<name>`` (relative to where pytest was invoked) or by the ini option (relative
    to the rootdir), or None for the default lookup."""
    value = config.getoption(name)
    base = Path(config.invocation_params.dir)
    if not value:
        value, base = config.getini(name), Path(config.rootpath)
    if not value:
        return None
    path = Path(str(value))
    return path if path.is_absolute() else base / path


def _resolve(config: pytest.Config, value: str | None, default: Path) -> Path:
    if not value:
        return default
    path = Path(value)
    return path if path.is_absolute() else Path(config.invocation_params.dir) / path


def suites_dir() -> Path:
    """The built-in suites: ``suites/`` in the source tree, ``pytest_deploygate/suites`` when installed."""
    import importlib.util

    spec = importlib.util.find_spec("pytest_deploygate.suites")
    if spec is None or spec.origin is None:
        raise pytest.UsageError("deploygate: the built-in suites are not installed (pytest_deploygate.suites)")
    return Path(spec.origin).parent


def pytest_configure(config: pytest.Config) -> None:
    INTERRUPTED.clear()
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
    env_name, source = env_name_from(config.getoption("deploygate_env"), config.getini("deploygate_env"))
    if not env_name:
        return
    rootdir = Path(config.rootpath)
    try:
        files = locate_files(rootdir, _explicit_path(config, "deploygate_config"),
                             _explicit_path(config, "deploygate_thresholds"))
        project, policies = load_gate(files, [env_name])  # exactly what `deploygate check-config` runs
        config_path, policy = files.config, policies[env_name]
    except ConfigError as exc:
        raise pytest.UsageError(f"deploygate: {exc}") from None

    report = _resolve(config, _path_option(config, "deploygate_report", "deploygate_report"),
                      rootdir / ".deploygate" / "report.json")
    markdown = config.getoption("deploygate_markdown")
    run = GateRun(env_name=env_name, env_source=source, project=project, policy=policy,
                  config_path=config_path, report_path=report,
                  markdown_path=_resolve(config, markdown, Path()) if markdown else None,
                  fail_on_warn=bool(config.getoption("deploygate_fail_on_warn")),
                  allow_writes=bool(config.getoption("deploygate_allow_writes")),
                  allow_load=bool(config.getoption("deploygate_allow_load")))
    if _is_worker(config):
        run.run_id = config.workerinput.get("deploygate_run_id", run.run_id)  # type: ignore[attr-defined]
        addresses = config.workerinput.get("deploygate_addresses")  # type: ignore[attr-defined]
        if addresses:
            run.resolve(addresses)
    config.stash[RUN_KEY] = run
    _install_sigterm(config)
    guard(config, run)  # secrets never leave the run, whatever a test does
    from .guard import install_process_guard

    install_process_guard(config, run)  # no write reaches a protected environment, whatever client sends it
    if getattr(config.option, "dist", None) == "load":
        # load tests carry xdist_group("deploygate-load"): one worker runs them, one after another
        config.option.dist = "loadgroup"
    if not _is_worker(config):
        config.pluginmanager.register(Collector(run), "deploygate-collector")

    builtin = config.getini("deploygate_builtin_suites") and not config.getoption("deploygate_no_suites")
    explicit_paths = config.args_source == pytest.Config.ArgsSource.ARGS
    if builtin and not explicit_paths:
        config.args.append(str(suites_dir()))


# --------------------------------------------------------------------------------------------------
# the launched reference deployment


def _runs_no_tests(config: pytest.Config) -> bool:
    opt = config.option
    return bool(opt.collectonly or getattr(opt, "showfixtures", False)
                or getattr(opt, "show_fixtures_per_test", False))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    run = get_run(config)
    if run is None or _is_worker(config) or _runs_no_tests(config):
        return
    stages = demo_stages(run)
    if stages:
        launch_demo(config, run, stages)
    else:
        run.resolve({})
    if not config.getoption("deploygate_no_preflight"):
        preflight(config, run)


SIGTERM_KEY = pytest.StashKey[Any]()
INTERRUPTED: set[bool] = set()  # non-empty once this process saw the session interrupted


def _install_sigterm(config: pytest.Config) -> None:
    """Turn SIGTERM into KeyboardInterrupt so a killed run still tears down what it started (restored
    at unconfigure: pytest may run in a process that outlives the session)."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt("SIGTERM")

        signal.signal(signal.SIGTERM, interrupt)
        config.stash[SIGTERM_KEY] = signal.SIG_DFL


def _numbered(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The same traceback with a line number on every entry. On CPython 3.11+ a signal that lands on an
    instruction without a source line leaves ``tb_lineno`` None, and pytest's own report of the
    KeyboardInterrupt then crashes (``None - 1``): the run would end in a traceback, exit 1, without its
    "interrupted" status. The entry gets the frame's first line instead."""
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    if all(e.tb_lineno is not None for e in entries):
        return entries[0] if entries else None
    rebuilt: types.TracebackType | None = None
    for e in reversed(entries):
        if e.tb_lineno is None:  # no instruction offset (-1): formatters then use the line number given
            rebuilt = types.TracebackType(rebuilt, e.tb_frame, -1, e.tb_frame.f_code.co_firstlineno)
        else:
            rebuilt = types.TracebackType(rebuilt, e.tb_frame, e.tb_lasti, e.tb_lineno)
    return rebuilt


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> Generator[None, None, None]:
    """Let pytest report an interruption whatever instruction the signal landed on (see ``_numbered``).
    The run counts as interrupted even if reporting it fails further in."""
    INTERRUPTED.add(True)
    raw = getattr(excinfo, "_excinfo", None)
    if raw is not None and raw[2] is not None:
        tb = _numbered(raw[2])
        if tb is not raw[2]:
            excinfo._excinfo = (raw[0], raw[1].with_traceback(tb), tb)  # type: ignore[assignment]
            excinfo._traceback = None
    return (yield)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: hand workers the addresses of the deployment the controller launched."""
    run = get_run(node.config)
    if run is None:
        return
    node.workerinput["deploygate_run_id"] = run.run_id
    if run.demo is not None:
        node.workerinput["deploygate_addresses"] = run.demo.environments


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Built-in suites run cheapest first: smoke, crud, isolation, performance, security."""
    if get_run(config) is None:
        return
    root = suites_dir()
    order = {name: i for i, name in enumerate(CATEGORIES)}

    def key(item: pytest.Item) -> int:
        if root not in Path(item.path).parents:
            return len(order)
        return order.get(category_of(item.keywords), len(order))

    items.sort(key=key)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Protected environments are read-only: destructive checks need an explicit --allow-writes."""
    run = get_run(item.config)
    if run is None:
        return
    env = run.environment
    if env.protected and not run.allow_writes and item.get_closest_marker("destructive"):
        pytest.skip(f"environment {env.name} is protected: destructive check skipped "
                    "(pass --allow-writes to run it)")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Safety net for an interrupted run: delete records whose test never reached its teardown."""
    from .fixtures import LEDGERS

    for ledger in list(LEDGERS):
        ledger.purge()
    from .guard import remove_process_guard

    remove_process_guard(config)
    run = get_run(config)
    if run is None:
        return
    if SIGTERM_KEY in config.stash:
        signal.signal(signal.SIGTERM, config.stash[SIGTERM_KEY])


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    run = get_run(config)
    if run is None:
        return None
    env = run.environment
    lines = [
        f"deploygate {__version__}: environment {env.name} (from {run.env_source}; stage {env.stage}"
        f"{', protected' if env.protected else ''}) run {run.run_id}",
        f"deploygate config: {run.config_path}; thresholds: {run.policy.path}",
    ]
    if env.base_url:
        lines.append(f"deploygate target: api {env.base_url}"
                     + (f", frontend {env.frontend_url}" if env.frontend_url else ""))
    if run.demo_note:
        lines.append(f"deploygate: {run.demo_note}")
    return lines


# --------------------------------------------------------------------------------------------------
# metrics out of tests (on workers too) and into the controller


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    pending = item.stash.get(METRICS_KEY, [])
    if pending:
        setattr(report, METRICS_ATTR, list(pending))
        pending.clear()
    run = get_run(item.config)
    if call.excinfo is not None and call.excinfo.errisinstance(CheckFailure):
        message = str(call.excinfo.value)
        report.longrepr = redact(message, run.secrets) if run else message
    return report


class Collector:
    """Controller-side sink: metrics and test outcomes from every report (local or from workers)."""

    def __init__(self, run: GateRun) -> None:
        self.run = run

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        run = self.run
        for raw in getattr(report, METRICS_ATTR, None) or ():
            run.metrics.append(Metric.from_dict(raw))
        if report.nodeid.startswith(THRESHOLD_PREFIX):
            return
        if report.when == "teardown":
            for key, value in report.user_properties:
                if key == ARTIFACT_PROPERTY and "=" in str(value):
                    name, _, path = str(value).partition("=")
                    run.artifacts[name] = path
                elif key == NOTE_PROPERTY and str(value) not in run.notes:
                    run.notes.append(redact(str(value), run.secrets))
                elif key == FINDING_PROPERTY:
                    try:
                        finding = json.loads(str(value))
                    except ValueError:
                        continue
                    if finding not in run.findings:
                        run.findings.append(finding)
        if report.failed:
            outcome = "failed"
        elif report.skipped:
            outcome = "skipped"
        elif report.when == "call":
            outcome = "passed"
        else:
            return
        previous = run.outcomes.get(report.nodeid)
        if previous and previous[1] == "failed":
            return
        reason = redact(_one_line(report), run.secrets) if report.failed else ""
        run.outcomes[report.nodeid] = (category_of(report.keywords), outcome, reason)

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        # Threshold test cases exist for JUnit & co.; in the terminal the verdict table shows them,
        # so they add no progress dots and only a breach is counted (as failed).
        if report.nodeid.startswith(THRESHOLD_PREFIX):
            return ("failed" if report.failed else "", "", "")
        return None


def _one_line(report: pytest.TestReport) -> str:
    text = report.longreprtext.strip()
    if not text:
        return report.when or "failed"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("E ")]
    line = errors[0][2:].strip() if errors else lines[-1]
    return (f"{report.when}: " if report.when != "call" else "") + line[:1000]


# --------------------------------------------------------------------------------------------------
# the verdict


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    run = get_run(config)
    if run is None or _is_worker(config) or _runs_no_tests(config):
        return
    from .report.json_report import build_report, write_report

    if INTERRUPTED and exitstatus != pytest.ExitCode.INTERRUPTED:
        exitstatus = session.exitstatus = pytest.ExitCode.INTERRUPTED  # pytest failed to report it
    try:
        env = run.environment

        def record(name: str, value: float, unit: str | None = None, **labels: object) -> Metric:
            metric = make_metric(name, value, unit, labels, nodeid="deploygate::hooks")
            run.metrics.append(metric)
            return metric

        config.hook.pytest_deploygate_metrics(config=config, environment=env, record=record)
        run.verdict = judge(env.name, run.metrics, run.policy, run.tallies(), run.fail_on_warn)
        unused = unused_note(run.policy, (m.name for m in run.metrics))
        if unused:
            run.notes.append(unused)
        _log_threshold_reports(config, run)
        _publish(run)
        run.report = redact_value(build_report(run, int(exitstatus), __version__), run.secrets)
        write_report(run.report, run.report_path, run.secrets, run.markdown_path)
        config.hook.pytest_deploygate_verdict(config=config, verdict=run.verdict, report=run.report)
    except Exception as exc:  # never raise out of sessionfinish: say what broke, fail the gate
        run.error = f"{type(exc).__name__}: {exc}"
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        return
    if run.verdict.failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _publish(run: GateRun) -> None:
    """CloudWatch metrics and the webhook; a publishing failure is reported, it does not change the verdict."""
    from .report.publish import post_webhook, publish_cloudwatch

    assert run.verdict is not None
    project = run.project
    if project.cloudwatch is not None:
        try:
            sent = publish_cloudwatch(run, run.verdict, project.cloudwatch)
            run.notes.append(f"published {sent} metrics to CloudWatch namespace {project.cloudwatch.namespace}")
        except Exception as exc:
            run.notes.append(redact(f"publishing to CloudWatch failed: {type(exc).__name__}: {exc}", run.secrets))
    if project.webhook is not None:
        try:
            if post_webhook(run, run.verdict, project.webhook):
                run.notes.append("webhook notified")
        except Exception as exc:
            run.notes.append(redact(f"webhook failed: {type(exc).__name__}: {exc}", run.secrets))


def _log_threshold_reports(config: pytest.Config, run: GateRun) -> None:
    """Every judged threshold becomes its own test case named after the metric: through
    ``pytest_runtest_logreport`` for JUnit, xdist and the terminal; through Allure's reporter for Allure."""
    from _pytest.reports import TestReport

    from .report.allure import report_thresholds

    assert run.verdict is not None
    if getattr(config.option, "allure_report_dir", None):
        report_thresholds(run.verdict)
    for result, failed in run.verdict.thresholds():
        report = TestReport(
            nodeid=f"{THRESHOLD_PREFIX}{result.key}",
            location=("deploygate", None, f"gate::{result.key}"),
            keywords={"gate": 1, result.category: 1},
            outcome="failed" if failed else "passed",
            longrepr=result.breach if failed else None,
            when="call",
            sections=[("deploygate", result.judged)],
            duration=0.0,
            user_properties=[("verdict", result.verdict), ("value", result.value),
                             ("threshold", result.threshold)],
        )
        config.hook.pytest_runtest_logreport(report=report)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    run = get_run(config)
    if run is None or _is_worker(config):
        return
    from .report.terminal import write_summary

    write_summary(terminalreporter, run)
