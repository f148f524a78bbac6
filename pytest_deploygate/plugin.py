"""pytest hooks of the deployment gate: options, markers, configuration, the launched reference
deployment, metric collection across xdist workers, the verdict, the summary and the exit status."""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import types
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import __version__
from .failures import CheckFailure
from .run import (
    ARTIFACT_PROPERTY,
    FINDING_PROPERTY,
    METRICS_ATTR,
    METRICS_KEY,
    NOTE_PROPERTY,
    RUN_KEY,
    START_KEY,
    GateRun,
    RunStart,
    env_name_from,
    get_run,
    get_start,
)
from .target import demo_stages, launch_demo, preflight

if TYPE_CHECKING:  # pragma: no cover
    from .gate import Metric, MetricResult, Verdict

# Installed, the plugin loads in every pytest run of the environment: what judges and reports (config,
# gate, thresholds, redaction, requests) is imported inside the hooks, once --env is given.
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


def _writes_report(config: pytest.Config) -> bool:
    """Whether this process owns the report file: the controller of a run that runs checks."""
    opt = config.option
    return not (_is_worker(config) or _runs_no_tests(config) or getattr(opt, "help", False)
                or getattr(opt, "version", False) or getattr(opt, "markers", False))


@pytest.hookimpl(tryfirst=True)  # first, so that an interrupt in any other plugin's configure is this run's
def pytest_configure(config: pytest.Config) -> None:
    INTERRUPTED.clear()
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
    env_name, source = env_name_from(config.getoption("deploygate_env"), config.getini("deploygate_env"))
    if not env_name:
        return
    rootdir = Path(config.rootpath)
    report = _resolve(config, _path_option(config, "deploygate_report", "deploygate_report"),
                      rootdir / ".deploygate" / "report.json")
    markdown = config.getoption("deploygate_markdown")
    start = RunStart(env_name, report, _resolve(config, markdown, Path()) if markdown else None)
    if _is_worker(config):
        start.run_id = config.workerinput.get("deploygate_run_id", start.run_id)  # type: ignore[attr-defined]
    config.stash[START_KEY] = start
    _install_sigterm(config)
    if _writes_report(config):
        # From here on the report file speaks for this run: an earlier run's verdict is never left in place.
        from .report.json_report import RUNNING, write_status_report

        try:
            write_status_report(start, __version__, RUNNING)
        except OSError as exc:
            raise pytest.UsageError(f"deploygate: cannot write the gate report {report}: {exc}") from None
    from .config import ConfigError, load_gate, locate_files
    from .redaction import guard

    try:
        files = locate_files(rootdir, _explicit_path(config, "deploygate_config"),
                             _explicit_path(config, "deploygate_thresholds"))
        project, policies = load_gate(files, [env_name])  # exactly what `deploygate check-config` runs
        config_path, policy = files.config, policies[env_name]
    except ConfigError as exc:
        _could_not_run(config, start, str(exc))
        raise pytest.UsageError(f"deploygate: {exc}") from None

    run = GateRun(env_name=env_name, env_source=source, project=project, policy=policy,
                  config_path=config_path, report_path=report, markdown_path=start.markdown_path,
                  fail_on_warn=bool(config.getoption("deploygate_fail_on_warn")),
                  fail_on_inconclusive=bool(config.getoption("deploygate_fail_on_inconclusive")),
                  allow_writes=bool(config.getoption("deploygate_allow_writes")),
                  allow_load=bool(config.getoption("deploygate_allow_load")),
                  run_id=start.run_id, started_at=start.started_at)
    if _is_worker(config):
        addresses_file = config.workerinput.get("deploygate_addresses_file")  # type: ignore[attr-defined]
        run.addresses_file = Path(addresses_file) if addresses_file else None
    config.stash[RUN_KEY] = run
    guard(config, run)  # secrets never leave the run, whatever a test does
    from .guard import install_process_guard

    install_process_guard(config, run)  # no write reaches a protected environment, whatever client sends it
    if getattr(config.option, "dist", None) == "load":
        # load tests carry xdist_group("deploygate-load"): one worker runs them, one after another
        config.option.dist = "loadgroup"
    if not _is_worker(config):
        config.pluginmanager.register(Collector(run, start), "deploygate-collector")

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


def _could_not_run(config: pytest.Config, start: RunStart, error: str) -> None:
    """The report of a run stopped by a usage error (exit 4) before it judged anything."""
    if not _writes_report(config):
        return
    from .report.json_report import write_status_report

    try:
        write_status_report(start, __version__, "ERROR", int(pytest.ExitCode.USAGE_ERROR), error)
        start.final = True
    except OSError:
        pass  # the usage error itself is what the user needs to see


