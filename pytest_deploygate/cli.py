"""The ``deploygate`` command: run the reference deployment, check configuration.

Exit codes: 0 ok, 2 bad command line, 4 configuration or start-up problem.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from .config import ConfigError, find_config, load_project

EXIT_OK, EXIT_USAGE, EXIT_CONFIG = 0, 2, 4
DEFAULT_STATE_DIR = Path(".deploygate") / "demo"
DEFAULT_STAGES = {"dev": "dev", "staging": "staging", "prod": "prod"}


def _fail(message: str, code: int = EXIT_CONFIG) -> int:
    print(f"deploygate: {message}", file=sys.stderr)
    return code


def _stages(config: str | None) -> dict[str, str]:
    """Environments to launch: those with ``launch = "demo"`` in the project config, else dev/staging/prod."""
    try:
        path, table = find_config(Path.cwd(), config)
    except ConfigError:
        if config:
            raise
        return dict(DEFAULT_STAGES)
    project = load_project(path, table)
    stages = {n: e.stage for n, e in project.environments.items() if e.launch == "demo"}
    return stages or dict(DEFAULT_STAGES)


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
    stop = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        demo = Demo.start(stages, faults, state_dir.resolve())
    except (DemoError, OSError) as exc:
        return _fail(f"could not start the reference deployment: {exc}")
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

    for name, doc in FAULTS.items():
        print(f"{name:<16} {doc}")
    return EXIT_OK


def check_config(args: argparse.Namespace) -> int:
    from .thresholds import load_policy

    try:
        path, table = find_config(Path.cwd(), args.config)
        project = load_project(path, table)
        envs = [args.env] if args.env else list(project.environments)
        for name in envs:
            project.environment(name)
        thresholds = Path(args.thresholds) if args.thresholds else Path("thresholds.toml")
        if not thresholds.exists():
            if args.thresholds:
                raise ConfigError("thresholds file not found", file=thresholds)
            thresholds = Path(__file__).with_name("thresholds.toml")
        for name in envs:
            load_policy(thresholds, name)
    except ConfigError as exc:
        return _fail(str(exc))
    print(f"{path}: ok ({', '.join(envs)}); {thresholds}: ok")
    return EXIT_OK


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

    check = sub.add_parser("check-config", help="validate deploygate.toml and thresholds.toml")
    check.add_argument("--config", help="project config (default: deploygate.toml or pyproject.toml)")
    check.add_argument("--thresholds", help="gate policy (default: thresholds.toml)")
    check.add_argument("--env", help="check only this environment")
    check.set_defaults(func=check_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
