"""The promotion precondition's logic (issue 12), pure and fast: ``requires`` in the configuration (what it
accepts, file:line: key errors), durations, and the verdict from a staging report of each shape: passed
within max_age, too old, failed, still running, missing, unreadable, another environment's."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_deploygate.config import ConfigError, parse_project
from pytest_deploygate.failures import CheckFailure, Unverified
from pytest_deploygate.promotion import RequiresSpec, age_text, check_promotion, parse_age
from pytest_deploygate.schema import Source, tomllib

NOW = 1_800_000_000.0


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _project(text: str):  # type: ignore[no-untyped-def]
    return parse_project(Source(Path("deploygate.toml"), text, tomllib.loads(text)), tomllib.loads(text), {})


BASE = """
[environments.staging]
base_url = "http://127.0.0.1:1"

[environments.prod]
base_url = "http://127.0.0.1:2"
protected = true
"""


def test_parse_age() -> None:
    assert parse_age("24h") == 86400 and parse_age("90m") == 5400 and parse_age("2d") == 172800
    assert parse_age("1.5h") == 5400 and parse_age(" 30 s ") == 30 and parse_age("1w") == 604800
    for bad in ("24", "h", "0h", "-1h", "24 hours", "1h30m"):
        with pytest.raises(ValueError, match="max_age must be a positive duration"):
            parse_age(bad)
    assert age_text(59) == "59s" and age_text(7500) == "2h 5m" and age_text(2 * 86400 + 3600 * 3 + 60) == "2d 3h"


def test_requires_in_the_configuration() -> None:
    project = _project(BASE + '[environments.prod.requires]\nenvironment = "staging"\nmax_age = "12h"\n')
    requires = project.environment("prod").requires
    assert requires.active and requires.environment == "staging" and requires.max_age_s == 12 * 3600
    assert requires.report_path(Path("/proj")) == Path("/proj/.deploygate/staging-report.json")
    assert not project.environment("staging").requires.active
    custom = RequiresSpec(environment="staging", report="/ci/staging.json")
    assert custom.report_path(Path("/proj")) == Path("/ci/staging.json")


@pytest.mark.parametrize(("table", "message"), [
    ('max_age = "24h"', "deploygate.toml:8: environments.prod.requires: requires needs 'environment'"),
    ('environment = "staging"\nmax_age = "a day"',
     "deploygate.toml:10: environments.prod.requires.max_age: max_age must be a positive duration"),
    ('environment = "stagin"', "deploygate.toml:9: environments.prod.requires.environment: requires.environment "
                               "names unknown environment 'stagin' (known: prod, staging)"),
    ('environment = "prod"', "environments.prod.requires.environment: requires.environment names itself"),
    ('environment = "staging"\nage = "1h"', "environments.prod.requires.age: unknown key 'age'"),
])
def test_requires_errors_name_file_line_key(table: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _project(BASE + "[environments.prod.requires]\n" + table + "\n")
    assert message in str(info.value)


REQUIRES = RequiresSpec(environment="staging", max_age="24h", max_age_s=86400.0)


def _report(tmp_path: Path, **fields: Any) -> Path:
    data = {"run_id": "dg-1", "environment": {"name": "staging"}, "verdict": "PASS", "blocks_promotion": False,
            "finished_at": _iso(NOW - 3600)}
    data.update(fields)
    path = tmp_path / ".deploygate" / "staging-report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_a_recent_pass_holds(tmp_path: Path) -> None:
    _report(tmp_path)
    assert check_promotion(REQUIRES, tmp_path, now=NOW).startswith("staging passed 1h ago (verdict PASS, run dg-1")
    _report(tmp_path, verdict="WARN")  # a WARN that did not block promotion passed
    check_promotion(REQUIRES, tmp_path, now=NOW)
    _report(tmp_path, finished_at=_iso(NOW - 86400 + 1))  # just inside max_age
    check_promotion(REQUIRES, tmp_path, now=NOW)


@pytest.mark.parametrize(("fields", "words"), [
    ({"finished_at": _iso(NOW - 86400 - 60)}, "staging's latest passing gate is 1d 1m old"),
    ({"verdict": "FAIL", "blocks_promotion": True}, "staging's latest gate did not pass: verdict FAIL"),
    ({"verdict": "WARN", "blocks_promotion": True}, "did not pass: verdict WARN"),  # --fail-on-warn
    ({"verdict": "NO CHECKS", "blocks_promotion": True}, "did not pass: verdict NO CHECKS"),
    ({"verdict": "RUNNING", "finished_at": None}, "has not finished (verdict RUNNING): staging must pass first"),
])
def test_findings(tmp_path: Path, fields: dict[str, Any], words: str) -> None:
    _report(tmp_path, **fields)
    with pytest.raises(CheckFailure) as info:
        check_promotion(REQUIRES, tmp_path, now=NOW)
    assert not isinstance(info.value, Unverified)
    assert words in str(info.value) and str(tmp_path) in str(info.value)


def test_could_not_check_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / ".deploygate" / "staging-report.json"
    with pytest.raises(Unverified, match="could not check: no gate report of staging at " + str(path)):
        check_promotion(REQUIRES, tmp_path, now=NOW)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(Unverified, match=f"could not check: the gate report {path} cannot be read"):
        check_promotion(REQUIRES, tmp_path, now=NOW)
    path.write_text("[]")
    with pytest.raises(Unverified, match="is not a gate report"):
        check_promotion(REQUIRES, tmp_path, now=NOW)
    _report(tmp_path, environment={"name": "prod"})
    with pytest.raises(Unverified, match="is of environment 'prod', not 'staging'"):
        check_promotion(REQUIRES, tmp_path, now=NOW)
    _report(tmp_path, finished_at="yesterday")
    with pytest.raises(Unverified, match="no readable finished_at"):
        check_promotion(REQUIRES, tmp_path, now=NOW)
