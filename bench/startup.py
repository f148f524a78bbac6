"""Start-up and end-to-end cost of the gate (run: ``python bench/startup.py [--repeat N]``).

Prints medians of: plugin import overhead on ``pytest --co -q``, config loading with ``--env``,
reference deployment start + stop, and a whole healthy smoke gate run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], cwd: Path, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "test_trivial.py").write_text("def test_ok():\n    pass\n")
        (work / "deploygate.toml").write_text((REPO / "deploygate.toml").read_text())
        base = [py, "-m", "pytest", "-p", "no:cacheprovider", "--co", "-q"]
        without = timed([*base, "-p", "no:deploygate", "test_trivial.py"], work, args.repeat)
        with_plugin = timed([*base, "test_trivial.py"], work, args.repeat)
        with_env = timed([*base, "--env", "staging", "test_trivial.py"], work, args.repeat)
        print(f"pytest --co -q, plugin disabled      {without * 1000:8.0f} ms")
        print(f"pytest --co -q, plugin loaded        {with_plugin * 1000:8.0f} ms "
              f"(+{(with_plugin - without) * 1000:.0f} ms)")
        print(f"pytest --co -q --env staging         {with_env * 1000:8.0f} ms "
              f"(+{(with_env - without) * 1000:.0f} ms: config + thresholds)")

        sys.path.insert(0, str(REPO))
        from pytest_deploygate.demo.faults import parse_faults
        from pytest_deploygate.demo.launcher import Demo

        stages = {"dev": "dev", "staging": "staging", "prod": "prod"}
        starts, stops = [], []
        for i in range(max(3, args.repeat // 2)):
            t0 = time.perf_counter()
            demo = Demo.start(stages, parse_faults("", stages), work / f"demo{i}")
            t1 = time.perf_counter()
            demo.stop()
            starts.append(t1 - t0)
            stops.append(time.perf_counter() - t1)
        print(f"reference deployment start (3 envs)  {statistics.median(starts) * 1000:8.0f} ms")
        print(f"reference deployment stop            {statistics.median(stops) * 1000:8.0f} ms")

        gate = timed([py, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--env", "staging", "-m", "gate",
                      "--no-builtin-suites", str(REPO / "suites")], work, max(3, args.repeat // 2))
        print(f"whole smoke gate run (staging)       {gate * 1000:8.0f} ms")


if __name__ == "__main__":
    main()
