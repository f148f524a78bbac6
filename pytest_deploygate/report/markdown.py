"""The gate verdict as Markdown, from the report model (of a live run, or read back from its JSON file): for
a CI job summary (``--gate-markdown "$GITHUB_STEP_SUMMARY"``), a merge-request comment, or ``deploygate report``."""

from __future__ import annotations

from .model import NOTABLE, GateReport
from .terminal import figure, tests_cell

_ICON = {"PASS": "✅", "WARN": "⚠️", "FAIL": "❌", "ERROR": "⛔", "INTERRUPTED": "⛔", "SKIP": "⏭️",
         "INCONCLUSIVE": "❔", "NO CHECKS": "⛔", "RUNNING": "⏳"}


def _cell(text: object) -> str:
    """A table cell: pipes escaped, one line."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(report: GateReport) -> str:
    """Heading with the verdict, a category table, then what failed or warned (at most 20 lines each)."""
    verdict = report.verdict
    lines = [f"## {_ICON.get(verdict, '')} deploygate: {report.env_name} — GATE {verdict}".replace("  ", " "), ""]
    if report.interrupted:
        lines += [f"The run was interrupted: partial verdict {report.partial_verdict}; blocks promotion.", ""]
    if report.error:
        lines += [f"The gate could not run: {_cell(report.error)}", ""]
    if verdict == "NO CHECKS":
        lines += ["No check ran (nothing selected, or every check skipped): blocks promotion.", ""]
    metrics = report.metrics
    if report.categories:
        lines += ["| category | verdict | tests | breaches |", "|---|---|---|---|"]
        for cat, info in report.categories.items():
            bad = [m for m in metrics if m.category == cat and m.verdict in NOTABLE]
            figures = "; ".join(figure(m, code=True) for m in bad[:3]) + (" …" if len(bad) > 3 else "")
            lines.append(f"| {_cell(cat)} | {_ICON.get(info['verdict'], '')} {info['verdict']} "
                         f"| {tests_cell(info['tests'])} | {_cell(figures)} |")
        lines.append("")
    failed = report.failed_tests()
    if failed:
        lines += ["**Failed checks**", ""]
        lines += [f"- `{nodeid}`: {_cell(reason)}" for nodeid, reason in failed[:20]]
        if len(failed) > 20:
            lines.append(f"- … {len(failed) - 20} more in the JSON report")
        lines.append("")
    breaches = [m for m in metrics if m.verdict in NOTABLE]
    if breaches:
        lines += ["**Thresholds breached**", ""]
        lines += [f"- {m.verdict} {figure(m, code=True)}" for m in breaches[:20]]
        if len(breaches) > 20:
            lines.append(f"- … {len(breaches) - 20} more in the JSON report")
        lines.append("")
    counts = report.tests
    tail = f"{counts.get('passed', 0)} passed, {counts.get('failed', 0)} failed, {counts.get('skipped', 0)} skipped"
    lines.append(" · ".join(p for p in (tail, f"run `{report.run_id}`" if report.run_id else "",
                                        f"{report.duration_s} s" if report.judged and report.duration_s else "")
                            if p))
    return "\n".join(lines).rstrip() + "\n"
