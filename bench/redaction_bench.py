"""What redaction costs: ``redact`` on texts of report size and larger, and the log record factory per record.

``python bench/redaction_bench.py`` prints a Markdown table (see bench/README.md).
"""

from __future__ import annotations

import logging
import time

from pytest_deploygate.redaction import redact, redact_record

SECRETS = frozenset({
    "dgplant-7f3a9c1e5b2d4f6a8c0e1d3b5a7f9c1d",  # an API token
    "https://hooks.example/services/T000/B000/XXXXSECRETXXXX",  # a webhook URL
    "FwoGZXIvYXdzEJr" + "Q" * 600,  # an AWS session token (they run to hundreds of characters)
})
LINE = "PASSED test_smoke.py::test_api_endpoint[/api/stories] GET http://127.0.0.1:40843/api/stories 200 12 ms\n"


def best_of(fn: object, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    redact("warm-up", SECRETS)
    print("| input | time | throughput |")
    print("|---|---|---|")
    for size in (10_000, 1_000_000, 10_000_000):
        text = (LINE * (size // len(LINE) + 1))[:size]
        t = best_of(lambda text=text: redact(text, SECRETS))
        print(f"| {size / 1e6:g} MB of report text, no secret | {t * 1000:.1f} ms | {size / t / 1e6:.0f} MB/s |")
    text = (LINE * 10_000)[:1_000_000]
    text = text[:500_000] + "Bearer dgplant-7f3a9c1e5b...a7f9c1d" + text[500_000:]
    t = best_of(lambda: redact(text, SECRETS))
    print(f"| 1 MB with a truncated secret | {t * 1000:.1f} ms | {1 / t:.0f} MB/s |")
    n = 10_000

    def records() -> None:
        for i in range(n):
            record = logging.LogRecord("app", logging.INFO, __file__, 1, "request %s took %d ms", (LINE, i), None)
            redact_record(record, SECRETS)

    t = best_of(records, 3)
    print(f"| log record (message formatted and redacted) | {t / n * 1e6:.1f} µs per record | |")


if __name__ == "__main__":
    main()
