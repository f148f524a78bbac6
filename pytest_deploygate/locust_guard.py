"""Runs inside Locust, never in pytest: the gate passes it first in ``-f guard.py,locustfile.py``.

Two duties in every Locust process (master, ``--processes`` workers, and distributed workers, which get
this file from the master):

- On a protected environment without --allow-writes, every request that is not a read (GET, HEAD,
  OPTIONS) is refused before it is sent, and counted as a Locust failure that names the rule. Both
  clients (HttpUser's requests session, FastHttpUser's geventhttpclient) are guarded at the request and
  at the transport, so ``client.send(...)``, ``requests.post(...)``, ``urllib`` and geventhttpclient
  used directly are refused too. On a writable environment nothing is patched (no cost per request).
- When the gate process dies (even by SIGKILL), Locust and its local workers die within a second:
  Linux's parent-death signal, and a watchdog thread for what it cannot see.

It also leaves the run's final failures in ``<json-file>_failures.json``, where the gate counts refusals,
and, in a Locust process the gate started ahead of its run, waits for the run's release (below). Two
things shorten the gate's wait for Locust's end: a Locust started ahead compiles the HTML report's
template while it waits (instead of after the load), and a Locust running the gate's generated locustfile
ends once it has written and flushed everything, without the interpreter's finalization (below).

Standalone: only the standard library and Locust (a remote worker has nothing else). The gate sets the
rule and its own identity in the environment variables below; unset, this module does nothing.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import http.client
import json
import logging
import os
import select
import signal
import sys
import time
from typing import Any, NoReturn

from locust import events
from locust.exception import RescheduleTask

#: why non-read requests are refused (empty or unset: they are allowed). Also a Locust option, so the
#: master hands it to distributed workers, whose environment the gate does not set.
READ_ONLY_VAR = "DEPLOYGATE_LOAD_READ_ONLY"
#: the pid of the gate process (Locust's parent); Locust exits when it is gone
GATE_VAR = "DEPLOYGATE_GATE_PID"
#: set by the gate when it starts Locust ahead of its run: the pipe the release comes from
RELEASE_VAR = "DEPLOYGATE_LOAD_RELEASE_FD"
#: set by the gate when Locust runs its generated locustfile: the master skips the interpreter's finalization
FAST_EXIT_VAR = "DEPLOYGATE_LOAD_FAST_EXIT"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WATCH_INTERVAL_S = 0.5
PR_SET_PDEATHSIG = 1

#: the process that imported this file: the Locust master (``--processes`` workers are forked after import)
_MASTER_PID = os.getpid()
_environment: list[Any] = []
#: the exit code Locust's shutdown gave its quit event (then it calls sys.exit with it)
_exit_code: list[int] = []


class WriteRefused(Exception):
    """A request that would write to a protected environment; shown in Locust's failures as its message."""

    def __repr__(self) -> str:  # Locust names a failure by repr(): the message alone reads best
        return str(self)


def _reason() -> str:
    reason = os.environ.get(READ_ONLY_VAR, "")
    if not reason and _environment:
        reason = getattr(_environment[0].parsed_options, "deploygate_read_only", "") or ""
    return reason


def refuse_writes(method: Any, name: Any) -> None:
    """Refuse (count as a failure, never send) a non-read request while the environment is read-only."""
    verb = (method.decode() if isinstance(method, bytes) else str(method)).upper()
    if verb in READ_METHODS:
        return
    reason = _reason()
    if not reason:
        return
    label = name.decode() if isinstance(name, bytes) else str(name)
    refused = WriteRefused(f"refused {verb} {label}: {reason}")
    events.request.fire(request_type=verb, name=label, response_time=0, response_length=0, response=None,
                        context={}, exception=refused, start_time=time.time(), url=label)
    # ends the task like a return: the user's code after the write never runs on a response that never came
    raise RescheduleTask() from refused


