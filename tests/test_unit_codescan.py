"""The code scan's reading of bandit's JSON (pure, fast): findings with severity, CWE and place from a recorded
bandit 1.9 report; a file bandit could not scan and a bandit that printed no JSON are failures that say so,
never an empty (clean) scan. No scanner run (the security suite's end-to-end tests run bandit for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_deploygate.failures import CheckFailure
from pytest_deploygate.security.codescan import CodeFinding, parse_bandit

DATA = Path(__file__).with_name("data")
#: `bandit -r app -f json -q` over a file with shell=True, md5, a hard-coded password and a subprocess import
REPORT = DATA / "bandit-report.json"
#: `bandit -r broken -f json -q` over a file with a syntax error (exit code 0, the file listed in "errors")
SYNTAX_ERROR = DATA / "bandit-syntax-error.json"


def test_findings_of_a_recorded_report() -> None:
    findings = parse_bandit(REPORT.read_text(), "", 1)  # bandit exits 1 when it found something
    assert [(f.test_id, f.severity, f.confidence, f.filename, f.line, f.cwe) for f in findings] == [
        ("B404", "LOW", "HIGH", "app/handlers.py", 2, "78"),
        ("B602", "HIGH", "HIGH", "app/handlers.py", 6, "78"),
        ("B324", "HIGH", "HIGH", "app/handlers.py", 10, "327"),
        ("B105", "LOW", "MEDIUM", "app/handlers.py", 13, "259"),
    ]
    shell = findings[1]
    assert shell.describe() == ("HIGH B602 CWE-78 app/handlers.py:6 subprocess call with shell=True identified, "
                                "security issue.")


def test_a_finding_without_a_cwe_is_described_without_one() -> None:
    finding = CodeFinding("B999", "MEDIUM", "LOW", "x.py", 3, "", "something odd")
    assert finding.describe() == "MEDIUM B999 x.py:3 something odd"


def test_severities_are_upper_case_whatever_bandit_printed() -> None:
    text = ('{"errors": [], "results": [{"test_id": "B101", "issue_severity": "low", "issue_confidence": "high", '
            '"filename": "t.py", "line_number": "7", "issue_text": "assert used"}]}')
    [finding] = parse_bandit(text)
    assert (finding.severity, finding.confidence, finding.line, finding.cwe) == ("LOW", "HIGH", 7, "")


def test_a_clean_scan_has_no_findings() -> None:
    assert parse_bandit('{"errors": [], "results": []}') == []


def test_a_file_bandit_could_not_scan_is_a_failure_not_a_clean_scan() -> None:
    with pytest.raises(CheckFailure) as failed:
        parse_bandit(SYNTAX_ERROR.read_text(), "", 0)
    assert str(failed.value) == ("code scan: bandit could not scan broken/bad.py: "
                                 "syntax error while parsing AST from file")


@pytest.mark.parametrize(("stdout", "stderr", "says"), [
    ("", "usage: bandit ...\n__main__.py: error: argument --severity-level: invalid choice: 'bogus'\n",
     "code scan: bandit failed (exit code 2): __main__.py: error: argument --severity-level: invalid choice: 'bogus'"),
    ("", "", "code scan: bandit failed (exit code 2): no output"),
    ("Traceback (most recent call last):", "", "code scan: bandit failed (exit code 2): no output"),
])
def test_no_json_is_a_failure_naming_the_exit_code_and_the_last_line(stdout: str, stderr: str, says: str) -> None:
    with pytest.raises(CheckFailure) as failed:
        parse_bandit(stdout, stderr, 2)
    assert str(failed.value) == says
