"""The verdict table printed at the end of the terminal summary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..gate import FAIL, INCONCLUSIVE, INFO, NO_CHECKS, PASS, SKIP, WARN, MetricResult

if TYPE_CHECKING:  # pragma: no cover
    from ..run import GateRun

_MARKUP = {PASS: {"green": True}, WARN: {"yellow": True}, FAIL: {"red": True, "bold": True}, SKIP: {"yellow": True},
           INCONCLUSIVE: {"cyan": True}, NO_CHECKS: {"red": True, "bold": True}}
#: levels listed under the table, each with its figure
NOTABLE = (FAIL, WARN, INCONCLUSIVE)


def figure(m: MetricResult, code: bool = False) -> str:
    """``name{labels} 12.5 ms (fail if > 3000 ms)``: the figure against its limit (the key as Markdown
    code with ``code``)."""
    value = f"{m.value:.1f}" if m.unit in ("ms", "%") and m.value != int(m.value) else f"{m.value:g}"
    unit = f" {m.unit}" if m.unit else ""
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
    return f"{f'`{m.key}`' if code else m.key} {value}{unit}{limit}"


def tests_cell(t: dict[str, int]) -> str:
    """``8/9 (1 skipped)``: passed of run, and what was skipped."""
    return f"{t['passed']}/{t['passed'] + t['failed']}" + (f" ({t['skipped']} skipped)" if t["skipped"] else "")


def write_summary(tr: Any, run: GateRun) -> None:
    tw = tr._tw
    env = run.environment
    verdict = run.verdict
    if verdict is None and not run.error:
        return  # collect-only, or the session never got to judge
    tr.write_sep("=", f"deploygate: {env.name}", bold=True)
    if run.error or verdict is None:
        tr.write_line(f"deploygate: the gate could not be judged: {run.error}", red=True)
        return
    rows = []
    for name, cat in verdict.categories.items():
        metrics = [m for m in verdict.metrics if m.category == name]
        bad = [m for m in metrics if m.verdict in NOTABLE]
        judged = [m for m in metrics if m.verdict != INFO]
        shown = bad or judged[:3]
        figures = "; ".join(figure(m) for m in shown[:3])
        more = len(bad or judged) - len(shown[:3])
        if more > 0:
            figures += f"; +{more} more"
        rows.append((name, cat["verdict"], tests_cell(cat["tests"]), figures))
    width = max([len(r[0]) for r in rows] + [8])
    vwidth = max([len(r[1]) for r in rows] + [7])
    if rows:
        tw.line(f"{'category':<{width}}  {'verdict':<{vwidth}}  {'tests':<8}  key figures (limit)")
    else:
        tw.line("no check ran: nothing was selected (-m / -k / paths), or every check was skipped", red=True)
    for name, level, tests, figures in rows:
        tw.write(f"{name:<{width}}  ")
        tw.write(f"{level:<{vwidth}}", **_MARKUP.get(level, {}))
        tw.line(f"  {tests:<8}  {figures}")
    failures = [(f["nodeid"], f["reason"]) for c in verdict.categories.values() for f in c["failed_tests"]]
    for nodeid, reason in failures[:20]:
        tw.line(f"  FAILED {nodeid}: {reason}", red=True)
    for note in run.notes:
        tw.line(f"  note: {note}")
    serious = [f for f in run.findings if f["severity"] in ("CRITICAL", "HIGH", "MEDIUM", "MODERATE")]
    for f in serious[:15]:
        tw.line(f"  finding ({f['check']}): {f['text']}", red=f["severity"] in ("CRITICAL", "HIGH"))
    if len(serious) > 15:
        tw.line(f"  … {len(serious) - 15} more findings in the JSON report")
    breaches = [m for m in verdict.metrics if m.verdict in NOTABLE]
    for m in breaches[:20]:
        tw.line(f"  {m.verdict} {figure(m)}", **_MARKUP[m.verdict])
    blocked = verdict.failed
    label = f"GATE {verdict.verdict}" + (" (blocks promotion)" if blocked and verdict.verdict != FAIL else "")
    if run.report and run.report.get("interrupted"):
        label = f"GATE INTERRUPTED (partial verdict {verdict.verdict}; blocks promotion)"
    tw.write(label, **_MARKUP.get(verdict.verdict, {}))
    tw.line(f"  environment {env.name}; report {run.report_path}")
