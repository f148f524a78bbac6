"""The gate verdict as Markdown, rendered from the JSON report: for a CI job summary
(``--gate-markdown "$GITHUB_STEP_SUMMARY"``), a merge-request comment, or ``deploygate report``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..gate import MetricResult
from .terminal import figure, tests_cell

_ICON = {"PASS": "✅", "WARN": "⚠️", "FAIL": "❌", "ERROR": "⛔", "INTERRUPTED": "⛔", "SKIP": "⏭️",
         "INCONCLUSIVE": "❔", "NO CHECKS": "⛔", "RUNNING": "⏳"}
_NOTABLE = ("FAIL", "WARN", "INCONCLUSIVE")


def _cell(text: object) -> str:
    """A table cell: pipes escaped, one line."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Mapping[str, Any]) -> str:
    """Heading with the verdict, a category table, then what failed or warned (at most 20 lines each)."""
    verdict = str(report.get("verdict", "?"))
    env = report.get("environment", {})
    name = env.get("name", "?") if isinstance(env, Mapping) else env
    lines = [f"## {_ICON.get(verdict, '')} deploygate: {name} — GATE {verdict}".replace("  ", " "), ""]
    if report.get("interrupted"):
        lines += [f"The run was interrupted: partial verdict {report.get('partial_verdict')}; blocks promotion.", ""]
    if report.get("error"):
        lines += [f"The gate could not run: {_cell(report['error'])}", ""]
    if verdict == "NO CHECKS":
        lines += ["No check ran (nothing selected, or every check skipped): blocks promotion.", ""]
    categories: Mapping[str, Any] = report.get("categories") or {}
    metrics = [MetricResult(**m) for m in report.get("metrics") or []]
    if categories:
        lines += ["| category | verdict | tests | breaches |", "|---|---|---|---|"]
        for cat, info in categories.items():
            bad = [m for m in metrics if m.category == cat and m.verdict in _NOTABLE]
            figures = "; ".join(figure(m, code=True) for m in bad[:3]) + (" …" if len(bad) > 3 else "")
            lines.append(f"| {_cell(cat)} | {_ICON.get(info['verdict'], '')} {info['verdict']} "
                         f"| {tests_cell(info['tests'])} | {_cell(figures)} |")
        lines.append("")
    failed = [(f["nodeid"], f["reason"]) for info in categories.values() for f in info.get("failed_tests", [])]
    if failed:
        lines += ["**Failed checks**", ""]
        lines += [f"- `{nodeid}`: {_cell(reason)}" for nodeid, reason in failed[:20]]
        if len(failed) > 20:
            lines.append(f"- … {len(failed) - 20} more in the JSON report")
        lines.append("")
    breaches = [m for m in metrics if m.verdict in _NOTABLE]
    if breaches:
        lines += ["**Thresholds breached**", ""]
        lines += [f"- {m.verdict} {figure(m, code=True)}" for m in breaches[:20]]
        if len(breaches) > 20:
            lines.append(f"- … {len(breaches) - 20} more in the JSON report")
        lines.append("")
    counts = report.get("tests") or {}
    tail = (f"{counts.get('passed', 0)} passed, {counts.get('failed', 0)} failed, {counts.get('skipped', 0)} skipped"
            if counts else "")
    run_id = report.get("run_id")
    lines.append(" · ".join(p for p in (tail, f"run `{run_id}`" if run_id else "",
                                        f"{report.get('duration_s')} s" if report.get("duration_s") else "") if p))
    return "\n".join(lines).rstrip() + "\n"
