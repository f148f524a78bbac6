"""The gate verdict as Markdown, rendered from the JSON report: for a CI job summary
(``--gate-markdown "$GITHUB_STEP_SUMMARY"``), a merge-request comment, or ``deploygate report``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..gate import metric_category

_ICON = {"PASS": "✅", "WARN": "⚠️", "FAIL": "❌", "ERROR": "⛔", "INTERRUPTED": "⛔", "SKIP": "⏭️"}


def _cell(text: object) -> str:
    """A table cell: pipes escaped, one line."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _figure(m: Mapping[str, Any]) -> str:
    key = m.get("key") or m["name"]
    value = f"{m['value']:g}" + (f" {m['unit']}" if m.get("unit") else "")
    limit = f"{m['verdict'].lower()} level {m['limit']}" if m.get("limit") else m.get("threshold") or ""
    return f"`{key}` {value}" + (f" ({limit})" if limit else "")


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
    categories: Mapping[str, Any] = report.get("categories") or {}
    metrics = list(report.get("metrics") or [])
    if categories:
        lines += ["| category | verdict | tests | breaches |", "|---|---|---|---|"]
        for cat, info in categories.items():
            t = info.get("tests", {})
            tests = f"{t.get('passed', 0)}/{t.get('passed', 0) + t.get('failed', 0)}"
            if t.get("skipped"):
                tests += f" ({t['skipped']} skipped)"
            bad = [m for m in metrics if metric_category(m["name"]) == cat and m["verdict"] in ("FAIL", "WARN")]
            lines.append(f"| {_cell(cat)} | {_ICON.get(info.get('verdict'), '')} {info.get('verdict')} | {tests} "
                         f"| {_cell('; '.join(_figure(m) for m in bad[:3]) + (' …' if len(bad) > 3 else ''))} |")
        lines.append("")
    failed = [(f["nodeid"], f["reason"]) for info in categories.values() for f in info.get("failed_tests", [])]
    if failed:
        lines += ["**Failed checks**", ""]
        lines += [f"- `{nodeid}`: {_cell(reason)}" for nodeid, reason in failed[:20]]
        if len(failed) > 20:
            lines.append(f"- … {len(failed) - 20} more in the JSON report")
        lines.append("")
    breaches = [m for m in metrics if m["verdict"] in ("FAIL", "WARN")]
    if breaches:
        lines += ["**Thresholds breached**", ""]
        lines += [f"- {m['verdict']} {_figure(m)}" for m in breaches[:20]]
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
