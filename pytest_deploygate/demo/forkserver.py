"""Start the reference deployment's server processes by forking one process that imported their libraries.

``python -m pytest_deploygate.demo.forkserver --workdir W`` imports moto (with the backends the launcher
provisions, and what their first requests would build: ``awsserver.preload``) and boto3 once, then reads
requests from stdin, one JSON object a line: ``{"name": ..., "module": ..., "argv": [...], "env": {...}}``;
for each it forks a child that runs ``module.main(argv)`` with ``env`` added to its environment, its output
in ``W/<name>.log``, and answers ``{"name": ..., "pid": ...}`` on stdout. While no request waits, it loads
what only the APIs need (they are forked last). Three moto servers, three APIs and the OSV service then cost
one import of moto and boto3 instead of seven (~0.5 CPU-s each; the machine has few cores).

A moto server's listening socket may be made by the launcher (its port is then known before the server
starts): handed over to this process (``--sockets``), named by the request (``"fd"``), held only by that
server once it is forked.

The children are ordinary server processes (``--parent-pid`` is this process: they exit when it is gone).
While it runs, this process reaps the children that exit. It exits when its stdin closes (the launcher is
gone), or at once on SIGTERM or SIGINT, without signalling or waiting for its children: they notice it is
gone (their parent watch, ``process.exit_with_parent``) and exit within about 0.5 s. The launcher stops the
servers by their own pids first, then this process. Forking happens from the main thread while no other
thread runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import select
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: moto backends loaded before any server forks (a backend's first request otherwise pays its import)
BACKENDS: tuple[str, ...] = ("dynamodb", "s3")
#: server modules a request may name
MODULES = ("pytest_deploygate.demo.awsserver", "pytest_deploygate.demo.apigw", "pytest_deploygate.demo.osv")


def preload(backends: tuple[str, ...] = BACKENDS) -> None:
    """Import (and build) what the moto servers and OSV need; no thread is started and no socket opened."""
    from . import apigw, awsserver, osv, service  # noqa: F401

    awsserver.preload(backends)


def preload_apis() -> None:
    """What the APIs need beyond that (they are forked last: this runs while the moto servers start)."""
    from . import service

    service.preload()
    try:  # the protected route's token check (the API starts without it: the route answers 503)
        import requests  # noqa: F401
        from joserfc import jwt  # noqa: F401
    except ImportError:
        pass


def _requests(fd: int, idle: list[Callable[[], None]]) -> Iterator[dict[str, Any]]:
    """The requests read from ``fd`` (one JSON object a line) until it closes; whenever none is waiting, the
    next piece of ``idle`` work runs first."""
    buffered = b""
    while True:
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)
        if idle and not select.select([fd], [], [], 0)[0]:
            idle.pop(0)()
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        buffered += chunk


def _reap(signum: int, frame: object) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(request: dict[str, Any], workdir: Path, sockets: set[int]) -> None:
    """In the forked child: become the requested server. Never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in sockets - {request.get("fd")}:  # another server's listening socket: not this one's to hold
            os.close(fd)
        fd = os.open(workdir / f"{request['name']}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.environ.update({str(k): str(v) for k, v in (request.get("env") or {}).items()})
        # A fork copies the parent's random state: unseeded, every child draws the same "random" ids (moto's
        # user pool and app client ids were the same in every environment, so each API took its peers' tokens).
        random.seed()
        moto_random = sys.modules.get("moto.moto_api._internal")
        if moto_random is not None:
            moto_random.mock_random.seed()
        module = importlib.import_module(request["module"])
        module.main([str(a) for a in request["argv"]])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--sockets", default="", help="listening sockets handed over (fds), one per moto server")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
    signal.signal(signal.SIGINT, lambda signum, frame: os._exit(0))
    signal.signal(signal.SIGCHLD, _reap)
    sockets = {int(fd) for fd in args.sockets.split(",") if fd}
    preload(tuple(b for b in args.backends.split(",") if b))
    idle = [preload_apis]
    out = sys.stdout
    for request in _requests(sys.stdin.fileno(), idle):
        if request.get("module") not in MODULES:
            out.write(json.dumps({"name": request.get("name"), "error": f"unknown module {request.get('module')!r}"})
                      + "\n")
            out.flush()
            continue
        if request["module"] == "pytest_deploygate.demo.apigw":
            while idle:  # an API before the idle time came: load what it needs now
                idle.pop(0)()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request, workdir, sockets)
        if request.get("fd") in sockets:  # the child holds it now
            sockets.discard(request["fd"])
            os.close(request["fd"])
        out.write(json.dumps({"name": request["name"], "pid": pid}) + "\n")
        out.flush()
    os._exit(0)  # stdin closed: the launcher is gone (the children notice this process is gone, and exit)


if __name__ == "__main__":
    main()
