"""The gate session: one plugin object per gate run (``--env`` given) that owns its flow.

configure (settings from the configuration and the command line) → launch the target once there is a
check to run → collect metrics, outcomes, notes and findings from every test report (xdist workers
too) → judge them against the policy → build one report model → hand it to each renderer.

Modelled on pytest-xdist's ``DSession`` and pytest's ``LogXML``: ``plugin.py`` registers options and
creates this object; the object keeps all the run's state (no module-level mutable state).

PYTEST_DONT_REWRITE (loaded at pytest's start: see plugin.py)."""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .failures import CheckFailure
from .plugin import env_name_from
from .run import (
    METRICS_ATTR,
    METRICS_KEY,
    THRESHOLD_PREFIX,
    VERDICT_NODEID,
    GateRun,
    RunSettings,
    RunStart,
    Target,
)

if TYPE_CHECKING:  # pragma: no cover
    from .gate import Metric, Verdict
    from .records import Ledger
    from .report.model import GateReport

SESSION_KEY = pytest.StashKey["GateSession"]()


def _version() -> str:
    """The plugin's version, read from the installed metadata when a report or the header first needs it."""
    from . import __version__

    return __version__


def get_session(config: pytest.Config) -> GateSession | None:
    return config.stash.get(SESSION_KEY, None)


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def runs_no_tests(config: pytest.Config) -> bool:
    """``--collect-only``, ``--fixtures``, ``--fixtures-per-test``: nothing is checked, nothing is judged."""
    opt = config.option
    return bool(opt.collectonly or getattr(opt, "showfixtures", False)
                or getattr(opt, "show_fixtures_per_test", False))


def writes_report(config: pytest.Config) -> bool:
    """Whether this process owns the report file: the controller of a run that runs checks."""
    opt = config.option
    return not (is_worker(config) or runs_no_tests(config) or getattr(opt, "help", False)
                or getattr(opt, "version", False) or getattr(opt, "markers", False))


def _resolve(config: pytest.Config, value: str | None, default: Path) -> Path:
    """A path from the command line: relative to where pytest was invoked."""
    if not value:
        return default
    path = Path(value)
    return path if path.is_absolute() else Path(config.invocation_params.dir) / path


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


def suites_dir() -> Path:
    """The built-in suites: ``suites/`` in the source tree, ``pytest_deploygate/suites`` when installed."""
    import importlib.util

    spec = importlib.util.find_spec("pytest_deploygate.suites")
    if spec is None or spec.origin is None:
        raise pytest.UsageError("deploygate: the built-in suites are not installed (pytest_deploygate.suites)")
    return Path(spec.origin).parent


def start_session(config: pytest.Config) -> GateSession | None:
    """Create and register the session of a gate run (None when no environment is selected)."""
    env_name, source = env_name_from(config.getoption("deploygate_env"), config.getini("deploygate_env"))
    if not env_name:
        return None
    session = GateSession(config, env_name, source)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "deploygate-session")
    session.configure()
    return session


