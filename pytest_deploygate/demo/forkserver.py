"""Start the reference deployment's server processes by forking one process that imported their libraries.

``python -m pytest_deploygate.demo.forkserver --workdir W`` imports moto (with the backends the launcher
provisions), boto3 and the reference API once, then reads requests from stdin, one JSON object a line:
``{"name": ..., "module": ..., "argv": [...], "env": {...}}``; for each it forks a child that runs
``module.main(argv)`` with ``env`` added to its environment, its output in ``W/<name>.log``, and answers
``{"name": ..., "pid": ...}`` on stdout. Three moto servers, three APIs and the OSV service then cost one
import of moto and boto3 instead of seven (~0.5 CPU-s each; the machine has few cores).

The children are ordinary server processes (``--parent-pid`` is this process: they exit when it is gone);
this process exits when its stdin closes (the launcher is gone) or on SIGTERM, and reaps its children.
Forking happens from the main thread while no other thread runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import random
import signal
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: moto backends loaded before any server forks (a backend's first request otherwise pays its import)
BACKENDS: tuple[str, ...] = ("dynamodb", "s3")
#: server modules a request may name
MODULES = ("pytest_deploygate.demo.awsserver", "pytest_deploygate.demo.apigw", "pytest_deploygate.demo.osv")


def preload(backends: tuple[str, ...] = BACKENDS) -> None:
    """Import what every server needs; no thread is started and no socket opened."""
    from moto.backends import get_backend
    from moto.moto_server.werkzeug_app import create_backend_app

    with _one_botocore_loader():
        for name in backends:
            get_backend(name)  # type: ignore[call-overload]
            create_backend_app(name)  # type: ignore[arg-type]  # the service's responses and URL map


@contextlib.contextmanager
def _one_botocore_loader() -> Iterator[None]:
    """While moto's backends import, every new botocore session shares one data loader: moto's EC2 models
    (imported by its SSM backend) build three sessions at import, each parsing botocore's endpoint data
    anew (~0.1 CPU-s each). The data read is the same; only this process's imports see the shared loader."""
    import botocore.loaders
    import botocore.session

    original = getattr(botocore.session, "create_loader", None)
    if original is None:  # another botocore: import as it comes
        yield
        return
    shared = botocore.loaders.create_loader()
    botocore.session.create_loader = lambda *args, **kwargs: shared  # type: ignore[attr-defined]
    try:
        yield
    finally:
        botocore.session.create_loader = original  # type: ignore[attr-defined]
    from . import apigw, awsserver, osv, service  # noqa: F401

    service.preload()
    try:  # the protected route's token check (the API starts without it: the route answers 503)
        import requests  # noqa: F401
        from joserfc import jwt  # noqa: F401
    except ImportError:
        pass


def _reap(signum: int, frame: object) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(request: dict[str, Any], workdir: Path) -> None:
    """In the forked child: become the requested server. Never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
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
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
    signal.signal(signal.SIGINT, lambda signum, frame: os._exit(0))
    signal.signal(signal.SIGCHLD, _reap)
    preload(tuple(b for b in args.backends.split(",") if b))
    out = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("module") not in MODULES:
            out.write(json.dumps({"name": request.get("name"), "error": f"unknown module {request.get('module')!r}"})
                      + "\n")
            out.flush()
            continue
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request, workdir)
        out.write(json.dumps({"name": request["name"], "pid": pid}) + "\n")
        out.flush()
    os._exit(0)  # stdin closed: the launcher is gone (the children notice this process is gone, and exit)


if __name__ == "__main__":
    main()
