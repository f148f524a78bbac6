"""Redaction of the values a run's reporters read (pure, fast): nested values and failure representations,
pytest's test and collect reports, files other reporters wrote, and allure's result objects. What a secret
looks like in text (whole, escaped, in pieces) is tested with the rules in test_secrets.py."""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import pytest
from allure_commons import model2  # its TestResult classes, not pytest's to collect

from pytest_deploygate.redaction import (
    FIND_ANCHORS,
    MASK,
    PIECE_CHARS,
    AllureRedactor,
    Redactor,
    _private_parts,
    _variants,
    redact,
    redact_file,
    redact_report,
    redact_value,
)

SECRET = "dgunit-3c5e7a9b1d2f4a6c8e0b"
SECRETS = frozenset([SECRET])


class Location(NamedTuple):
    path: str
    line: int


@dataclasses.dataclass(frozen=True)
class FrozenRepr:
    """Shaped like pytest's failure representations: a frozen dataclass that can print itself."""

    message: str
    lines: list[str]

    def toterminal(self, tw: Any) -> None:
        tw.line(self.message)


class PlainObject:
    def __init__(self) -> None:
        self.text = f"holds {SECRET}"


# --------------------------------------------------------------------------------------------------
# values


def test_a_secret_read_from_a_non_utf8_environment_is_masked_in_every_form() -> None:
    """A value of an environment variable that is not UTF-8 holds lone surrogates (``os.environ`` decodes it with
    ``surrogateescape``): URL-encoding it as text raised, and every redaction with it failed."""
    for secret in ("dgunit-\udcff-9f3b7c1a5e", "dgunit-\ud800-9f3b7c1a5e"):
        raw = secret.encode("utf-8", "surrogateescape" if "\udcff" in secret else "surrogatepass")
        text = f"env {secret} url ?k={quote(raw, safe='')} end"
        assert redact(text, frozenset([secret])) == f"env {MASK} url ?k={MASK} end"


def test_containers_are_redacted_all_the_way_down() -> None:
    inner = [f"a {SECRET}", 3, None, b"bytes stay", 1.5]
    value = {f"key {SECRET}": {"list": inner, "tuple": (SECRET, 1)}, "plain": "nothing to hide"}
    clean = redact_value(value, [SECRET])
    assert clean == {f"key {MASK}": {"list": [f"a {MASK}", 3, None, b"bytes stay", 1.5], "tuple": (MASK, 1)},
                     "plain": "nothing to hide"}
    assert clean["key ***"]["list"] is inner  # lists are updated in place (a caller may hold them)


def test_a_named_tuple_keeps_its_type_and_a_long_string_is_redacted_too() -> None:
    location = redact_value(Location(f"tests/test_{SECRET}.py", 3), SECRETS)
    assert type(location) is Location and location == Location("tests/test_***.py", 3)
    long = "x" * 500 + SECRET + "y" * 500
    assert redact_value(long, SECRETS) == "x" * 500 + MASK + "y" * 500


def test_a_value_that_contains_itself_is_walked_once() -> None:
    loop: list[Any] = [SECRET]
    loop.append(loop)
    clean = redact_value(loop, SECRETS)
    assert clean[0] == MASK and clean[1] is loop


def test_a_failure_representation_is_redacted_in_place_even_when_frozen() -> None:
    rep = FrozenRepr(f"assert {SECRET!r} == 'x'", [f"E   {SECRET}"])
    assert redact_value(rep, SECRETS) is rep
    assert rep.message == "assert '***' == 'x'" and rep.lines == ["E   ***"]


def test_an_object_that_is_not_a_failure_representation_is_left_alone() -> None:
    obj = PlainObject()
    assert redact_value(obj, SECRETS) is obj and SECRET in obj.text  # the caller checks the text it prints
    assert redact_value(PlainObject, SECRETS) is PlainObject


# --------------------------------------------------------------------------------------------------
# pytest's reports


def _report(longrepr: Any) -> pytest.TestReport:
    return pytest.TestReport(
        nodeid=f"test_x.py::test_token[{SECRET}]", location=("test_x.py", 4, f"test_token[{SECRET}]"),
        keywords={f"test_token[{SECRET}]": 1, "gate": 1}, outcome="failed", longrepr=longrepr, when="call",
        sections=[(f"Captured stdout call {SECRET}", f"token: {SECRET}\n")],
        user_properties=[("token", SECRET), ("samples", 3)])