class GateSession:
    """The state and the hooks of one gate run, in this process (the controller, or an xdist worker)."""

    def __init__(self, config: pytest.Config, env_name: str, env_source: str) -> None:
        self.config = config
        self.env_source = env_source
        self.worker = is_worker(config)
        report = _resolve(config, _path_option(config, "deploygate_report", "deploygate_report"),
                          Path(config.rootpath) / ".deploygate" / "report.json")
        markdown = config.getoption("deploygate_markdown")
        self.start = RunStart(env_name, report, _resolve(config, markdown, Path()) if markdown else None)
        if self.worker:
            self.start.run_id = config.workerinput.get("deploygate_run_id", self.start.run_id)  # type: ignore[attr-defined]
        #: set once the configuration is loaded
        self.run: GateRun | None = None
        #: why the gate could not run or could not judge (the report says ERROR)
        self.error: str | None = None
        #: pytest reported a KeyboardInterrupt (or SIGTERM) in this process
        self.interrupted = False
        #: record ledgers of running tests: purged at session end if a teardown never ran
        self.ledgers: list[Ledger] = []
        self.report: GateReport | None = None
        self._launched = False
        #: a Locust process was pre-started for the load test (``load.PRESTARTED``): only then is load.py imported
        #: to end it
        self._prestarted = False
        #: the handlers this run replaced (restored at unconfigure), by signal number
        self._handlers: dict[int, Any] = {}
        #: the signal whose KeyboardInterrupt Python dropped (see :meth:`_install_signal_handlers`)
        self.lost_signal: int | None = None
        #: (our ``sys.unraisablehook``, the one it wraps) once a signal came
        self._unraisable: tuple[Any, Any] | None = None
        #: signals received (the last one's number), and how many of them a test phase's end has seen
        self._signals = self._signals_seen = 0
        self._last_signal = 0

    # ----------------------------------------------------------------------------------------------
    # configure

    def configure(self) -> None:
        config, start = self.config, self.start
        self._install_signal_handlers()
        builtin = config.getini("deploygate_builtin_suites") and not config.getoption("deploygate_no_suites") \
            and config.args_source != pytest.Config.ArgsSource.ARGS
        if builtin:
            self._prestart_load(early=True)  # Locust loads while the configuration is read
        if writes_report(config):
            # From here on the report file speaks for this run: an earlier run's verdict is never left in place.
            from .report.json_report import RUNNING, write_status_report

            try:
                write_status_report(start, _version(), RUNNING)
            except OSError as exc:
                raise pytest.UsageError(f"deploygate: cannot write the gate report {start.report_path}: {exc}") \
                    from None
        from .config import ConfigError, load_gate, locate_files
        from .redaction import guard

        try:
            files = locate_files(Path(config.rootpath), _explicit_path(config, "deploygate_config"),
                                 _explicit_path(config, "deploygate_thresholds"))
            project, policies = load_gate(files, [start.env_name])  # exactly what `deploygate check-config` runs
        except ConfigError as exc:
            self._discard_prestarted()
            self._could_not_run(str(exc))
            raise pytest.UsageError(f"deploygate: {exc}") from None
        settings = RunSettings(
            env_name=start.env_name, env_source=self.env_source, project=project, policy=policies[start.env_name],
            config_path=files.config, report_path=start.report_path, markdown_path=start.markdown_path,
            fail_on_warn=bool(config.getoption("deploygate_fail_on_warn")),
            fail_on_inconclusive=bool(config.getoption("deploygate_fail_on_inconclusive")),
            allow_writes=bool(config.getoption("deploygate_allow_writes")),
            allow_load=bool(config.getoption("deploygate_allow_load")),
            run_id=start.run_id, started_at=start.started_at)
        target = Target(project)
        if self.worker:
            addresses = config.workerinput.get("deploygate_addresses_file")  # type: ignore[attr-defined]
            target.addresses_file = Path(addresses) if addresses else None
        self.run = run = GateRun(settings, target)
        guard(config, run)  # secrets never leave the run, whatever a test does
        from .guard import install_process_guard

        install_process_guard(config, run)  # no write reaches a protected environment, whatever client sends it
        if getattr(config.option, "dist", None) == "load":
            # load tests carry xdist_group("deploygate-load"): one worker runs them, one after another
            config.option.dist = "loadgroup"
        if builtin:
            config.args.append(str(suites_dir()))
            self._prestart_load()

    def _prestart_load(self, early: bool = False) -> None:
        """Start the load's Locust process now, while pytest collects and launches (Python and Locust load in
        ~0.3 s; it then waits for the performance test to release it: see ``load.Prestarted``), when the
        built-in load test is to run Locust in this process: not an xdist run, a ``-m`` that selects the
        performance suite, no ``-k``, load allowed on the environment and something to load it with. If the
        test then does not run it (deselected, skipped, failed before, interrupted), it is ended by its pid.
        ``early``: before the configuration is read, for the generated locustfile (``load.prestart_generated``);
        once it is read (``early`` False), the process is kept only if that is the run's load, else ended."""
        config, run = self.config, self.run
        opt = config.option
        xdist = getattr(opt, "numprocesses", None) or getattr(opt, "dist", "no") != "no" or getattr(opt, "tx", None)
        if (run is None and not early) or self.worker or not writes_report(config) or xdist \
                or getattr(opt, "setuponly", False) or getattr(opt, "setupplan", False) or getattr(opt, "keyword", ""):
            return self._discard_prestarted()  # xdist (the load runs on a worker), --help, --co, ...
        from .load import LOAD_TEST_MARKS, PRESTART, PRESTARTED, LocustRun, load_workdir, prestart_generated

        if not PRESTART:
            return None

        if getattr(opt, "markexpr", ""):
            from .pytest_compat import mark_expression_selects

            if not mark_expression_selects(opt.markexpr, LOAD_TEST_MARKS):
                return self._discard_prestarted()
        try:
            if early or run is None:
                prestarted = prestart_generated(load_workdir(self.start.report_path), self.start.env_name)
            else:
                env = run.environment
                spec = env.performance
                if not (spec.tasks or (spec.locustfile and Path(spec.locustfile).is_file())) \
                        or env.load_refused(run.allow_load) \
                        or (env.read_only(run.allow_writes) and any(t.writes for t in spec.tasks)):
                    return self._discard_prestarted()  # no load (nothing to run, the probe, a refusal)
                if self._prestarted and not spec.locustfile:
                    return None  # started early for the generated locustfile: the run's
                self._discard_prestarted()  # a user's locustfile: started again with it
                prestarted = LocustRun(env, spec, load_workdir(run.settings.report_path),
                                       allow_writes=run.allow_writes).prestart()
        except OSError:
            return None  # the test starts Locust itself
        try:
            config.stash[PRESTARTED] = prestarted
            self._prestarted = True
        except BaseException:  # interrupted right here: unconfigure could not find it
            prestarted.discard()
            raise
        return None

    def _discard_prestarted(self, items: list[pytest.Item] | None = None) -> None:
        """End the pre-started Locust process (by its pid) unless ``items`` hold the load test to release it."""
        if not self._prestarted:
            return
        from .load import PRESTARTED, load_test

        prestarted = self.config.stash.get(PRESTARTED, None)
        if prestarted is None or prestarted.done:
            return
        if items is not None and any(load_test(item.path, suites_dir()) for item in items):
            return
        prestarted.discard()

    def _install_signal_handlers(self) -> None:
        """SIGTERM becomes a KeyboardInterrupt, so a killed run still tears down what it started; SIGINT stays
        one. Python runs a signal's handler at whatever instruction comes next, and if that is inside a weakref
        callback, a ``__del__`` or a garbage collector callback, the KeyboardInterrupt is printed as "Exception
        ignored" and dropped: the run would go on to a verdict. A dropped one goes to ``sys.unraisablehook``
        (a KeyboardInterrupt a test catches does not), so the handler watches that hook, and the next test
        boundary raises it again (:meth:`_lost_interrupt`). C code can also replace the KeyboardInterrupt it was
        in with an error of its own (CPython's import machinery: ``TypeError: expected a message argument``,
        seen in CI): a test phase that came to such an error after a signal is taken as interrupted too
        (:meth:`pytest_runtest_makereport`). Only Python's default handlers are replaced, and they are
        restored at unconfigure (pytest may run in a process that outlives the session)."""
        defaults = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}
        for signum, default in defaults.items():
            if signal.getsignal(signum) is not default:
                continue  # ignored (a background job), or someone else's handler: left alone

            def interrupt(signum: int, frame: object) -> None:
                self._signals += 1
                self._last_signal = signum
                error = KeyboardInterrupt(*(("SIGTERM",) if signum == signal.SIGTERM else ()))
                error.deploygate_signal = signum  # type: ignore[attr-defined]
                self._watch_unraisable()
                raise error

            try:
                signal.signal(signum, interrupt)
            except ValueError:  # pytest run from a thread other than the main one: signals are not its own
                return
            self._handlers[signum] = default

    def _watch_unraisable(self) -> None:
        """Wrap whatever ``sys.unraisablehook`` is in place now (pytest's own, since its configure) so that it
        notes a dropped interrupt of ours before doing its usual work."""
        current = sys.unraisablehook
        if self._unraisable is not None and current is self._unraisable[0]:
            return

        def hook(unraisable: Any) -> None:
            signum = getattr(unraisable.exc_value, "deploygate_signal", None)
            if isinstance(signum, int):
                self.lost_signal = signum
            current(unraisable)

        self._unraisable = (hook, current)
        sys.unraisablehook = hook

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._handlers.items():
            signal.signal(signum, handler)
        self._handlers.clear()
        if self._unraisable is not None and sys.unraisablehook is self._unraisable[0]:
            sys.unraisablehook = self._unraisable[1]
        self._unraisable = None

    def _lost_interrupt(self) -> None:
        """A signal's KeyboardInterrupt was dropped or replaced (see :meth:`_install_signal_handlers`): interrupt
        the run now, before another test starts."""
        self._signals_seen = self._signals  # what came between tests was either raised or dropped
        if self.lost_signal is not None:
            name = signal.Signals(self.lost_signal).name
            raise KeyboardInterrupt(f"{name} (its first KeyboardInterrupt was dropped or replaced by another error)")

    def _could_not_run(self, error: str) -> None:
        """The report of a run stopped by a usage error (exit 4) before it judged anything."""
        self.error = error
        if not writes_report(self.config):
            return
        from .report.json_report import write_status_report

        try:
            write_status_report(self.start, _version(), "ERROR", int(pytest.ExitCode.USAGE_ERROR), error)
            self.start.final = True
        except OSError:
            pass  # the usage error itself is what the user needs to see

    def pytest_report_header(self) -> list[str] | None:
        if self.run is None:
            return None
        run, env = self.run, self.run.environment
        lines = [
            f"deploygate {_version()}: environment {env.name} (from {run.settings.env_source}; stage {env.stage}"
            f"{', protected' if env.protected else ''}) run {run.run_id}",
            f"deploygate config: {run.settings.config_path}; thresholds: {run.policy.path}",
        ]
        return lines + self._target_lines()

    # ----------------------------------------------------------------------------------------------
    # the target: launched once, on the controller, once there is a check to run

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._discard_prestarted(session.items)  # the load test is not to run: no Locust waits for it
        if self.worker or runs_no_tests(self.config) or not session.items:
            return
        self.launch()

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """xdist: the controller learns what its workers collected before it hands out any test."""
        if ids and not runs_no_tests(self.config):
            self.launch()

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist: hand workers the run id, and where they will find the addresses of what the controller
        launches once they have collected."""
        if self.run is None:
            return
        target = self.run.target
        node.workerinput["deploygate_run_id"] = self.run.run_id
        if target.addresses_file is None:
            private = Path(tempfile.mkdtemp(prefix="deploygate-run-"))
            self.config.add_cleanup(lambda: shutil.rmtree(private, ignore_errors=True))
            target.addresses_file = private / "addresses.json"
        node.workerinput["deploygate_addresses_file"] = str(target.addresses_file)

    def launch(self) -> None:
        """Bring the target up (the reference deployment, when launched) and check it answers."""
        if self._launched or self.run is None:
            return
        self._launched = True
        from .target import TargetUnavailable, demo_stages, launch_demo, preflight

        run = self.run
        stages = demo_stages(run.project)
        signals = self._signals
        try:
            if stages:
                launch_demo(self.config, run, stages)
            else:
                run.target.resolve({})
            if run.target.addresses_file is not None:
                run.target.share()
            tr = self.config.pluginmanager.get_plugin("terminalreporter")
            if tr is not None and stages:
                for line in self._target_lines():
                    tr.write_line(line)
            if not self.config.getoption("deploygate_no_preflight"):
                preflight(run)
        except TargetUnavailable as exc:
            if self._signals != signals:  # a terminal's Ctrl-C reaches the servers too: they died of the interrupt
                self._signals_seen = self._signals
                raise KeyboardInterrupt(signal.Signals(self._last_signal).name) from None
            self.error = str(exc)
            hint = " (the gate could not run; --no-preflight skips this check)" if "unreachable" in self.error \
                else ""
            raise pytest.UsageError(f"deploygate: {self.error}{hint}") from None

    def _target_lines(self) -> list[str]:
        assert self.run is not None
        env = self.run.environment
        lines = []
        if env.base_url:
            lines.append(f"deploygate target: api {env.base_url}"
                         + (f", frontend {env.frontend_url}" if env.frontend_url else ""))
        if self.run.target.note:
            lines.append(f"deploygate: {self.run.target.note}")
        return lines

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> None:
        """An interrupt lost during the previous test (or before) stops the run here. xdist worker: pick up
        the launched addresses before the first test's fixtures need them."""
        self._lost_interrupt()
        if self.worker and self.run is not None:
            self.run.target.pick_up()

    # ----------------------------------------------------------------------------------------------
    # the checks

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Built-in suites run cheapest first: smoke, crud, isolation, performance, security. A built-in
        check with nothing configured to check (an empty parameter set: no queues declared, say) is
        deselected rather than shown as a skip."""
        root = suites_dir()

        def builtin(item: pytest.Item) -> bool:
            return root in Path(item.path).parents

        def nothing_declared(item: pytest.Item) -> bool:
            mark = item.get_closest_marker("skip")
            # pytest's wording for a parametrize over an empty list (_pytest.mark.structures)
            return mark is not None and str(mark.kwargs.get("reason", "")).startswith("got empty parameter set")

        empty = [item for item in items if builtin(item) and nothing_declared(item)]
        if empty:
            self.config.hook.pytest_deselected(items=empty)
            gone = {id(item) for item in empty}
            items[:] = [item for item in items if id(item) not in gone]

        if any(builtin(item) for item in items):  # else every key is the same: the order stays as collected
            from .gate import CATEGORIES, category_of

            order = {name: i for i, name in enumerate(CATEGORIES)}

            def key(item: pytest.Item) -> int:
                if not builtin(item):
                    return len(order)
                return order.get(category_of(item.keywords), len(order))

            items.sort(key=key)
        # the promotion precondition is a check only where it is configured (``requires``): not a skip elsewhere
        if self.run is not None and not self.run.project.environment(self.run.env_name).requires.active:
            dropped = [i for i in items if getattr(getattr(i, "function", None), "deploygate_requires", False)]
            if dropped:
                items[:] = [i for i in items if i not in dropped]
                self.config.hook.pytest_deselected(items=dropped)

    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        """The load test is over: a pre-started Locust it did not release (skipped, or failed before the
        load) is ended."""
        if not self._prestarted:
            return
        from .load import load_test

        if load_test(item.path, suites_dir()):
            self._discard_prestarted()

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Protected environments are read-only: destructive checks need an explicit --allow-writes."""
        if self.run is not None and self.run.read_only and item.get_closest_marker("destructive"):
            pytest.skip(f"environment {self.run.env_name} is protected: destructive check skipped "
                        "(pass --allow-writes to run it)")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        """Metrics a test recorded ride on its report (to the controller, across xdist); a check's own
        failure is its one-line message, secrets redacted."""
        report = yield
        if self._signals != self._signals_seen:  # a signal came during this phase
            self._signals_seen = self._signals
            if call.excinfo is not None and not call.excinfo.errisinstance(KeyboardInterrupt):
                self.lost_signal = self._last_signal  # its KeyboardInterrupt became this error
        pending = item.stash.get(METRICS_KEY, [])
        if pending:
            setattr(report, METRICS_ATTR, list(pending))
            pending.clear()
        if call.excinfo is not None and call.excinfo.errisinstance(CheckFailure) and self.run is not None:
            from .redaction import redact

            report.longrepr = redact(str(call.excinfo.value), self.run.secrets)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Controller: metrics, notes, findings, artifacts and the outcome of every test report."""
        if self.worker or self.run is None:
            return
        self.run.results.collect(report, self.run.secrets)

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        # Threshold and verdict cases exist for JUnit & co.; in the terminal the verdict table shows them, so
        # they add no progress dots, a breached threshold counts as failed, the verdict case not at all (the
        # exit status and the gate's summary say the verdict: it is not one more failed test).
        if report.nodeid.startswith(THRESHOLD_PREFIX):
            if report.nodeid.startswith(VERDICT_NODEID):
                return ("", "", "")
            return ("failed" if report.failed else "", "", "")
        return None

    def pytest_internalerror(self) -> None:
        self.start.internal_error = True

    def pytest_keyboard_interrupt(self) -> None:
        self.interrupted = True

    # ----------------------------------------------------------------------------------------------
    # judge and report

    def purge_ledgers(self) -> None:
        """Remove the records of tests that never reached their teardown (an interrupted run), and say
        what could not be removed."""
        left = []
        for ledger in list(self.ledgers):
            left += ledger.purge()
        if left and self.run is not None:
            from .records import describe_left  # imports requests: only when there is something to say

            self.run.results.add_note("deploygate: " + describe_left(left, self.run.run_id))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.purge_ledgers()  # before the report: what stays is named in it
        if self.worker or runs_no_tests(self.config) or self.run is None:
            return
        if self.lost_signal is not None:  # dropped after the last test: still an interrupted run
            self.interrupted = True
        if self.interrupted and exitstatus != pytest.ExitCode.INTERRUPTED:
            exitstatus = session.exitstatus = pytest.ExitCode.INTERRUPTED  # pytest failed to report it
        if exitstatus == pytest.ExitCode.USAGE_ERROR:  # could not run (launch, pre-flight): nothing was judged
            self.error = self.error or "the gate could not run (see the error above)"
            self._write_error(int(pytest.ExitCode.USAGE_ERROR))
            return
        try:
            verdict = self.judge()
            # the exit status is settled before anything reports it: the report and the exit code agree
            exitstatus = session.exitstatus = final_status(int(exitstatus), verdict)
            from .report import deliver

            self.report = deliver(self.config, self.run, verdict, int(exitstatus), _version())
            self.start.final = True
            self.config.hook.pytest_deploygate_verdict(config=self.config, verdict=verdict,
                                                        report=self.report.to_dict())
        except Exception as exc:  # never raise out of sessionfinish: say what broke, fail the gate
            self.error = f"{type(exc).__name__}: {exc}"
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            self.report = None
            self._write_error(int(pytest.ExitCode.INTERNAL_ERROR))

    def judge(self) -> Verdict:
        """The verdict of the collected results against the policy (metrics from ``pytest_deploygate_metrics``
        hooks included)."""
        from .gate import judge, make_metric
        from .thresholds import unused_note

        assert self.run is not None
        run, settings = self.run, self.run.settings
        env = run.environment

        def record(name: str, value: float, unit: str | None = None, **labels: object) -> Metric:
            metric = make_metric(name, value, unit, labels, nodeid="deploygate::hooks")
            run.results.metrics.append(metric)
            return metric

        self.config.hook.pytest_deploygate_metrics(config=self.config, environment=env, record=record)
        verdict = judge(env.name, run.results.metrics, settings.policy, run.results.tallies(),
                        settings.fail_on_warn, settings.fail_on_inconclusive)
        unused = unused_note(settings.policy, ((m.name, m.labels) for m in run.results.metrics))
        if unused:
            run.results.add_note(unused)
        return verdict

    def _write_error(self, exit_status: int) -> None:
        from .report.json_report import write_error_report

        assert self.run is not None
        try:
            write_error_report(self.run, self.error or "", _version(), exit_status)
            self.start.final = True
        except Exception:
            pass  # the terminal summary still says the gate could not be judged

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.worker or self.run is None or (self.report is None and not self.error):
            return  # collect-only, or the session never got to judge: no summary (nor its imports)
        from .report.terminal import write_summary

        write_summary(terminalreporter, self.report, self.error, self.run.environment.name,
                      self.run.settings.report_path)

    # ----------------------------------------------------------------------------------------------
    # the end

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Safety net for an interrupted run: delete records whose test never reached its teardown, then
        leave the report's final word."""
        for ledger in list(self.ledgers):
            ledger.purge()
        self._discard_prestarted()
        if self.run is not None:
            from .guard import remove_process_guard

            remove_process_guard(config)
        self._final_word()
        self._restore_signal_handlers()

    def _final_word(self) -> None:
        """A run that ended before its verdict (interrupted while configuring, launching or collecting, or
        stopped by an error) still leaves a report that says so, under its own run id."""
        start = self.start
        if start.final or not writes_report(self.config):
            return
        from .report.json_report import write_status_report

        secrets = self.run.secrets if self.run is not None else frozenset()
        try:
            if self.interrupted or self.lost_signal is not None:
                write_status_report(start, _version(), "INTERRUPTED", int(pytest.ExitCode.INTERRUPTED),
                                    "interrupted before the gate could judge", secrets)
            else:
                code = pytest.ExitCode.INTERNAL_ERROR if start.internal_error else pytest.ExitCode.USAGE_ERROR
                error = self.error or "the run stopped before the gate could judge"
                write_status_report(start, _version(), "ERROR", int(code), error, secrets)
            start.final = True
        except OSError:
            pass


class ExitStatusWatch:
    """Registered last: the report's exit status is the process's. If a plugin after the verdict changed
    it (``session.exitstatus``), the report is rewritten to say so."""

    def __init__(self, gate: GateSession) -> None:
        self.gate = gate

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        gate = self.gate
        if gate.report is None or gate.run is None or gate.report.exit_status == int(session.exitstatus):
            return
        from .report import rewrite_exit_status

        gate.report = rewrite_exit_status(gate.report, int(session.exitstatus), gate.run)


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
