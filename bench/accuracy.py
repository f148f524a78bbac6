"""Gate accuracy harness: the whole gate once per known fault of the reference deployment, and N times
healthy; prints the detection matrix (fault -> expected check -> caught?) and the false-alarm count.

    python bench/accuracy.py [--healthy 20] [--duration 5] [--busy]

``--busy`` keeps every core busy with a CPU burner (one ``yes`` per core, each bounded by ``timeout``)
for the whole harness: the verdict must not depend on the machine being idle.

Each run is a real ``pytest --env ENV -m gate`` session in a scratch project holding this repository's
deploygate.toml and thresholds.toml (load phase shortened to --duration seconds) plus the bench's additions
(``BENCH_CONFIG``, ``BENCH_THRESHOLDS``: the checks some faults need and the repository's gate does not declare),
against a freshly launched deployment. ``--faults a,b`` runs only those faults.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# fault, environment gated, the check that must catch it (test id fragment or metric), verdict expected
CASES = [
    ("health-down", "staging", "test_health[/health]", "FAIL"),
    ("slow", "staging", "smoke.health.latency_ms", "FAIL"),
    ("errors", "staging", "test_api_endpoint[/api/stories]", "FAIL"),
    ("wrong-config", "staging", "test_config_js", "FAIL"),
    ("frontend-broken", "staging", "test_frontend_assets", "FAIL"),
    ("leak", "staging", "test_canary_stays_here[prod]", "FAIL"),
    ("cors-wildcard", "prod", "test_cors_allows_only_own_origins", "FAIL"),
    ("tail-latency", "staging", "performance.p95_ms", "FAIL"),
    ("flaky", "staging", "performance.success_rate", "WARN"),
    ("insecure-code", "staging", "security.bandit.high_count", "FAIL"),
    ("vulnerable-deps", "staging", "security.audit.vulnerabilities_count", "FAIL"),
    ("no-security-headers", "staging", "test_security_headers", "FAIL"),
    ("cors-reflect", "prod", "test_cors_refuses_foreign_origins", "FAIL"),
    ("open-auth", "staging", "test_protected_endpoint_refuses_anonymous", "FAIL"),
    ("stack-trace", "staging", "test_errors_leak_nothing", "FAIL"),
    ("secret-in-config", "staging", "test_frontend_has_no_secrets", "FAIL"),
    ("auth-broken", "staging", "test_protected_endpoint_accepts_the_credential", "FAIL"),
    # issue 12: resource and monitoring probes, Cognito isolation, richer smoke checks, label thresholds
    ("dlq-not-empty", "staging", "smoke.resources.dlq_depth_count{queue=aipm-backend-staging-jobs}", "FAIL"),
    ("alarm-firing", "staging", "smoke.monitoring.alarms_in_alarm_count", "FAIL"),
    ("log-level-wrong", "prod", "test_function[aipm-backend-prod-api]", "FAIL"),
    ("foreign-token-accepted", "prod", "test_protected_endpoints_refuse_peer_pool_tokens[dev]", "FAIL"),
    ("pitr-off", "staging", "test_table_options[aipm-backend-staging-stories]", "FAIL"),
    ("function-missing", "staging", "test_function[aipm-backend-staging-api]", "FAIL"),
    ("slow-endpoint", "staging", "smoke.api.latency_ms{path=/api/acceptance-tests}", "FAIL"),
    ("health-degraded", "staging", "test_health[/health]", "FAIL"),
    ("graphql-errors", "staging", "test_api_endpoint[graphql]", "FAIL"),
]
#: the finding metrics a fault is about (any other finding metric it raises is misattributed)
ABOUT = {
    "wrong-config": ("isolation.leaks_count",),
    "leak": ("isolation.leaks_count",),
    "cors-wildcard": ("isolation.leaks_count", "security.cors.findings_count"),
    "cors-reflect": ("isolation.leaks_count", "security.cors.findings_count"),
    "no-security-headers": ("security.headers.missing_count",),
    "open-auth": ("security.auth.open_endpoints_count",),
    "auth-broken": ("security.auth.credential_refused_count",),
    "stack-trace": ("security.errors.leaks_count",),
    "secret-in-config": ("security.frontend.secrets_count",),
    "dlq-not-empty": ("smoke.resources.dlq_depth_count",),
    "alarm-firing": ("smoke.monitoring.alarms_in_alarm_count",),
    "foreign-token-accepted": ("isolation.foreign_token_accepted_count",),
}

#: What the bench adds to the repository's gate (in the scratch project only; the repository's own files, and
#: so the test suite's expected counts, stay as they are): the checks that catch health-degraded (the health
#: answer's JSON), graphql-errors (a GraphQL query) and slow-endpoint (one path's latency threshold). Each is
#: (text in the repository's file, what replaces it); a text that is no longer there stops the bench.
BENCH_CONFIG = [
    ('health = [{ path = "/health", status = 200 }]',
     'health = [{ path = "/health", status = 200, expect_json = { status = "ok", stage = "{stage}", '
     '"checks.dynamodb" = "ok" } }]'),
    ('    { path = "/api/acceptance-tests", status = 200, json = true },\n]',
     '    { path = "/api/acceptance-tests", status = 200, json = true },\n'
     '    { path = "/graphql", name = "graphql", graphql = { query = "{ stage health { status } }" }, '
     'expect_json = { "data.stage" = "{stage}", "data.health.status" = "ok" } },\n]'),
]
#: slow-endpoint adds 0.8 s to GET /api/acceptance-tests; healthy, its median is tens of ms even on a busy
#: machine: 400 ms is far from both (the name-wide default, fail > 3000, never sees the fault)
BENCH_THRESHOLDS = [
    ("[metrics]\n",
     '[metrics]\n"smoke.api.latency_ms{path=/api/acceptance-tests}" = { fail = "> 400", '
     'description = "bench: one path\'s own latency level (fault slow-endpoint)" }\n'),
]


def edited(path: Path, edits: list[tuple[str, str]]) -> str:
    text = path.read_text()
    for old, new in edits:
        if text.count(old) != 1:
            raise SystemExit(f"bench/accuracy.py: {path.name} no longer holds exactly one {old!r}: update BENCH_*")
        text = text.replace(old, new)
    return text


def project(work: Path, duration: float) -> Path:
    load = [("duration_s = 10", f"duration_s = {duration:g}"), ("warmup_s = 2", "warmup_s = 1")]
    (work / "deploygate.toml").write_text(edited(REPO / "deploygate.toml", load + BENCH_CONFIG))
    (work / "thresholds.toml").write_text(edited(REPO / "thresholds.toml", BENCH_THRESHOLDS))
    return work


def gate(work: Path, env: str, faults: str) -> tuple[dict, float]:  # type: ignore[type-arg]
    report = work / ".deploygate" / "report.json"
    report.unlink(missing_ok=True)
    environ = dict(os.environ, DEPLOYGATE_DEMO_FAULTS=faults)
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--env", env, "-m", "gate"]
    subprocess.run(cmd, cwd=work, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900,
                   check=False)
    return json.loads(report.read_text()), time.perf_counter() - started


#: metrics that claim a finding: a fault may only raise the ones it is about, and "could not check"
#: (5xx, timeouts, dropped connections) must never show up as one of these
FINDING_METRICS = ("isolation.leaks_count", "security.auth.open_endpoints_count", "security.cors.findings_count",
                   "security.auth.credential_refused_count", "isolation.foreign_token_accepted_count",
                   "smoke.resources.dlq_depth_count", "smoke.monitoring.alarms_in_alarm_count",
                   "security.headers.missing_count", "security.errors.leaks_count", "security.frontend.secrets_count")


@contextlib.contextmanager
def cpu_burner(enabled: bool, limit_s: int = 7200):  # type: ignore[no-untyped-def]
    """One busy loop per core for the duration of the block; each also ends by itself after ``limit_s``."""
    procs = []
    if enabled:
        timeout = shutil.which("timeout") or "timeout"
        procs = [subprocess.Popen([timeout, str(limit_s), "yes"], stdout=subprocess.DEVNULL)
                 for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()  # timeout passes SIGTERM on to its yes (SIGKILL would leave yes running)
            proc.wait()


def misattributed(report: dict, fault: str) -> list[str]:  # type: ignore[type-arg]
    """Finding metrics flagged although the fault is not about them (e.g. a 500 read as a leak)."""
    about = ABOUT.get(fault, ())
    return sorted({m["key"] for m in report["metrics"] if m["name"] in FINDING_METRICS
                   and m["verdict"] in ("FAIL", "WARN") and m["name"] not in about})


def unverified(report: dict) -> int:  # type: ignore[type-arg]
    """Checks that said they could not check (counted apart from findings)."""
    return int(sum(m["value"] for m in report["metrics"] if m["name"].endswith(".unverified_count")))


def findings(report: dict) -> dict[str, str]:  # type: ignore[type-arg]
    """Every failing test and every non-PASS metric of a report, with its level."""
    out = {f["nodeid"]: "FAIL" for c in report["categories"].values() for f in c["failed_tests"]}
    out.update({m["key"]: m["verdict"] for m in report["metrics"] if m["verdict"] in ("FAIL", "WARN", "INCONCLUSIVE")})
    return out


def keep(folder: Path | None, name: str, report: dict) -> None:  # type: ignore[type-arg]
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(report, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--healthy", type=int, default=20)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--busy", action="store_true", help="keep every core busy during the runs")
    parser.add_argument("--healthy-only", action="store_true", help="skip the fault matrix")
    parser.add_argument("--faults", default="", help="comma-separated faults to run (default: all)")
    parser.add_argument("--keep-reports", type=Path, metavar="DIR",
                        help="keep each run's report.json there (FAULT.json, healthy-N-ENV.json)")
    args = parser.parse_args()
    chosen = set(filter(None, args.faults.split(",")))
    unknown = chosen - {case[0] for case in CASES}
    if unknown:
        parser.error(f"unknown fault(s): {', '.join(sorted(unknown))}")
    cases = [case for case in CASES if not chosen or case[0] in chosen]
    with tempfile.TemporaryDirectory() as tmp, cpu_burner(args.busy):
        work = project(Path(tmp), args.duration)
        print(f"machine: {os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.1f}"
              + (" (CPU burner on every core)" if args.busy else ""))
        print(f"{'fault':<22} {'env':<8} {'expected check':<66} {'caught':<7} verdict  unverified  "
              "misattributed  also flagged")
        caught_count = wrong = 0
        for fault, env, check, level in ([] if args.healthy_only else cases):
            report, wall = gate(work, env, f"{env}:{fault}")
            keep(args.keep_reports, f"{fault}.json", report)
            found = findings(report)
            hits = [k for k, v in found.items() if check in k and v == level]
            caught = bool(hits) and report["verdict"] == level
            caught_count += caught
            bad = misattributed(report, fault)
            wrong += bool(bad)
            others = sorted({k.split("::")[-1].split("{")[0] for k in found if k not in hits})
            print(f"{fault:<22} {env:<8} {check:<66} {'yes' if caught else 'NO':<7} {report['verdict']:<8} "
                  f"{unverified(report):<11} {', '.join(bad) or '-':<14} {', '.join(others) or '-'}  ({wall:.0f} s)")
        alarms = []
        for i in range(args.healthy):
            env = ("staging", "dev", "prod")[i % 3]
            report, wall = gate(work, env, "")
            keep(args.keep_reports, f"healthy-{i + 1}-{env}.json", report)
            if report["verdict"] != "PASS":
                alarms.append(f"run {i + 1} ({env}): {report['verdict']}: {findings(report)}")
        if not args.healthy_only:
            print(f"\ncaught {caught_count}/{len(cases)} faults by the expected check; {wrong} with a misattributed "
                  "finding")
        print(f"false alarms: {len(alarms)} in {args.healthy} healthy runs (staging, dev, prod in turn); "
              f"load average at the end {os.getloadavg()[0]:.1f}")
        for alarm in alarms:
            print("  " + alarm)


if __name__ == "__main__":
    main()