def test_every_field_a_reporter_reads_is_redacted() -> None:
    report = _report(f"AssertionError: {SECRET} != 'x'")
    redact_report(report, SECRETS)
    assert report.nodeid == "test_x.py::test_token[***]"
    assert report.location == ("test_x.py", 4, "test_token[***]")
    assert report.keywords == {"test_token[***]": 1, "gate": 1}
    assert report.sections == [("Captured stdout call ***", "token: ***\n")]
    assert report.user_properties == [("token", MASK), ("samples", 3)]
    assert report.longrepr == "AssertionError: *** != 'x'"
    assert SECRET not in report.longreprtext


def _clean_report() -> pytest.TestReport:
    return pytest.TestReport(
        nodeid="deploygate::gate::smoke.api.latency_ms{path=/x}", location=("deploygate", None, "gate::x"),
        keywords={"gate": 1, "smoke": 1}, outcome="passed", longrepr=None, when="teardown",
        sections=[("Captured stdout teardown", "PASS: smoke.api.latency_ms = 12 ms\n")],
        user_properties=[("value", "12 ms"), ("samples", 3), ("interval", [1.5, 2.5]), ("labels", {"path": "/x"})])


@pytest.mark.parametrize(("field", "value"), [
    ("nodeid", f"deploygate::gate::x{{path={SECRET}}}"),
    ("location", ("deploygate", None, f"gate::{SECRET[:9]}")),  # a piece is enough
    ("keywords", {"gate": 1, f"x[{SECRET}]": 1}),
    ("sections", [("Captured stdout teardown", f"token {SECRET[3:15]}\n")]),
    ("user_properties", [("labels", {"path": f"/x/{SECRET}"}), ("n", 3)]),
    ("longrepr", f"FAIL: {SECRET}"),
])
def test_a_secret_in_any_one_field_of_a_plain_report_is_masked(field: str, value: Any) -> None:
    report = _clean_report()
    setattr(report, field, value)
    redact_report(report, SECRETS)
    assert SECRET[3:11] not in repr(vars(report)) and MASK in repr(vars(report))


def test_a_clean_plain_report_is_left_as_it_is() -> None:
    report = _clean_report()
    fields = dict(vars(report))
    redact_report(report, SECRETS)
    assert all(getattr(report, k) is v for k, v in fields.items())


def test_a_representation_the_walk_does_not_know_is_kept_as_its_redacted_text() -> None:
    class Odd:
        def __str__(self) -> str:
            return f"odd failure with {SECRET}"

    report = _report(Odd())
    redact_report(report, SECRETS)
    assert report.longrepr == "odd failure with ***"


def test_a_collect_report_is_redacted_too() -> None:
    report = pytest.CollectReport(f"test_{SECRET}.py", "failed", f"ImportError: {SECRET}", [],
                                  sections=[("stderr", SECRET)])
    redact_report(report, SECRETS)
    assert (report.nodeid, report.longrepr, report.sections) == ("test_***.py", "ImportError: ***",
                                                                 [("stderr", MASK)])


def test_a_clean_report_is_unchanged() -> None:
    report = _report("AssertionError: 1 != 2")
    report.nodeid, report.location = "test_x.py::test_ok", ("test_x.py", 4, "test_ok")
    report.keywords, report.sections, report.user_properties = {"test_ok": 1}, [], [("samples", 3)]
    redact_report(report, SECRETS)
    assert (report.nodeid, report.longrepr, report.user_properties) == ("test_x.py::test_ok",
                                                                        "AssertionError: 1 != 2", [("samples", 3)])


# --------------------------------------------------------------------------------------------------
# files other reporters wrote


def test_a_file_is_rewritten_only_when_it_held_a_secret(tmp_path: Path) -> None:
    dirty, clean = tmp_path / "junit.xml", tmp_path / "log.txt"
    dirty.write_bytes(b"<failure>\xff " + SECRET.encode() + b"</failure>")  # not UTF-8: kept byte for byte
    clean.write_text("nothing to hide\n")
    os.utime(clean, ns=(1_000_000_000, 1_000_000_000))
    redact_file(dirty, SECRETS)
    redact_file(clean, SECRETS)
    assert dirty.read_bytes() == b"<failure>\xff ***</failure>"
    assert clean.stat().st_mtime_ns == 1_000_000_000  # not written at all
    redact_file(tmp_path / "missing.xml", SECRETS)  # a file that is gone is no error


# --------------------------------------------------------------------------------------------------
# allure's result objects, before allure-pytest writes them


