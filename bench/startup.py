"""Start-up and end-to-end cost of the gate (run: ``python bench/startup.py [--repeat N]``).

Each start-up figure is a pair of commands run in turn (A B A B ..., after one warm-up of each), so a
drift of a shared machine hits both alike; printed as the median of A, of B, and of the ratio A/B pair
by pair, with its min-max range:

* the plugin installed but inactive: ``pytest --co -q`` vs the same with ``-p no:deploygate``;
* the plugin active: ``pytest --co -q --env staging --no-builtin-suites`` (configuration and thresholds
  loaded, the RUNNING report written) vs the same without the plugin.

Then the reference deployment (3 environments), in this process: its start (and the CPU it took: this
process's, the fork server's and that of the servers it forked, read once it started), the first ``GET /health`` of
each environment right after it (a new connection: what the gate's first smoke check meets) against the
same once warm, and its stop (``--launch-only``: these alone; with ``PYTHONPATH`` naming another tree
first, that tree's launcher). Last, a whole healthy smoke gate run: ``pytest --env staging -m "gate and
smoke"`` (the built-in suites' smoke checks only; start-up, launch, checks, verdict, teardown).
``--without-serverless``: the deployment without its serverless resources (tables, buckets, APIs, OSV).

Every command passes ``-p no:cacheprovider -p no:hypothesispytest`` (hypothesis comes with the project's
test extra, not with the plugin, and its pytest plugin alone costs ~0.4 s here).

Start-up, the plugin's modules come from the installation of the Python that runs this script: this checkout's
editable install (pytest assertion-rewrites only the fixtures module, named in ``pytest_plugins``), or a wheel
installed into another venv (``/tmp/venv/bin/python bench/startup.py --startup-only``: pytest marks the whole
package for rewriting; the plugin narrows the mark to the built-in suites once its hooks are loaded, and the rest
loads from the ``.pyc`` the install wrote); or, with ``PYTHONPATH`` naming a tree, from that tree (marked like a
wheel, but no ``.pyc`` to load: compiled in every run without a cache). ``--tree BEFORE --tree NOW`` adds the same
two commands run from each tree in turn (both through ``PYTHONPATH``); ``--python BEFORE --python NOW``, from two
interpreters (two venvs, each with its own wheel install). Without a bytecode cache (``PYTHONDONTWRITEBYTECODE=1``,
or a read-only site-packages) every run compiles (and rewrites) what it imports that has no ``.pyc``;
``--cached`` lets the children write the cache (all of it, in a directory of the bench's own:
``PYTHONPYCACHEPREFIX``) and warms it up first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAST_OUTPUT: list[str] = []


def _once(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 5):  # a figure of a run that failed would measure something else
        raise SystemExit(f"{' '.join(cmd)}: exit {done.returncode}\n{done.stdout[-3000:]}")
    LAST_OUTPUT[:] = [done.stdout]
    return elapsed


def paired(a: list[str], b: list[str], cwd: Path, repeat: int, env_a: dict[str, str] | None = None,
           env_b: dict[str, str] | None = None) -> tuple[float, float, list[float]]:
    """Medians of A and B and the ratios A/B, run in turn after one warm-up of each (with their own
    environments, when given)."""
    _once(a, cwd, env_a)
    _once(b, cwd, env_b)
    times_a, times_b = [], []
    for _ in range(repeat):
        times_a.append(_once(a, cwd, env_a))
        times_b.append(_once(b, cwd, env_b))
    ratios = [x / y for x, y in zip(times_a, times_b, strict=True)]
    return statistics.median(times_a), statistics.median(times_b), ratios


def timed(cmd: list[str], cwd: Path, repeat: int) -> list[float]:
    return [_once(cmd, cwd) for _ in range(repeat)]


def _line(label: str, a: float, b: float, ratios: list[float]) -> str:
    return (f"{label:<44} {a * 1000:6.0f} ms vs {b * 1000:4.0f} ms  {(a - b) * 1000:+4.0f} ms  "
            f"x{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")


def _get_ms(url: str) -> float:
    """One GET on a new connection, connect included (what a gate's first check pays)."""
    import urllib.request

    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as answer:
        answer.read()
    return (time.perf_counter() - start) * 1000


def without_serverless() -> None:
    """The reference deployment as it was before the serverless resources (issue 12): tables, buckets, the APIs
    and OSV only; the bench replaces the serverless provisioning by nothing and loads only those backends."""
    from pytest_deploygate.demo import launcher

    serverless = getattr(launcher, "serverless", None)
    if serverless is not None:
        for name in ("provision", "wire", "table_options", "bucket_options"):  # whichever the tree has
            if hasattr(serverless, name):
                setattr(serverless, name, lambda *args, **kwargs: None)
        if hasattr(serverless, "tasks"):
            serverless.tasks = lambda env: ([], [])
    if hasattr(launcher, "MOTO_BACKENDS"):
        launcher.MOTO_BACKENDS = ("dynamodb", "s3")
        launcher.PROVISIONED_SERVICES = ("dynamodb", "s3")


def launch(work: Path, repeat: int) -> None:
    """The reference deployment (3 environments) started in this process, then the first GET /health of each
    environment right after the start returned (what the gate's first smoke check meets), then 10 more each
    (warm), then the stop. With PYTHONPATH naming another tree first, that tree's launcher is measured."""
    from pytest_deploygate.demo import launcher
    from pytest_deploygate.demo.faults import parse_faults

    stages = {"dev": "dev", "staging": "staging", "prod": "prod"}
    starts, stops, first, warm = [], [], [], []
    cpu: list[tuple[float, float, float]] = []  # per launch: the fork server, the servers it forked, this process
    for i in range(repeat):
        c0 = _own_cpu()
        t0 = time.perf_counter()
        demo = launcher.Demo.start(stages, parse_faults("", stages), work / f"demo{i}")
        t1 = time.perf_counter()
        c1 = _own_cpu()
        try:
            parent = demo.state.get("forkserver_pid")
            used = {pid: _process_cpu(pid) for pid in demo.pids}  # what they used up to now: their start
            cpu.append((used.get(parent, 0.0), sum(v for p, v in used.items() if p != parent), c1 - c0))
            urls = [e["api_url"] + "/health" for e in demo.environments.values()]
            first += [_get_ms(u) for u in urls]
            warm += [statistics.median(_get_ms(u) for _ in range(10)) for u in urls]
        finally:
            t2 = time.perf_counter()
            demo.stop()
        starts.append(t1 - t0)
        stops.append(time.perf_counter() - t2)
    print(f"launcher: {Path(launcher.__file__).parent}; {repeat} launches")
    print(f"reference deployment start (3 envs)          {statistics.median(starts) * 1000:6.0f} ms "
          f"({min(starts) * 1000:.0f}-{max(starts) * 1000:.0f})")
    print(f"first GET /health after start, per env       {statistics.median(first):6.1f} ms "
          f"({min(first):.1f}-{max(first):.1f})")
    print(f"GET /health once warm (median of 10), per env {statistics.median(warm):5.1f} ms "
          f"({min(warm):.1f}-{max(warm):.1f})")
    print(f"reference deployment stop                    {statistics.median(stops) * 1000:6.0f} ms "
          f"({min(stops) * 1000:.0f}-{max(stops) * 1000:.0f})")
    totals = [sum(c) for c in cpu]
    print(f"CPU of a start: {statistics.median(totals):.2f} CPU-s ({min(totals):.2f}-{max(totals):.2f}): fork server "
          + ", servers it forked ".join(f"{statistics.median(c[k] for c in cpu):.2f}" for k in (0, 1))
          + f", this process {statistics.median(c[2] for c in cpu):.2f} (medians)")


def _own_cpu() -> float:
    """CPU seconds of this process, every thread."""
    import resource

    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _process_cpu(pid: int) -> float:
    """CPU seconds a live process used (Linux ``/proc``; a forked child counts from its fork)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def startup(base: list[str], without: list[str], work: Path, repeat: int, trees: list[str], cached: bool,
            pythons: list[str] | None = None) -> None:
    """The start-up pairs: with the plugin vs without it, inactive and active; then, given two trees (or two
    interpreters), each command from one vs the other."""
    env = dict(os.environ)
    if cached:  # in a cache of the bench's own (PYTHONPYCACHEPREFIX): nothing written into a tree or the venv
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    where = (f"PYTHONPATH={env['PYTHONPATH']}" if env.get("PYTHONPATH")
             else "this checkout" if Path(base[0]).is_relative_to(REPO) else f"the install of {base[0]}")
    print(f"{repeat} pairs each, in turn after a warm-up; medians, ratio median (min-max); plugin from {where}; "
          + ("bytecode cached" if cached else "no bytecode cache (PYTHONDONTWRITEBYTECODE=1)"))
    inactive = [*base, "test_trivial.py"]
    active = [*base, "--env", "staging", "--no-builtin-suites", "test_trivial.py"]
    if cached:  # write the caches (the plugin's modules, pytest's rewritten copies) before anything is counted
        for cmd in (inactive, active, without):
            _once(cmd, work, env)
    a, b, r = paired(inactive, without, work, repeat, env, env)
    print(_line("pytest --co -q, plugin inactive (no --env)", a, b, r))
    a, b, r = paired(active, without, work, repeat, env, env)
    print(_line("pytest --co -q --env staging --no-builtin-suites", a, b, r))
    if pythons:
        pair_pythons(base, without, work, repeat, pythons, env, cached)
    if not trees:
        return
    if len(trees) != 2:
        raise SystemExit("--tree: give two trees, BEFORE then NOW")
    before, now = ({**env, "PYTHONPATH": str(Path(t).resolve())} for t in trees)
    print(f"NOW ({trees[1]}) vs BEFORE ({trees[0]}), each through PYTHONPATH")
    if cached:
        for tree_env in (before, now):
            for cmd in (inactive, active):
                _once(cmd, work, tree_env)
    for label, cmd in (("inactive", inactive), ("active", active)):
        a, b, r = paired(cmd, cmd, work, repeat, now, before)
        print(_line(f"{label}: now vs before", a, b, r))
    for label, tree_env in (("before", before), ("now", now)):
        for what, cmd in (("inactive", inactive), ("active", active)):
            a, b, r = paired(cmd, without, work, repeat, tree_env, tree_env)
            print(_line(f"{label}, {what} vs -p no:deploygate", a, b, r))


def pair_pythons(base: list[str], without: list[str], work: Path, repeat: int, pythons: list[str],
                 env: dict[str, str], cached: bool) -> None:
    """``--python BEFORE --python NOW``: the start-up commands run by each interpreter (its own install of the
    plugin) in turn, and each against its own ``-p no:deploygate``."""
    if len(pythons) != 2:
        raise SystemExit("--python: give two interpreters, BEFORE then NOW")
    inactive = [*base, "test_trivial.py"]
    active = [*base, "--env", "staging", "--no-builtin-suites", "test_trivial.py"]
    before, now = (({"inactive": [py, *inactive[1:]], "active": [py, *active[1:]], "without": [py, *without[1:]]})
                   for py in pythons)
    print(f"NOW ({pythons[1]}) vs BEFORE ({pythons[0]})")
    if cached:
        for cmds in (before, now):
            for cmd in cmds.values():
                _once(cmd, work, env)
    for label in ("inactive", "active"):
        a, b, r = paired(now[label], before[label], work, repeat, env, env)
        print(_line(f"{label}: now vs before", a, b, r))
    for name, cmds in (("before", before), ("now", now)):
        for label in ("inactive", "active"):
            a, b, r = paired(cmds[label], cmds["without"], work, repeat, env, env)
            print(_line(f"{name}, {label} vs -p no:deploygate", a, b, r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--gate-repeat", type=int, default=3, help="runs of the whole smoke gate")
    parser.add_argument("--startup-only", action="store_true", help="only the two start-up pairs")
    parser.add_argument("--launch-only", action="store_true",
                        help="only the reference deployment's launch, first requests and stop")
    parser.add_argument("--without-serverless", action="store_true",
                        help="launch without the serverless resources (tables, buckets, APIs, OSV only)")
    parser.add_argument("--tree", action="append", default=[], metavar="DIR",
                        help="twice, BEFORE then NOW: also pair the start-up commands across the two trees")
    parser.add_argument("--python", action="append", default=[], metavar="PY",
                        help="twice, BEFORE then NOW: also pair the start-up commands across two interpreters "
                             "(two venvs, each with the plugin installed)")
    parser.add_argument("--cached", action="store_true",
                        help="start-up with a bytecode cache (the children may write it; warmed up first)")
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "test_trivial.py").write_text("def test_ok():\n    pass\n")
        (work / "deploygate.toml").write_text((REPO / "deploygate.toml").read_text())
        base = [py, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--co", "-q"]
        without = [*base, "-p", "no:deploygate", "test_trivial.py"]
        if args.without_serverless:
            without_serverless()
        if args.launch_only:
            launch(work, args.repeat)
            return
        startup(base, without, work, args.repeat, args.tree, args.cached, args.python)
        if args.startup_only:
            return

        launch(work, max(3, args.repeat // 2))
        if args.launch_only:
            return

        # the built-in suites (no path given), smoke checks only: the scheduled production smoke run's shape
        gate = timed([py, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q",
                      "--env", "staging", "-m", "gate and smoke"], work, args.gate_repeat)
        print(f"whole smoke gate run (-m 'gate and smoke')   {statistics.median(gate) * 1000:6.0f} ms "
              f"({min(gate) * 1000:.0f}-{max(gate) * 1000:.0f})")
        print("  its last run: " + LAST_OUTPUT[0].strip().splitlines()[-1])


if __name__ == "__main__":
    main()