def _launch(config: pytest.Config, run: GateRun) -> None:
    """Bring the target up (the reference deployment, when launched) and check it answers: once, on the
    controller, and only once there is a check to run."""
    if run.launched:
        return
    run.launched = True
    stages = demo_stages(run)
    try:
        if stages:
            launch_demo(config, run, stages)
        else:
            run.resolve({})
    except pytest.UsageError as exc:
        run.error = str(exc).removeprefix("deploygate: ")
        raise
    if run.addresses_file is not None:
        _share_addresses(run)
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None and stages:
        for line in _target_lines(run):
            tr.write_line(line)
    if not config.getoption("deploygate_no_preflight"):
        preflight(config, run)


def _target_lines(run: GateRun) -> list[str]:
    env = run.environment
    lines = []
    if env.base_url:
        lines.append(f"deploygate target: api {env.base_url}"
                     + (f", frontend {env.frontend_url}" if env.frontend_url else ""))
    if run.demo_note:
        lines.append(f"deploygate: {run.demo_note}")
    return lines


def _share_addresses(run: GateRun) -> None:
    """xdist workers start before the launch: they read the addresses from a private file before their
    first test (it holds the launched deployment's token, so only this user may read it)."""
    assert run.addresses_file is not None
    addresses = run.demo.environments if run.demo is not None else {}
    tmp = run.addresses_file.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(json.dumps(addresses))
    tmp.replace(run.addresses_file)


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    run = get_run(config)
    if run is None or _is_worker(config) or _runs_no_tests(config) or not session.items:
        return
    _launch(config, run)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """xdist: the controller learns what its workers collected before it hands out any test."""
    run = get_run(node.config)
    if run is None or not ids or _runs_no_tests(node.config):
        return
    _launch(node.config, run)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """xdist worker: pick up the launched addresses before the first test's fixtures need them."""
    run = get_run(item.config)
    if run is None or run.launched or not _is_worker(item.config):
        return
    run.launched = True
    if run.addresses_file is not None and run.addresses_file.exists():
        run.resolve(json.loads(run.addresses_file.read_text()))


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
    """xdist: hand workers the run id, and where they will find the addresses of what the controller
    launches once they have collected."""
    run = get_run(node.config)
    if run is None:
        return
    node.workerinput["deploygate_run_id"] = run.run_id
    if run.addresses_file is None:
        private = Path(tempfile.mkdtemp(prefix="deploygate-run-"))
        node.config.add_cleanup(lambda: shutil.rmtree(private, ignore_errors=True))
        run.addresses_file = private / "addresses.json"
    node.workerinput["deploygate_addresses_file"] = str(run.addresses_file)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Built-in suites run cheapest first: smoke, crud, isolation, performance, security."""
    if get_run(config) is None:
        return
    from .gate import CATEGORIES, category_of

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
    if get_run(config) is not None:  # only a gate run installed it (and the guard module loads requests)
        from .guard import remove_process_guard

        remove_process_guard(config)
    _final_word(config)
    if SIGTERM_KEY in config.stash:
        signal.signal(signal.SIGTERM, config.stash[SIGTERM_KEY])


def _final_word(config: pytest.Config) -> None:
    """A run that ended before its verdict (interrupted while configuring, launching or collecting, or
    stopped by an error) still leaves a report that says so, under its own run id."""
    start = get_start(config)
    if start is None or start.final or not _writes_report(config):
        return
    from .report.json_report import write_status_report

    run = get_run(config)
    secrets = run.secrets if run is not None else frozenset()
    try:
        if INTERRUPTED:
            write_status_report(start, __version__, "INTERRUPTED", int(pytest.ExitCode.INTERRUPTED),
                                "interrupted before the gate could judge", secrets)
        else:
            code = pytest.ExitCode.INTERNAL_ERROR if start.internal_error else pytest.ExitCode.USAGE_ERROR
            error = (run.error if run is not None else None) or "the run stopped before the gate could judge"
            write_status_report(start, __version__, "ERROR", int(code), error, secrets)
        start.final = True
    except OSError:
        pass


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
    return lines + _target_lines(run)


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
        if run is not None:
            from .redaction import redact

            message = redact(message, run.secrets)
        report.longrepr = message
    return report


class Collector:
    """Controller-side sink: metrics and test outcomes from every report (local or from workers)."""

    def __init__(self, run: GateRun, start: RunStart) -> None:
        self.run = run
        self.start = start
        # findings already in run.findings, by content: a scan can report ~20k, and a list lookup per
        # finding made collecting them quadratic
        self._finding_keys: set[str] = set()

    def pytest_internalerror(self) -> None:
        self.start.internal_error = True

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """The report's exit status is the process's: if a plugin after the verdict changed it, say so."""
        run = self.run
        if run.report is not None and run.report.get("exit_status") != int(session.exitstatus):
            from .report.json_report import write_report

            run.report["exit_status"] = int(session.exitstatus)
            run.report["blocks_promotion"] = bool(run.report["blocks_promotion"] or session.exitstatus != 0)
            write_report(run.report, run.report_path, run.secrets, run.markdown_path)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from .gate import Metric, category_of
        from .redaction import redact

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
                    key = json.dumps(finding, sort_keys=True)
                    if key not in self._finding_keys:
                        self._finding_keys.add(key)
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
    from .report.json_report import build_report, write_error_report, write_report

    start = get_start(config)
    if INTERRUPTED and exitstatus != pytest.ExitCode.INTERRUPTED:
        exitstatus = session.exitstatus = pytest.ExitCode.INTERRUPTED  # pytest failed to report it
    if exitstatus == pytest.ExitCode.USAGE_ERROR:  # could not run (launch, pre-flight): nothing was judged
        run.error = run.error or "the gate could not run (see the error above)"
        try:
            write_error_report(run, __version__, int(pytest.ExitCode.USAGE_ERROR))
            if start is not None:
                start.final = True
        except OSError:
            pass
        return
    from .gate import judge, make_metric
    from .redaction import redact_value
    from .thresholds import unused_note

    try:
        env = run.environment

        def record(name: str, value: float, unit: str | None = None, **labels: object) -> Metric:
            metric = make_metric(name, value, unit, labels, nodeid="deploygate::hooks")
            run.metrics.append(metric)
            return metric

        config.hook.pytest_deploygate_metrics(config=config, environment=env, record=record)
        run.verdict = judge(env.name, run.metrics, run.policy, run.tallies(), run.fail_on_warn,
                            run.fail_on_inconclusive)
        unused = unused_note(run.policy, (m.name for m in run.metrics))
        if unused:
            run.notes.append(unused)
        # the exit status is settled before anything reports it: the report and the exit code agree
        exitstatus = session.exitstatus = final_status(int(exitstatus), run.verdict)
        _log_threshold_reports(config, run)
        _publish(run)
        run.report = redact_value(build_report(run, int(exitstatus), __version__), run.secrets)
        write_report(run.report, run.report_path, run.secrets, run.markdown_path)
        if start is not None:
            start.final = True
        config.hook.pytest_deploygate_verdict(config=config, verdict=run.verdict, report=run.report)
    except Exception as exc:  # never raise out of sessionfinish: say what broke, fail the gate
        run.error = f"{type(exc).__name__}: {exc}"
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        run.report = None
        try:
            write_error_report(run, __version__, int(pytest.ExitCode.INTERNAL_ERROR))
            if start is not None:
                start.final = True
        except Exception:
            pass  # the terminal summary still says the gate could not be judged
        return


def final_status(exitstatus: int, verdict: Verdict) -> int:
    """The process's exit code given pytest's and the verdict: a blocking verdict fails a run whose tests
    passed (1), and a run that checked nothing exits 5 whatever was skipped."""
    from .gate import NO_CHECKS

    if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        if verdict.verdict == NO_CHECKS:
            return int(pytest.ExitCode.NO_TESTS_COLLECTED)
        if verdict.failed:
            return int(pytest.ExitCode.TESTS_FAILED)
    return exitstatus


def _publish(run: GateRun) -> None:
    """CloudWatch metrics and the webhook; a publishing failure is reported, it does not change the verdict."""
    from .redaction import redact
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
        common: dict[str, Any] = {
            "nodeid": f"{THRESHOLD_PREFIX}{result.key}", "location": ("deploygate", None, f"gate::{result.key}"),
            "keywords": {"gate": 1, result.category: 1}, "duration": 0.0,
        }
        config.hook.pytest_runtest_logreport(report=TestReport(
            **common, outcome="failed" if failed else "passed", longrepr=result.breach if failed else None,
            when="call", sections=[]))
        # JUnit writes a case's properties (and system-out, with junit_logging) from its teardown report: a
        # WARN or INCONCLUSIVE case carries its verdict and figure, it does not look like a plain green case.
        config.hook.pytest_runtest_logreport(report=TestReport(
            **common, outcome="passed", longrepr=None, when="teardown",
            sections=[("Captured stdout teardown", result.judged + "\n")],
            user_properties=_threshold_properties(result)))


def _threshold_properties(result: MetricResult) -> list[tuple[str, object]]:
    props: list[tuple[str, object]] = [
        ("verdict", result.verdict), ("value", f"{result.value:g}"), ("unit", result.unit),
        ("threshold", result.threshold), ("limit", result.limit), ("judged", result.judged)]
    if result.samples is not None:
        props.append(("samples", result.samples))
    if result.interval is not None:
        props.append(("interval", f"{result.interval[0]:.2f} to {result.interval[1]:.2f} {result.unit}".strip()))
    if result.samples_needed is not None:
        props.append(("samples_needed", result.samples_needed))
    return props


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    run = get_run(config)
    if run is None or _is_worker(config):
        return
    from .report.terminal import write_summary

    write_summary(terminalreporter, run)
