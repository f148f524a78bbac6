"""The gate verdict as Markdown, from the report model (of a live run, or read back from its JSON file): for
a CI job summary (``--gate-markdown "$GITHUB_STEP_SUMMARY"``), a merge-request comment, or ``deploygate report``.

Top down: the verdict and whether it blocks promotion (and why), the counts (checks and thresholds apart),
a table per category, what failed or warned, every judged threshold with its value, limit, headroom and
sample size (folded in ``<details>`` when long), where the run came from (commit, CI job, target, deployed
version, times) and links to its artifacts."""

from __future__ import annotations

from ..gate import FAIL, INCONCLUSIVE, INFO, PASS, WARN
from .metadata import ARTIFACT_TITLES
from .model import NOTABLE, GateReport, headroom_text
from .terminal import RECORDED, by_category, figure, tests_cell

_ICON = {"PASS": "✅", "WARN": "⚠️", "FAIL": "❌", "ERROR": "⛔", "INTERRUPTED": "⛔", "SKIP": "⏭️",
         "INCONCLUSIVE": "❔", "NO CHECKS": "⛔", "RUNNING": "⏳", "INFO": "\u2139\ufe0f"}
#: a thresholds table longer than this is folded (closed ``<details>``)
FOLD_AFTER = 15
#: rows of the thresholds table at most (what blocks, fails, warns or could not be told first; the rest are
#: counted): a CI job summary takes 1 MiB, a merge-request comment 64 KiB, and 10k thresholds make ~1 MB
TABLE_ROWS = 250


def _cell(text: object) -> str:
    """A table cell: pipes escaped, one line."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _link_target(link: str) -> str:
    """A link target Markdown keeps whole (spaces and parentheses in a path)."""
    return f"<{link}>" if any(c in link for c in " ()<>") else link


def render_markdown(report: GateReport) -> str:
    """Heading with the verdict and whether it blocks promotion, counts, a category table, what failed or
    warned (at most 20 lines each), every judged threshold, where the run came from, artifacts."""
    verdict = report.verdict
    heading = f"## {_ICON.get(verdict, '')} deploygate: {report.env_name} — GATE {verdict}".replace("  ", " ")
    lines = [f"{heading} · {_cell(report.promotion())}", ""]
    if report.interrupted:
        lines += [f"The run was interrupted: partial verdict {report.partial_verdict}; blocks promotion.", ""]
    if report.error:
        lines += [f"The gate could not run: {_cell(report.error)}", ""]
    if verdict == "NO CHECKS":
        lines += ["No check ran (nothing selected, or every check skipped): blocks promotion.", ""]
    if report.judged:
        lines += [report.counts_line(), ""]
    metrics = report.metrics
    if report.categories:
        lines += ["| category | verdict | checks | breaches |", "|---|---|---|---|"]
        grouped = by_category(report)
        for cat, info in report.categories.items():
            bad = [m for m in grouped.get(cat, ()) if m.verdict in NOTABLE]
            figures = "; ".join(figure(m, code=True) for m in bad[:3]) + (" …" if len(bad) > 3 else "")
            if info["verdict"] == INFO:
                recorded = len(grouped.get(cat, ()))
                figures = f"{RECORDED}: {recorded} metric{'' if recorded == 1 else 's'}"
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
    lines += _thresholds_table(report)
    lines += _run_block(report)
    tail = [f"run `{report.run_id}`" if report.run_id else "",
            f"{report.duration_s} s" if report.judged and report.duration_s else ""]
    if any(tail):
        lines.append(" · ".join(p for p in tail if p))
    return "\n".join(lines).rstrip() + "\n"


def _thresholds_table(report: GateReport) -> list[str]:
    """Every judged threshold: verdict, value of limit and headroom, sample size; folded when long."""
    judged = report.ordered_thresholds()
    if not judged:
        return []
    counts = report.threshold_counts()
    said = ", ".join(f"{n} {k}" for k, n in counts.items() if n or k == "passed")
    state = " open" if len(judged) <= FOLD_AFTER else ""
    lines = [f"<details{state}><summary>Thresholds: {len(judged)} judged ({said}): value, limit, headroom, n"
             "</summary>", "", "| threshold | verdict | value of limit, headroom | n | threshold |",
             "|---|---|---|---|---|"]
    for m, _failed in judged[:TABLE_ROWS]:
        n = str(m.samples) if m.samples is not None else "—"
        lines.append(f"| `{_cell(m.key)}` | {_ICON.get(m.verdict, '')} {m.verdict} | {_cell(headroom_text(m))} "
                     f"| {n} | {_cell(m.threshold)} |")
    rest = [m.verdict for m, _failed in judged[TABLE_ROWS:]]
    if rest:
        said = ", ".join(f"{rest.count(level)} {level}" for level in (FAIL, WARN, INCONCLUSIVE, PASS)
                         if level in rest)
        lines += ["", f"… {len(rest)} more thresholds ({said}) in the JSON report"]
    return [*lines, "", "</details>", ""]


def _run_block(report: GateReport) -> list[str]:
    """Where the run came from (commit, CI job, target, deployed version, times) and its artifacts."""
    meta = report.metadata
    parts = []
    if meta.get("commit"):
        parts.append(f"commit `{meta['commit'][:12]}`")
    if meta.get("ci_job_url"):
        parts.append(f"[{meta.get('ci') or 'CI'} job]({_link_target(meta['ci_job_url'])})")
    if meta.get("target_url"):
        parts.append(f"target {meta['target_url']}")
    if meta.get("deployed_version"):
        parts.append(f"deployed version `{_cell(meta['deployed_version'])}`")
    if report.judged or meta:
        from .model import iso

        parts.append(f"started {iso(report.started_at)}")  # the duration ends the summary
    lines = []
    if parts:
        lines += ["**Run** · " + " · ".join(parts), ""]
    if report.links:
        relative = any("://" not in link for link in report.links.values())
        items = [f"[{ARTIFACT_TITLES.get(name, name)}]({_link_target(link)})" for name, link in report.links.items()]
        lines += ["**Artifacts** · " + " · ".join(items)
                  + (" (paths relative to the report directory)" if relative else ""), ""]
    return lines