def _guard_request(cls: Any) -> None:
    original = cls.request

    @functools.wraps(original)
    def request(self: Any, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        name = kwargs.get("name") or (args[0] if args else None) or getattr(self, "request_name", None) or url
        refuse_writes(method, name)
        return original(self, method, url, *args, **kwargs)

    cls.request = request


_installed: list[bool] = []


def guard_if_read_only(**_: Any) -> None:
    """Install the write guard once the environment is known to be read-only; never for a writable one, whose
    load then pays nothing per request. At import (the gate's variable: Locust's own process and the
    ``--processes`` workers it forks) and again at test start, before any user runs (a distributed worker
    gets the rule with the master's options, only then)."""
    if not _installed and _reason():
        _installed.append(True)
        _install_write_guard()


def _install_write_guard() -> None:
    import geventhttpclient.client
    import requests.adapters
    from locust.clients import HttpSession
    from locust.contrib.fasthttp import FastHttpSession

    # the request level names the failure as Locust would name the request
    _guard_request(HttpSession)
    _guard_request(FastHttpSession)

    # the transport level catches every other way to send: Session.send, requests.post, a bare HTTPClient
    adapter_send = requests.adapters.HTTPAdapter.send

    @functools.wraps(adapter_send)
    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        refuse_writes(request.method, getattr(request, "_explicit_name", None) or request.path_url)
        return adapter_send(self, request, *args, **kwargs)

    requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]

    client_request = geventhttpclient.client.HTTPClient.request

    @functools.wraps(client_request)
    def http_client_request(self: Any, method: Any, request_uri: Any, *args: Any, **kwargs: Any) -> Any:
        refuse_writes(method, request_uri)
        return client_request(self, method, request_uri, *args, **kwargs)

    geventhttpclient.client.HTTPClient.request = http_client_request  # type: ignore[method-assign]

    # and below requests: urllib3 and urllib both send through http.client
    putrequest = http.client.HTTPConnection.putrequest

    @functools.wraps(putrequest)
    def guarded_putrequest(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        refuse_writes(method, url)
        return putrequest(self, method, url, *args, **kwargs)

    http.client.HTTPConnection.putrequest = guarded_putrequest  # type: ignore[method-assign]


# --------------------------------------------------------------------------------------------------
# dying with the gate


def _gate_pid() -> int | None:
    pid = os.environ.get(GATE_VAR, "")
    return int(pid) if pid.isdigit() else None


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of ``pid`` from /proc, or None when there is no such process (or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], fields[19]


def gate_alive(pid: int, start: str) -> bool:
    """The gate process still runs: same pid *and* start time (a pid can be reused), not a zombie."""
    if os.path.isdir("/proc"):
        seen = _stat(pid)
        return seen is not None and seen[0] != "Z" and (not start or seen[1] == start)
    try:  # no /proc: the pid alone
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _die(why: str) -> NoReturn:
    try:
        sys.stderr.write(f"deploygate: {why}; stopping Locust\n")
        sys.stderr.flush()
    except Exception:  # dying anyway: a closed stderr must not stop it
        pass
    if os.getpgrp() == _MASTER_PID:  # the gate started Locust in its own process group: master and workers
        os.killpg(_MASTER_PID, signal.SIGKILL)
    os._exit(3)


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this process when the thread that started it exits (the gate blocks in
    that thread until Locust ends, or started it ahead from its main thread, so only the gate's death can
    end it first)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the watchdog alone
        pass
    if os.getppid() != parent:  # it died before the signal was armed
        _die(f"parent process {parent} is gone")


def _watch(gate_pid: int, gate_start: str, parent: int) -> None:
    sleep = _original("time", "sleep")
    while True:
        sleep(WATCH_INTERVAL_S)
        if os.getppid() != parent:
            _die(f"parent process {parent} is gone")
        if not gate_alive(gate_pid, gate_start):
            _die(f"the gate process {gate_pid} is gone")


def _original(module: str, name: str) -> Any:
    # a real thread and a real sleep: a greenlet would wait on users that never yield
    from gevent import monkey

    return monkey.get_original(module, name)


def arm_watchdog() -> None:
    """In this process (master or forked worker): die with the parent, and watch the gate."""
    if _GATE_PID is None:
        return
    parent = _GATE_PID if os.getpid() == _MASTER_PID else _MASTER_PID
    _die_with_parent(parent)
    _original("_thread", "start_new_thread")(_watch, (_GATE_PID, _GATE_START, parent))


def await_release() -> None:
    """A Locust process the gate started ahead of its run (Python and Locust loaded while pytest collected)
    waits here, before Locust reads its options or imports the locustfile, for one line on the pipe: the
    run's command line (after ``python -m locust``) and its whole environment, which replace this process's.
    Locust then goes on exactly as if started with them. The pipe closing without a line (the run did not
    happen, or the gate is gone) ends the process."""
    fd = os.environ.pop(RELEASE_VAR, "")
    if not fd.isdigit():
        return
    try:
        idle = not select.select([int(fd)], [], [], 0)[0]
    except (OSError, ValueError):
        idle = False
    if idle:  # the release is not there yet: the time is free
        precompile_html_report()
    with open(int(fd), "rb") as pipe:  # a plain blocking read: nothing else runs in this process yet
        line = pipe.readline()
    if not line.endswith(b"\n"):
        os._exit(0)
    try:
        release = json.loads(line)
        argv, env = list(map(str, release["argv"])), {str(k): str(v) for k, v in release["env"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        _die(f"unreadable release from the gate ({exc})")
    os.environ.clear()
    os.environ.update(env)
    sys.argv[1:] = argv
    # gevent's loop keeps the time it last looked at: a precaution so that no timer (Locust's --run-time among
    # them) counts the wait as part of the run (measured, the run lasts its full length without it too)
    from gevent import get_hub

    get_hub().loop.update_now()


def precompile_html_report() -> bool:
    """Compile the template of Locust's HTML report now: Locust compiles it (a ~1 MB page, ~40 ms) after the
    load, while the gate waits for its end, in a fresh Jinja environment each time. The compiled template is
    rendered instead, with the same arguments: the same page. Only where Locust's renderer is the one this
    knows (``locust.html.render_template_from(file, build_path, **kwargs)``); else nothing changes. True when
    it is in place."""
    try:
        import inspect

        import locust.html as html
        from jinja2 import Environment, FileSystemLoader

        original = html.render_template_from
        if list(inspect.signature(original).parameters) != ["file", "build_path", "kwargs"]:
            return False
        build = html.DEFAULT_BUILD_PATH
        template = Environment(loader=FileSystemLoader(build)).get_template("report.html")
    except Exception:  # another Locust: it renders its report as it always does
        return False

    @functools.wraps(original)
    def render_template_from(file: Any, build_path: Any = build, **kwargs: Any) -> Any:
        if file == "report.html" and build_path == build:
            return template.render(**kwargs)
        return original(file, build_path=build_path, **kwargs)

    html.render_template_from = render_template_from
    return True


def _exit_now() -> None:
    """At the interpreter's exit, after Locust's own exit handlers (registered after this one's: its
    ``--processes`` workers reaped) and Locust's shutdown (results, reports and CSV files written and
    closed, the quit event fired with the exit code): the master of a run of the gate's generated
    locustfile flushes the logs and ends, skipping the interpreter's finalization (~60 ms of the gate's wait).
    Not after an unhandled exception, nor in a worker, nor for a user's own locustfile (whose objects may
    expect their finalizers)."""
    if not _exit_code or os.getpid() != _MASTER_PID or os.environ.get(FAST_EXIT_VAR) != "1" \
            or hasattr(sys, "last_value"):
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # ending anyway
            pass
    os._exit(_exit_code[0])


@events.init_command_line_parser.add_listener
def _options(parser: Any, **_: Any) -> None:
    parser.add_argument("--deploygate-read-only", env_var=READ_ONLY_VAR, default="", include_in_web_ui=False,
                        help="set by pytest-deploygate: why requests other than reads are refused")


@events.quit.add_listener
def _write_failures(**_: Any) -> None:
    """The run's final failures, next to its ``--json-file`` results, for the gate to find refusals in
    (Locust's failures CSV is refreshed once a second, so it can miss the last one, e.g. writes in on_stop)."""
    from locust.runners import WorkerRunner

    environment = _environment[0] if _environment else None
    prefix = getattr(environment.parsed_options, "json_file", None) if environment is not None else None
    if environment is None or not prefix or environment.runner is None or isinstance(environment.runner,
                                                                                       WorkerRunner):
        return  # workers send their failures to the master
    with open(f"{prefix}_failures.json", "w") as f:
        json.dump(list(environment.runner.stats.serialize_errors().values()), f)


@events.quit.add_listener
def _note_exit_code(exit_code: int = 0, **_: Any) -> None:
    _exit_code[:] = [int(exit_code)]


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    # after --processes forks: each process arms its own parent-death signal and watchdog
    _environment[:] = [environment]
    arm_watchdog()


_GATE_PID = _gate_pid()
_GATE_START = ""
if _GATE_PID is not None:
    _die_with_parent(_GATE_PID)  # the master, as early as possible (the gate is its parent)
    # the gate's start time, read while it is certainly alive: a reused pid is not the gate
    _GATE_START = (_stat(_GATE_PID) or ("", ""))[1]
atexit.register(_exit_now)  # before Locust registers its own: it runs after them
await_release()  # started ahead of its run: wait for it (dying with the gate meanwhile), then take its settings
events.test_start.add_listener(guard_if_read_only)
guard_if_read_only()
