"""The ``deploygate`` command: run the reference deployment, check configuration.

Exit codes: 0 ok, 1 the operation failed (e.g. a leftover could not be removed), 2 bad command line,
4 configuration or start-up problem; ``demo up`` interrupted while it starts: 128 + the signal's number
(130 SIGINT, 143 SIGTERM), as a shell reports a process a signal ended.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from .config import ConfigError, Environment, GateFiles, cli_root, load_gate, load_project, locate_files
from .target import DEMO_STATE_DIR, demo_stages

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 4
DEFAULT_STATE_DIR = DEMO_STATE_DIR  # the plugin looks for a running `deploygate demo` there too
DEFAULT_STAGES = {"dev": "dev", "staging": "staging", "prod": "prod"}


def _fail(message: str, code: int = EXIT_CONFIG) -> int:
    print(f"deploygate: {message}", file=sys.stderr)
    return code


def _files(config: str | None, thresholds: str | None = None, rootdir: str | None = None) -> GateFiles:
    """The files a gate run from here would read (paths given on the command line are relative to the
    current directory)."""
    root = Path(os.path.abspath(rootdir)) if rootdir else cli_root()
    return locate_files(root, Path(os.path.abspath(config)) if config else None,
                        Path(os.path.abspath(thresholds)) if thresholds else None)


def _stages(config: str | None) -> dict[str, str]:
    """Environments to launch: those with ``launch = "demo"`` in the project config, else dev/staging/prod."""
    try:
        files = _files(config)
    except ConfigError:
        if config:
            raise
        return dict(DEFAULT_STAGES)
    project = load_project(files.config, files.table)
    return demo_stages(project) or dict(DEFAULT_STAGES)


def demo_up(args: argparse.Namespace) -> int:
    from .demo.faults import FAULTS_ENV, FaultError, parse_faults
    from .demo.launcher import STATE_FILE, Demo, DemoError

    state_dir = Path(args.state_dir)
    running = Demo.find(state_dir / STATE_FILE)
    if running is not None:
        return _fail(f"a reference deployment is already running (pid {running.state['owner_pid']}); "
                     "stop it with: deploygate demo down")
    try:
        stages = _stages(args.config)
        spec = [os.environ.get(FAULTS_ENV, ""), *args.fault]
        faults = parse_faults(spec, stages)
    except (ConfigError, FaultError) as exc:
        return _fail(str(exc))
    stop = {"now": False, "starting": True}
    signals: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True
        signals.append(signum)
        if stop["starting"] and len(signals) == 1:
            raise KeyboardInterrupt  # abandon the start (Demo.start stops what it started; a second signal waits)

    def interrupted() -> int:
        name = signal.Signals(signals[0]).name if signals else "SIGINT"
        print(f"deploygate: interrupted ({name}) while the reference deployment was starting; it was stopped",
              file=sys.stderr)
        return 128 + (signals[0] if signals else signal.SIGINT)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        demo = Demo.start(stages, faults, state_dir.resolve())
        stop["starting"] = False
    except KeyboardInterrupt:
        stop["starting"] = False
        return interrupted()
    except Exception as exc:  # DemoError (names what failed), OSError: one line, no traceback
        stop["starting"] = False
        if signals:  # a terminal's Ctrl-C reaches the servers too: their end, not a fault, failed the start
            return interrupted()
        detail = exc if isinstance(exc, (DemoError, OSError)) else f"{type(exc).__name__}: {exc}"
        return _fail(f"could not start the reference deployment: {detail}")
    try:
        print(f"reference deployment up (state {demo.state_path}):", flush=True)
        for name, info in demo.environments.items():
            fault = f"  faults: {', '.join(info['faults'])}" if info["faults"] else ""
            print(f"  {name:<8} api {info['api_url']}  frontend {info['frontend_url']}  "
                  f"aws {info['endpoint_url']} (account {info['account_id']}){fault}", flush=True)
        print("press Ctrl-C (or run `deploygate demo down`) to stop", flush=True)
        while not stop["now"]:
            if not demo.alive():
                return _fail("a reference deployment process died; stopping")
            time.sleep(0.2)
    finally:
        demo.stop()
    print("reference deployment stopped", flush=True)
    return EXIT_OK


def demo_down(args: argparse.Namespace) -> int:
    from .demo.launcher import STATE_FILE, Demo, pid_alive

    demo = Demo.find(Path(args.state_dir) / STATE_FILE)
    if demo is None:
        print("deploygate: no reference deployment is running")
        return EXIT_OK
    owner = int(demo.state.get("owner_pid", 0))
    if owner and pid_alive(owner):
        os.kill(owner, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(owner) and time.monotonic() < deadline:
            time.sleep(0.05)
    demo.stop()  # whatever the owner did not stop, by pid
    print("reference deployment stopped")
    return EXIT_OK


def demo_faults(args: argparse.Namespace) -> int:
    from .demo.faults import FAULTS

    width = max(map(len, FAULTS))
    for name, doc in FAULTS.items():
        print(f"{name:<{width}} {doc}")
    return EXIT_OK


def _environment(args: argparse.Namespace) -> Environment:
    """The environment named on the command line, with the addresses of a running reference deployment."""
    from .demo.launcher import STATE_FILE, Demo

    files = _files(args.config)
    env = load_project(files.config, files.table).environment(args.env)
    if env.launch == "demo":
        demo = Demo.find(Path(args.state_dir) / STATE_FILE)
        if demo is None or env.name not in demo.environments:
            raise ConfigError(f"environment {env.name} is the reference deployment, and none is running "
                              f"(start it with: deploygate demo up)")
        from .run import with_launched

        env = with_launched(env, demo.environments[env.name])
    return env


def cleanup(args: argparse.Namespace) -> int:
    """Find records carrying a gate run marker (the API's list, and the table where one is declared: each
    stands in when the other fails) and delete them (through the API, retried on 5xx; else from the table)."""
    from .aws import EnvironmentAWS
    from .http import CheckFailure, client_for
    from .records import Collection, Datastore, find_leftovers, remove_leftovers

    try:
        env = _environment(args)
    except ConfigError as exc:
        return _fail(str(exc))
    if env.read_only(args.allow_writes) and not args.dry_run:
        return _fail(f"environment {env.name} is protected: pass --allow-writes to delete its leftovers "
                     "(or --dry-run to list them)")
    if not env.crud.collections:
        print(f"{env.name}: no crud collections declared; nothing to clean up")
        return EXIT_OK
    aws = EnvironmentAWS(env, allow_writes=not env.read_only(args.allow_writes))
    total_found = total_removed = 0
    failures: list[str] = []
    for spec in env.crud.collections:
        http = client_for(env, allow_writes=not env.read_only(args.allow_writes))
        coll = Collection(http, env, spec, run_id="cleanup")
        store = Datastore(aws, spec) if spec.table else None
        try:
            found, unsearched = find_leftovers(coll, store, older_than_s=args.older_than, run_id=args.run_id)
        except CheckFailure as exc:
            failures.append(str(exc))
            continue
        except Exception as exc:  # botocore errors and the like: one line, no traceback
            failures.append(f"{coll.label}: cleanup failed: {type(exc).__name__}: {exc}")
            continue
        for why in unsearched:
            print(f"{coll.label}: {why}; searched the {'API list' if 'scan' in why else 'table'} instead")
        total_found += len(found)
        for left in found:
            print(f"{env.name} {spec.name} {left.item_id} run {left.run_id} (found in {left.where})")
        if found and not args.dry_run:
            removed, problems = remove_leftovers(coll, store, found)
            total_removed += removed
            failures += problems
    for failure in failures:
        print(f"deploygate: {failure}", file=sys.stderr)
    verb = "would remove" if args.dry_run else "removed"
    count = total_found if args.dry_run else total_removed
    print(f"{env.name}: {total_found} leftover gate record(s) found, {verb} {count}")
    if failures:
        return EXIT_FAILED
    return EXIT_OK if args.dry_run or total_removed == total_found else EXIT_FAILED


def check_config(args: argparse.Namespace) -> int:
    """Run exactly the gate's configuration checks (:func:`~pytest_deploygate.config.load_gate`) on the
    files the gate would read from here (:func:`~pytest_deploygate.config.locate_files`)."""
    try:
        files = _files(args.config, args.thresholds, args.rootdir)
        project, _ = load_gate(files, [args.env] if args.env else None)
    except ConfigError as exc:
        return _fail(str(exc))
    envs = [args.env] if args.env else list(project.environments)
    where = f" [{files.table}]" if files.table else ""
    print(f"{files.config}{where}: ok ({', '.join(envs)}); {files.thresholds}: ok")
    return EXIT_OK


def report(args: argparse.Namespace) -> int:
    """Print a gate report as Markdown; the exit code says whether it blocks promotion."""
    import json

    from .report.markdown import render_markdown
    from .report.model import GateReport

    path = Path(args.path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _fail(f"{path}: no gate report there (run the gate first, or pass its --gate-report path)",
                     EXIT_USAGE)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _fail(f"{path}: not a gate report: {exc}", EXIT_USAGE)
    if not isinstance(data, dict) or "verdict" not in data:
        return _fail(f"{path}: not a gate report: no verdict in it", EXIT_USAGE)
    try:
        model = GateReport.from_dict(data)
    except (TypeError, ValueError, AttributeError) as exc:
        return _fail(f"{path}: not a gate report: {exc}", EXIT_USAGE)
    sys.stdout.write(render_markdown(model))
    return EXIT_FAILED if data.get("blocks_promotion", data["verdict"] != "PASS") else EXIT_OK


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deploygate", description="pytest-deploygate helper commands")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the embedded reference deployment")
    demo_sub = demo.add_subparsers(dest="demo_command", required=True)
    up = demo_sub.add_parser("up", help="start it in the foreground and print its URLs")
    up.add_argument("--fault", action="append", default=[], metavar="ENV:FAULT",
                    help="inject a fault (repeatable; also $DEPLOYGATE_DEMO_FAULTS)")
    up.add_argument("--config", help="project config whose launch = \"demo\" environments to start")
    up.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
    up.set_defaults(func=demo_up)
    down = demo_sub.add_parser("down", help="stop a running one")
    down.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
    down.set_defaults(func=demo_down)
    faults = demo_sub.add_parser("faults", help="list the faults it can inject")
    faults.set_defaults(func=demo_faults)

    clean = sub.add_parser("cleanup", help="find and delete leftover gate records (crashed runs)")
    clean.add_argument("--env", required=True, help="environment to clean")
    clean.add_argument("--dry-run", action="store_true", help="list, do not delete")
    clean.add_argument("--older-than", type=_seconds, default=0.0, metavar="SECONDS",
                       help="only records created at least this long ago (spare running gates)")
    clean.add_argument("--run-id", help="only records of this gate run")
    clean.add_argument("--allow-writes", action="store_true", help="allow deleting on a protected environment")
    clean.add_argument("--config", help="project config (default: deploygate.toml or pyproject.toml)")
    clean.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="where a running demo keeps its state")
    clean.set_defaults(func=cleanup)

    check = sub.add_parser("check-config", help="validate deploygate.toml and thresholds.toml")
    check.add_argument("--config", help="project config (default: deploygate.toml or pyproject.toml)")
    check.add_argument("--thresholds", help="gate policy (default: thresholds.toml)")
    check.add_argument("--env", help="check only this environment")
    check.add_argument("--rootdir", help="where the gate's rootdir is (default: the nearest directory upwards "
                       "holding deploygate.toml or [tool.deploygate] in pyproject.toml)")
    check.set_defaults(func=check_config)

    rep = sub.add_parser("report", help="print a gate report as Markdown (exit 1 if it blocks promotion)")
    rep.add_argument("path", nargs="?", default=".deploygate/report.json", help="the JSON gate report")
    rep.set_defaults(func=report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
