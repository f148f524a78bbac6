"""The verdict table printed at the end of the terminal summary, from the report model, through the
terminal reporter's public API (``write_sep``, ``write``, ``write_line``)."""

from __future__ import annotations

from typing import Any

from ..gate import FAIL, INCONCLUSIVE, INFO, NO_CHECKS, PASS, SKIP, WARN, MetricResult, format_value
from .model import NOTABLE, GateReport

_MARKUP = {PASS: {"green": True}, WARN: {"yellow": True}, FAIL: {"red": True, "bold": True}, SKIP: {"yellow": True},
           INCONCLUSIVE: {"cyan": True}, NO_CHECKS: {"red": True, "bold": True}}


def figure(m: MetricResult, code: bool = False) -> str:
    """``name{labels} 12.5 ms (fail if > 3000 ms)``: the figure against its limit (the key as Markdown
    code with ``code``). The one way a metric is quoted in the terminal, Markdown and the webhook."""
    if m.verdict in (WARN, FAIL):
        limit = f" ({m.verdict.lower()} level {m.limit}{m.evidence})"
    elif m.verdict == INCONCLUSIVE:
        limit = f" (cannot tell against {m.limit}{m.evidence})"
    elif m.limit:
        limit = f" (fail if {m.limit})"
    elif m.threshold:
        limit = f" ({m.threshold})"
    else:
        limit = ""
    return f"{f'`{m.key}`' if code else m.key} {format_value(m.value, m.unit)}{limit}"


def tests_cell(t: Any) -> str:
    """``8/9 (1 skipped)``: passed of run, and what was skipped; ``—`` for a category no check belongs to (its
    metrics only)."""
    if not (t["passed"] or t["failed"] or t["skipped"]):
        return "—"
    return f"{t['passed']}/{t['passed'] + t['failed']}" + (f" ({t['skipped']} skipped)" if t["skipped"] else "")


#: the figures cell of a category whose metrics no threshold judged (verdict INFO)
RECORDED = "recorded, no threshold"


def by_category(report: GateReport) -> dict[str, list[MetricResult]]:
    """The report's metrics by category, in order (one pass: a report may hold 10k metrics)."""
    grouped: dict[str, list[MetricResult]] = {}
    for m in report.metrics:
        grouped.setdefault(m.category, []).append(m)
    return grouped


tests_cell.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test, when imported into a test module


def write_summary(tr: Any, report: GateReport | None, error: str | None, env_name: str,
                  report_path: object = None) -> None:
    """The gate's section of the terminal summary: a line per category, what failed, notes, findings,
    breaches, and the verdict line."""
    if report is None and not error:
        return  # collect-only, or the session never got to judge
    tr.write_sep("=", f"deploygate: {env_name}", bold=True)
    if report is None or not report.judged:
        tr.write_line(f"deploygate: the gate could not be judged: {error or (report.error if report else '')}",
                      red=True)
        return
    rows = []
    grouped = by_category(report)
    for name, cat in report.categories.items():
        metrics = grouped.get(name, [])
        bad = [m for m in metrics if m.verdict in NOTABLE]
        judged = [m for m in metrics if m.verdict != INFO]
        # a category of recorded metrics only: what was recorded, said as such (it judged nothing)
        listed = bad or judged or (metrics if cat["verdict"] == INFO else [])
        figures = "; ".join(figure(m) for m in listed[:3])
        if len(listed) > 3:
            figures += f"; +{len(listed) - 3} more"
        if cat["verdict"] == INFO:
            figures = f"{RECORDED}: {figures}"
        rows.append((name, cat["verdict"], tests_cell(cat["tests"]), figures))
    width = max([len(r[0]) for r in rows] + [8])
    vwidth = max([len(r[1]) for r in rows] + [7])
    if rows:
        tr.write_line(f"{'category':<{width}}  {'verdict':<{vwidth}}  {'tests':<8}  key figures (limit)")
    else:
        tr.write_line("no check ran: nothing was selected (-m / -k / paths), or every check was skipped", red=True)
    for name, level, tests, figures in rows:
        tr.write(f"{name:<{width}}  ")
        tr.write(f"{level:<{vwidth}}", **_MARKUP.get(level, {}))
        tr.write_line(f"  {tests:<8}  {figures}")
    for nodeid, reason in report.failed_tests()[:20]:
        tr.write_line(f"  FAILED {nodeid}: {reason}", red=True)
    for note in report.notes:
        tr.write_line(f"  note: {note}")
    serious = [f for f in report.findings if f["severity"] in ("CRITICAL", "HIGH", "MEDIUM", "MODERATE")]
    for f in serious[:15]:
        tr.write_line(f"  finding ({f['check']}): {f['text']}", red=f["severity"] in ("CRITICAL", "HIGH"))
    if len(serious) > 15:
        tr.write_line(f"  … {len(serious) - 15} more findings in the JSON report")
    breaches = [m for m in report.metrics if m.verdict in NOTABLE]
    for m in breaches[:20]:
        tr.write_line(f"  {m.verdict} {figure(m)}", **_MARKUP[m.verdict])
    tr.write_line(report.counts_line())
    cases = _gate_cases_counted(report)
    if cases:
        tr.write_line(f"  (pytest's own count below includes the gate's {cases})")
    level = report.judged_verdict
    label = f"GATE {level}" + (" (blocks promotion)" if report.blocks(level) and level != FAIL else "")
    if report.interrupted:
        label = f"GATE INTERRUPTED (partial verdict {level}; blocks promotion)"
    tr.write(label, **_MARKUP.get(level, {}))
    where = f"; report {report_path}" if report_path else ""
    tr.write_line(f"  environment {report.env_name}{where}")
    tr.write_line(report.promotion(), **({"red": True, "bold": True} if report.blocks_promotion else {"green": True}))


def _gate_cases_counted(report: GateReport) -> str:
    """What pytest's failed count holds besides the checks: the failed threshold cases (the verdict case is
    in JUnit and Allure, not in pytest's count: the exit status and this summary say the verdict)."""
    failed = sum(1 for _m, blocks in report.thresholds_judged() if blocks)
    return f"{failed} failed threshold case{'s' if failed != 1 else ''}" if failed else ""
