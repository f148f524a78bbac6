"""The catalogue of built-in metric names: the one list the suites, the load runner, policy validation
and the README's metric table agree on.

Add a metric here in the same change that starts recording it (a threshold naming a metric that is not
catalogued is a configuration error). Names carry no labels (``smoke.health.latency_ms``, whatever its
``path``). Pure data and functions; no pytest import.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

#: The prefix of a user's own metrics; never checked against the catalogue.
CUSTOM_PREFIX = "custom."
#: The gate's categories, in the order the suites run and reports list them.
CATEGORIES = ("smoke", "crud", "isolation", "performance", "security")
#: The category of a test that carries no category marker.
OTHER = "other"


def category_of_metric(name: str) -> str:
    """A metric's category is the first part of its name: ``smoke`` for ``smoke.health.latency_ms``."""
    return name.split(".", 1)[0]


def category_of_test(keywords: Iterable[str]) -> str:
    """A test's category is its first category marker (``@pytest.mark.smoke``), else ``other``."""
    names = set(keywords)
    for category in CATEGORIES:
        if category in names:
            return category
    return OTHER


@dataclass(frozen=True)
class MetricInfo:
    """One built-in metric: its name (``category.name_unit``), unit and what it measures."""

    name: str
    unit: str
    description: str

    @property
    def category(self) -> str:
        return category_of_metric(self.name)


UNVERIFIED = "checks that could not verify (5xx, timeout, dropped connection): never a finding"

