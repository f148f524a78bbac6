"""The JSON gate report: the report model (:mod:`.model`) written to a file, laid out for reading and diffing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..redaction import redact
from .model import RUNNING, SCHEMA_VERSION, GateReport

if TYPE_CHECKING:  # pragma: no cover
    from ..run import GateRun, RunStart


def write_report(report: GateReport, path: Path, secrets: Iterable[str], markdown: Path | None = None) -> None:
    """Write ``report`` as JSON to ``path`` atomically (and as Markdown to ``markdown``), every secret value
    redacted."""
    secrets = list(secrets)
    text = report.json_text if report.json_text is not None else redact(report.json(), secrets)
    _write(path, text + "\n")
    if markdown is not None:
        from .markdown import render_markdown

        _write(markdown, redact(render_markdown(report), secrets))


class Encoded(list):  # type: ignore[type-arg]
    """A top-level list whose items :func:`dumps` is given already written as JSON, one per line."""


def dumps(report: Mapping[str, Any]) -> str:
    """``report`` as JSON laid out for reading and diffing: a line per top-level key, and per item of a
    top-level list or dict (a metric, a finding, a category). Each line comes from json's C encoder
    (``indent=`` switches to its pure-Python one, which cost ~8 µs per metric), one encoder for the whole
    report (``json.dumps`` makes one per call: ~1.6 µs per metric)."""
    if not report or not all(isinstance(k, str) for k in report):
        return json.dumps(report, indent=2)
    encode = _line_encoder()
    lines = []
    for key, value in report.items():
        head = f"  {encode(key)}: "
        if isinstance(value, Encoded) and value:
            inner = ",\n    ".join(value)
            lines.append(f"{head}[\n    {inner}\n  ]")
        elif isinstance(value, list) and value:
            inner = ",\n    ".join([encode(item) for item in value])
            lines.append(f"{head}[\n    {inner}\n  ]")
        elif isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            inner = ",\n".join([f"    {encode(k)}: {encode(v)}" for k, v in value.items()])
            lines.append(f"{head}{{\n{inner}\n  }}")
        else:
            lines.append(head + encode(value))
    return "{\n" + ",\n".join(lines) + "\n}"


_PROBE: Any = {"a": [1, 2.5, None, True, "é\"\n"], "b": {"c": -1e300}}


def _line_encoder() -> Callable[[Any], str]:
    """``json.dumps`` with its defaults, as one reusable C encoder (a fresh one per report: its record of the
    containers being encoded, which catches a circular reference, starts empty); ``json.dumps`` itself where
    the C encoder is missing or is not called the way this Python's ``json`` calls it."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.dumps
    try:
        encoder = make({}, json.JSONEncoder().default, json.encoder.encode_basestring_ascii, None, ": ", ", ",
                       False, False, True)

        def encode(value: Any) -> str:
            return "".join(encoder(value, 0))

        if encode(_PROBE) != json.dumps(_PROBE):
            return json.dumps
    except Exception:  # another Python's private signature
        return json.dumps
    return encode


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_error_report(run: GateRun, error: str, version: str, exit_status: int = 4) -> GateReport:
    """The report of a gate that could not run (exit 4) or could not judge (exit 3): verdict ERROR."""
    report = GateReport.of_error(run, error, exit_status, version)
    write_report(report, run.settings.report_path, run.secrets, run.settings.markdown_path)
    return report


def write_status_report(start: RunStart, version: str, verdict: str, exit_status: int | None = None,
                        error: str | None = None, secrets: Iterable[str] = ()) -> GateReport:
    """A report before or without a verdict: RUNNING at the start of a run (so an earlier run's report is
    never taken for this one's), INTERRUPTED or ERROR when the run ended before it could judge."""
    report = GateReport.of_status(start, version, verdict, exit_status, error)
    write_report(report, start.report_path, secrets, None if verdict == RUNNING else start.markdown_path)
    return report


__all__ = ["RUNNING", "SCHEMA_VERSION", "Encoded", "GateReport", "dumps", "write_error_report", "write_report",
           "write_status_report"]
