"""What redaction costs: ``redact`` on texts of report size and larger, and the log record factory per record.

``python bench/redaction_bench.py [TREE]`` prints a Markdown table (see bench/README.md); with TREE (a source
tree holding ``pytest_deploygate``, e.g. ``git worktree add /tmp/before HEAD~1``) that tree's code is measured
instead of the installed one, so two trees can be run in turn (A B A B).
"""

from __future__ import annotations

import base64
import logging
import random
import sys
import time
from collections.abc import Callable

SECRETS = frozenset({
    "dgplant-7f3a9c1e5b2d4f6a8c0e1d3b5a7f9c1d",  # an API token
    "https://hooks.example/services/T000/B000/XXXXSECRETXXXX",  # a webhook URL
    "FwoGZXIvYXdzEJr" + "Q" * 600,  # an AWS session token (they run to hundreds of characters)
})
#: a long secret with hundreds of distinct pieces, as a real session token has (600 random base64 characters)
SESSION = "FwoGZXIvYXdzEJr" + base64.b64encode(random.Random(1).randbytes(450)).decode()
TOKEN = frozenset({"Zk3pQ9vX2mL7rT4wB8nY1cF6"})  # one API token: what bench/scale.py's run holds


def report_text(size: int) -> str:
    """Lines as a gate's output has them, each different (paths, ports and timings vary)."""
    lines, total, i = [], 0, 0
    while total < size:
        line = (f"PASSED test_smoke.py::test_api_endpoint[/api/items/{i}] GET http://127.0.0.1:{40000 + i % 997}"
                f"/api/items/{i} 200 {i % 97} ms\n")
        lines.append(line)
        total += len(line)
        i += 1
    return "".join(lines)[:size]


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    if len(sys.argv) > 1:
        tree = sys.argv[1]
        sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
        sys.path.insert(0, tree)
    import pytest_deploygate
    from pytest_deploygate.redaction import redact, redact_record

    print(f"tree: {pytest_deploygate.__file__}")
    many = SECRETS | {SESSION}
    redact("warm-up", many)
    redact("warm-up", TOKEN)
    print("| input | secrets | time | throughput |")
    print("|---|---|---|---|")
    for size in (10_000, 1_000_000, 10_000_000):
        text = report_text(size)
        t = best_of(lambda text=text: redact(text, many))
        print(f"| {size / 1e6:g} MB of report text, no secret | four (two long) | {t * 1000:.1f} ms "
              f"| {size / t / 1e6:.0f} MB/s |")
    text = report_text(1_000_000)
    cut = text[:500_000] + "Bearer dgplant-7f3a9c1e5b...a7f9c1d" + text[500_000:]
    t = best_of(lambda: redact(cut, many))
    print(f"| 1 MB with a truncated secret | four (two long) | {t * 1000:.1f} ms | {1 / t:.0f} MB/s |")
    t = best_of(lambda: redact(text, TOKEN))
    print(f"| 1 MB of report text, no secret | one token | {t * 1000:.1f} ms | {1 / t:.0f} MB/s |")
    blob = base64.b64encode(random.Random(2).randbytes(750_000)).decode()  # one run of piece characters
    t = best_of(lambda: redact(blob, many), 3)
    print(f"| 1 MB of base64, no secret (worst case) | four (two long) | {t * 1000:.1f} ms | {1 / t:.0f} MB/s |")
    n = 10_000
    line = report_text(120).rstrip()

    def records() -> None:
        for i in range(n):
            record = logging.LogRecord("app", logging.INFO, __file__, 1, "request %s took %d ms", (line, i), None)
            redact_record(record, many)

    t = best_of(records, 3)
    print(f"| log record (message formatted and redacted) | four (two long) | {t / n * 1e6:.1f} µs per record | |")


if __name__ == "__main__":
    main()