def test_an_allure_result_is_redacted_before_it_is_written() -> None:
    result = model2.TestResult(
        name=f"test_token[{SECRET}]", fullName=f"test_x#test_token[{SECRET}]",
        parameters=[model2.Parameter(name="value", value=f"'{SECRET}'")],
        statusDetails=model2.StatusDetails(message=f"AssertionError: {SECRET}", trace=f"E   {SECRET}"),
        steps=[model2.TestStepResult(name=f"call with {SECRET}",
                                     steps=[model2.TestStepResult(name=f"inner {SECRET}")])],
        labels=[], links=[])
    asked: list[int] = []

    def secrets() -> frozenset[str]:
        asked.append(1)
        return SECRETS

    AllureRedactor(secrets).report_result(result)
    assert asked == [1]  # the run's secrets as they are when the result is written
    assert SECRET not in repr(result)
    assert result.name == "test_token[***]" and result.parameters[0].value == "'***'"
    assert result.statusDetails.message == "AssertionError: ***" and result.statusDetails.trace == "E   ***"
    assert result.steps[0].steps[0].name == "inner ***"


def test_an_allure_container_is_redacted_too_and_plain_values_pass() -> None:
    container: dict[str, Any] = {"befores": [{"name": f"fixture {SECRET}", "ok": True, "n": 2}]}
    AllureRedactor(lambda: SECRETS).report_container(container)
    assert container == {"befores": [{"name": "fixture ***", "ok": True, "n": 2}]}


# --------------------------------------------------------------------------------------------------
# the piece scan: found by anchors (few: str.find; many: the text's blocks looked up), the same as a scan
# of every position


SESSION_TOKEN = "FwoGZXIvYXdzEJr" + "".join(random.Random(7).choices(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", k=600))


def _every_piece_start(text: str, pieces: frozenset[str]) -> list[int]:
    return [i for i in range(len(text) - PIECE_CHARS + 1) if text[i:i + PIECE_CHARS] in pieces]


@pytest.mark.parametrize(("secrets", "by_find"), [
    (frozenset([SECRET]), True),  # few anchors: each looked for with str.find
    (frozenset([SECRET, SESSION_TOKEN]), False),  # an AWS session token: many anchors
    (frozenset(["https://hooks.example/services/T000/B000/XXXX", "aaaaaaaaaaaa"]), True),  # a URL; repeats
], ids=["few", "many", "url-and-repeats"])
def test_the_piece_scan_finds_every_piece_a_scan_of_every_position_finds(secrets: frozenset[str],
                                                                          by_find: bool) -> None:
    redactor = Redactor(secrets)
    assert (len(redactor._anchors) <= FIND_ANCHORS) == by_find
    rng = random.Random(13)
    variants = [v for s in secrets for part in _private_parts(s) for v in _variants(part) if len(v) >= PIECE_CHARS]
    for _ in range(60):
        chunks = []
        for _ in range(rng.randint(0, 12)):
            chunks.append("".join(rng.choice("ab/\\\"'%.-_ 0Q=x\n") for _ in range(rng.randint(0, 30))))
            v = rng.choice(variants)
            start = rng.randint(0, len(v) - 1)
            chunks.append(v[start:start + rng.randint(1, 20)])  # cut anywhere: a piece, or too short to be one
        text = "".join(chunks)
        assert redactor._piece_starts(text) == _every_piece_start(text, redactor._pieces), text
        clean = redact(text, secrets)
        assert not _every_piece_start(clean, redactor._pieces), clean


def test_credential_headers_are_masked_in_any_case_and_only_looked_for_where_they_can_be() -> None:
    token = "IQoJb3JpZ2luX2VjEJr" + "A" * 40
    for header in ("X-Amz-Security-Token", "x-amz-security-token", "X-AMZ-SECURITY-TOKEN", "x-Amz-security-TOKEN"):
        text = f"DEBUG headers={{'{header}': b'{token}', 'Authorization': 'AWS4-HMAC-SHA256 Credential=" \
               f"ASIAXXXXXXXXXXXXXXXX/20261124/eu-west-1/s3/aws4_request'}}"
        clean = redact(text, frozenset())
        assert token not in clean and f"'{header}': b'{MASK}" in clean
        assert "ASIAXXXXXXXXXXXXXXXX" not in clean and f"Credential={MASK}/20261124" in clean
    assert redact("no header here " * 1000, frozenset()) == "no header here " * 1000


def test_many_runs_holding_pieces_are_scanned_whole_and_a_piece_anywhere_in_a_run_is_found() -> None:
    redactor = Redactor(frozenset([SECRET, SESSION_TOKEN]))
    # more distinct runs holding a piece than are worth a str.find each: the text is scanned whole instead
    many = " ".join(SESSION_TOKEN[i:i + 9 + i % 5] for i in range(0, 600, 12))
    # a piece inside a longer run of the same characters, and the same run twice
    inside = f"x={SESSION_TOKEN[100:120]}Q9 {SESSION_TOKEN[100:120]}Q9 end"
    for text in (many, inside):
        assert redactor._piece_starts(text) == _every_piece_start(text, redactor._pieces)
        assert not _every_piece_start(redact(text, frozenset([SECRET, SESSION_TOKEN])), redactor._pieces)