CATALOGUE: tuple[MetricInfo, ...] = (
    # smoke
    MetricInfo("smoke.health.latency_ms", "ms", "health endpoint response time (label path)"),
    MetricInfo("smoke.api.latency_ms", "ms", "API endpoint response time (label path)"),
    MetricInfo("smoke.frontend.latency_ms", "ms", "frontend page load time"),
    MetricInfo("smoke.frontend.missing_assets_count", "", "assets the page references that do not load"),
    MetricInfo("smoke.resources.dlq_depth_count", "",
               "messages waiting in a queue's dead-letter queue (label queue; resources.queues)"),
    MetricInfo("smoke.monitoring.alarms_in_alarm_count", "",
               "CloudWatch alarms in ALARM (label alarms: a name or prefix*; monitoring.alarms)"),
    MetricInfo("smoke.unverified_count", "", UNVERIFIED),
    # crud (label collection)
    MetricInfo("crud.lifecycle_ok", "", "1 when the whole create-read-update-delete cycle worked, else 0"),
    MetricInfo("crud.create_ms", "ms", "latency of the create (POST) step"),
    MetricInfo("crud.read_ms", "ms", "latency of reading the created record"),
    MetricInfo("crud.list_ms", "ms", "latency of listing the collection"),
    MetricInfo("crud.update_ms", "ms", "latency of the update step"),
    MetricInfo("crud.read_after_update_ms", "ms", "latency of reading the record back after the update"),
    MetricInfo("crud.delete_ms", "ms", "latency of the delete step"),
    MetricInfo("crud.read_after_delete_ms", "ms", "latency of the read that confirms the record is gone"),
    MetricInfo("crud.unverified_count", "", UNVERIFIED),
    # isolation
    MetricInfo("isolation.leaks_count", "", "records or settings that crossed environments (label check)"),
    MetricInfo("isolation.canaries_checked_count", "", "canary records looked for in a peer environment"),
    MetricInfo("isolation.foreign_token_accepted_count", "",
               "protected endpoints that took a token of a peer's user pool (labels peer, endpoint; auth.cognito)"),
    MetricInfo("isolation.unverified_count", "", UNVERIFIED),
    # performance (label mode=probe for the protected-environment probe)
    MetricInfo("performance.requests_count", "", "requests judged (after the warm-up)"),
    MetricInfo("performance.success_rate", "%", "share of requests that succeeded"),
    MetricInfo("performance.error_rate", "%", "share of requests that failed"),
    MetricInfo("performance.avg_ms", "ms", "average response time"),
    MetricInfo("performance.p50_ms", "ms", "median response time"),
    MetricInfo("performance.p95_ms", "ms", "95th percentile response time"),
    MetricInfo("performance.p99_ms", "ms", "99th percentile response time"),
    MetricInfo("performance.rps", "req/s", "requests per second over the load"),
    MetricInfo("performance.endpoint.requests_count", "", "requests to one endpoint (label endpoint)"),
    MetricInfo("performance.endpoint.failures_count", "", "failed requests to one endpoint (label endpoint)"),
    MetricInfo("performance.endpoint.avg_ms", "ms", "average response time of one endpoint (label endpoint)"),
    MetricInfo("performance.endpoint.p95_ms", "ms", "95th percentile response time of one endpoint"),
    MetricInfo("performance.unverified_count", "", UNVERIFIED),
    # security
    MetricInfo("security.bandit.high_count", "", "high-severity code findings (bandit)"),
    MetricInfo("security.bandit.medium_count", "", "medium-severity code findings (bandit)"),
    MetricInfo("security.bandit.low_count", "", "low-severity code findings (bandit)"),
    MetricInfo("security.bandit.allowlisted_count", "", "code findings accepted by the allowlist"),
    MetricInfo("security.audit.vulnerabilities_count", "", "known vulnerabilities in dependencies"),
    MetricInfo("security.audit.critical_count", "", "critical-severity dependency vulnerabilities"),
    MetricInfo("security.audit.high_count", "", "high-severity dependency vulnerabilities"),
    MetricInfo("security.audit.moderate_count", "", "moderate-severity dependency vulnerabilities"),
    MetricInfo("security.audit.medium_count", "", "medium-severity dependency vulnerabilities"),
    MetricInfo("security.audit.low_count", "", "low-severity dependency vulnerabilities"),
    MetricInfo("security.audit.unknown_count", "", "dependency vulnerabilities of unknown severity"),
    MetricInfo("security.audit.allowlisted_count", "", "dependency advisories accepted by the allowlist"),
    MetricInfo("security.audit.unaudited_count", "", "dependencies that could not be audited (never clean)"),
    MetricInfo("security.headers.missing_count", "", "missing or wrong security headers"),
    MetricInfo("security.cors.findings_count", "", "foreign origins the API grants credentials"),
    MetricInfo("security.auth.open_endpoints_count", "", "protected endpoints open to anonymous callers"),
    MetricInfo("security.auth.credential_refused_count", "",
               "protected endpoints that refuse the environment's configured auth (label endpoint)"),
    MetricInfo("security.errors.leaks_count", "",
               "stack traces or versions in error answers (label probe; or seen_in: a 5xx met by any other check)"),
    MetricInfo("security.tls.cert_days_left", "days", "days until the TLS certificate expires"),
    MetricInfo("security.frontend.secrets_count", "", "secret-looking values shipped to browsers"),
    MetricInfo("security.unverified_count", "", UNVERIFIED),
)

BY_NAME: dict[str, MetricInfo] = {m.name: m for m in CATALOGUE}


def is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def is_custom(name: str) -> bool:
    """A user's own metric (``custom.login_ms``): accepted by the policy without a declaration."""
    return name.startswith(CUSTOM_PREFIX)


def matches(pattern: str, names: tuple[str, ...] | list[str] | None = None) -> list[str]:
    """The catalogued (or given) names ``pattern`` covers: itself when exact, every match when a glob."""
    pool = list(BY_NAME) if names is None else list(names)
    if is_glob(pattern):
        return [n for n in pool if fnmatch.fnmatchcase(n, pattern)]
    return [pattern] if pattern in pool else []


def suggest(name: str, names: tuple[str, ...] | list[str] | None = None) -> str | None:
    """The closest known metric name to a misspelt ``name`` (difflib), or None."""
    pool = list(BY_NAME) if names is None else list(names)
    close = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    return close[0] if close else None


def markdown_table() -> str:
    """The README's metric table (``python -m pytest_deploygate.metrics`` prints it)."""
    rows = ["| metric | unit | what it measures |", "|---|---|---|"]
    rows += [f"| `{m.name}` | {m.unit or '—'} | {m.description} |" for m in CATALOGUE]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(markdown_table(), end="")
