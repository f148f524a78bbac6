"""Peak memory and wall time of a gate run against a hostile server (run: ``python bench/hostile.py``).

The server (tests/hostile.py, threads in this process on 127.0.0.1) answers the smoke endpoints with a
100 MB body (announced, and unannounced), a never-ending chunked answer, a body trickled one byte per
second, and a connection closed without an answer. The gate runs as a child ``pytest --env hostile -m
"gate and smoke"`` with the default http limits (10 MB, 30 s) unless told otherwise; its peak RSS comes
from ``os.wait4`` (the child's own rusage). A baseline run against a well-behaved endpoint is measured
the same way (``--baseline-repeat`` runs: median and range). Every run passes ``-p no:cacheprovider -p
no:hypothesispytest`` (hypothesis comes with the project's test extra, not with the plugin; its pytest plugin
alone costs ~0.5 s here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from hostile import HostileServer  # noqa: E402

HOSTILE = ["/big", "/big-unannounced", "/endless", "/trickle", "/close"]


def gate_run(url: str, endpoints: list[str], http: str, workdir: Path) -> dict[str, object]:
    (workdir / "deploygate.toml").write_text(
        f'[environments.hostile]\nbase_url = "{url}"\nhttp = {{ {http} }}\n'
        '[environments.hostile.smoke]\nhealth = [{ path = "/ok" }]\n'
        "endpoints = [" + ", ".join(f'{{ path = "{p}" }}' for p in endpoints) + "]\n")
    report = workdir / ".deploygate" / "report.json"
    report.unlink(missing_ok=True)
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                             "--env", "hostile", "-m", "gate and smoke"], cwd=workdir, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    took = time.monotonic() - start
    reasons: dict[str, str] = {}
    if report.exists():
        data = json.loads(report.read_text())
        for category in data["categories"].values():
            for failure in category["failed_tests"]:
                reasons[failure["nodeid"].rsplit("[", 1)[-1].rstrip("]")] = failure["reason"].split(": ", 1)[-1]
    return {"exit": proc.returncode, "seconds": took, "peak_rss_mb": usage.ru_maxrss / 1024, "reasons": reasons}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http", default="retries = 2",
                        help='extra http settings, e.g. "total_timeout_s = 10, max_body_bytes = 10000000"')
    parser.add_argument("--bound-mb", type=float, default=200.0, help="the stated peak RSS bound")
    parser.add_argument("--baseline-repeat", type=int, default=5, help="runs of the well-behaved baseline")
    args = parser.parse_args()
    server = HostileServer(interval_s=1.0)
    try:
        with tempfile.TemporaryDirectory(prefix="deploygate-hostile-") as tmp:
            bases = [gate_run(server.url, ["/ok"], args.http, Path(tmp)) for _ in range(max(1, args.baseline_repeat))]
            hostile = gate_run(server.url, HOSTILE, args.http, Path(tmp))
    finally:
        server.stop()
    print(f"{'run':<10} {'exit':>4} {'wall s':>7} {'peak RSS MB':>12}")
    for i, result in enumerate(bases):
        print(f"{'baseline':<10} {result['exit']:>4} {result['seconds']:>7.2f} {result['peak_rss_mb']:>12.1f}"
              + (f"  (run {i + 1})" if len(bases) > 1 else ""))
    print(f"{'hostile':<10} {hostile['exit']:>4} {hostile['seconds']:>7.2f} {hostile['peak_rss_mb']:>12.1f}")
    if len(bases) > 1:
        walls = [float(b["seconds"]) for b in bases]  # type: ignore[arg-type]
        peaks = [float(b["peak_rss_mb"]) for b in bases]  # type: ignore[arg-type]
        print(f"baseline median of {len(bases)}: {statistics.median(walls):.2f} s ({min(walls):.2f}-{max(walls):.2f}), "
              f"peak RSS {statistics.median(peaks):.1f} MB ({min(peaks):.1f}-{max(peaks):.1f})")
    for check, reason in sorted(dict(hostile["reasons"]).items()):  # type: ignore[call-overload]
        print(f"  {check}: {reason}")
    peak = float(hostile["peak_rss_mb"])  # type: ignore[arg-type]
    verdict = "within" if peak < args.bound_mb else "OVER"
    print(f"peak RSS {peak:.0f} MB: {verdict} the {args.bound_mb:g} MB bound")
    sys.exit(0 if peak < args.bound_mb else 1)


if __name__ == "__main__":
    main()
