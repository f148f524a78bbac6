"""Unit tests of the HTTP posture rules (posture.py) and the allowlist (allowlist.py): no server, no pytester."""

from __future__ import annotations

import datetime
from typing import Any, NoReturn

import pytest
import requests

from pytest_deploygate.failures import RequestFailed, Unverified
from pytest_deploygate.sections import AllowEntry
from pytest_deploygate.security.allowlist import decide, screen
from pytest_deploygate.security.posture import (
    FOREIGN_ORIGIN,
    Finding,
    cors_findings,
    cors_probe_origins,
    fetch,
    header_findings,
    leak_findings,
    own_origins,
    secret_findings,
)

API = "https://api.example.com"
FRONT = "https://app.example.com"
PEERS = {"prod": "https://app-prod.example.com", "dev": "https://app-dev.example.com"}
TODAY = datetime.date(2026, 6, 1)


def ids(findings: list[Finding]) -> list[str]:
    return [f.id for f in findings]


# ---------------------------------------------------------------------------------------------- headers

def test_missing_and_wrong_headers_have_stable_ids() -> None:
    found = header_findings({"X-Frame-Options": "ALLOWALL"},
                            {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY|SAMEORIGIN"}, https=True)
    assert ids(found) == ["DG-HEADER-X-Content-Type-Options", "DG-HEADER-X-Frame-Options",
                          "DG-HEADER-Strict-Transport-Security"]
    assert found[0].describe() == "X-Content-Type-Options is missing [DG-HEADER-X-Content-Type-Options]"
    assert "'ALLOWALL' does not match" in found[1].text


def test_csp_frame_ancestors_stands_in_for_x_frame_options() -> None:
    headers = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Content-Type-Options": "nosniff"}
    assert header_findings(headers, {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}, False) == []


# ---------------------------------------------------------------------------------------------- leaks

def test_framework_without_version_is_named_a_framework_not_a_version() -> None:
    [finding] = leak_findings({"X-Powered-By": "Express"}, "{}")
    assert finding.id == "DG-VERSION-BANNER-X-Powered-By"
    assert finding.text == "X-Powered-By: 'Express' names the framework"
    [versioned] = leak_findings({"Server": "nginx/1.25.3"}, "{}")
    assert versioned.text == "Server: 'nginx/1.25.3' names a version"
    assert versioned.id == "DG-VERSION-BANNER-Server"
    assert leak_findings({"Server": "nginx"}, "{}") == []  # a bare server name gives nothing away


def test_a_stack_trace_is_one_finding_however_many_lines_match() -> None:
    body = 'Traceback (most recent call last):\n  File "/app/x.py", line 3, in f\nValueError: Werkzeug/2.0.1'
    found = leak_findings({}, body)
    assert ids(found) == ["DG-ERROR-TRACE", "DG-VERSION-BANNER-body"]
    assert "'Traceback (most recent call last)'" in found[0].text


# ---------------------------------------------------------------------------------------------- secrets

def test_secrets_are_masked_and_carry_their_kind_and_place() -> None:
    found = secret_findings("key: 'AKIAIOSFODNN7EXAMPLE', client_secret = \"s3cr3t-value-123456\"", "/config.js")
    assert [(f.id, f.text, f.where) for f in found] == [
        ("DG-SECRET-AWS-ACCESS-KEY", "AWS access key id AKIA…LE", "/config.js"),
        ("DG-SECRET-API-KEY", "API key or token s3cr…56", "/config.js"),
    ]
    assert secret_findings("apiEndpoint: 'https://x', stage: 'prod'") == []


# ---------------------------------------------------------------------------------------------- CORS

def answer(acao: str | None = None, creds: bool = False) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if acao:
        headers["Access-Control-Allow-Origin"] = acao
    if creds:
        headers["Access-Control-Allow-Credentials"] = "true"
    return headers


def judge(respond: Any, allowed: list[str], api: str = API) -> list[Finding]:
    """Probe every origin the rules need through ``respond(origin) -> headers`` and judge the answers."""
    origins = cors_probe_origins(allowed, api_origin=api, peers=PEERS)
    return cors_findings({o: respond(o) for o in origins}, allowed, api_origin=api, peers=PEERS)


def test_own_origin_only_is_clean() -> None:
    assert judge(lambda o: answer(o) if o == FRONT else answer(), [FRONT]) == []


def test_wildcard_is_one_isolation_finding_not_one_per_peer() -> None:
    found = judge(lambda o: answer("*"), [FRONT])
    assert [(f.id, f.owner) for f in found] == [("DG-CORS-WILDCARD", "isolation")]
    assert f"answers Access-Control-Allow-Origin: * to {FOREIGN_ORIGIN}" in found[0].text


def test_reflection_with_credentials_is_one_security_finding() -> None:
    found = judge(lambda o: answer(o, creds=True), [FRONT])
    assert [(f.id, f.owner) for f in found] == [("DG-CORS-CREDENTIALS", "security")]
    assert f"allows foreign origin {FOREIGN_ORIGIN} with credentials" in found[0].text


def test_reflection_without_credentials_belongs_to_isolation() -> None:
    assert [(f.id, f.owner) for f in judge(lambda o: answer(o), [FRONT])] == [("DG-CORS-REFLECT", "isolation")]


def test_a_peer_admitted_by_name_is_a_peer_finding() -> None:
    found = judge(lambda o: answer(o) if o in (FRONT, PEERS["prod"]) else answer(), [FRONT])
    assert [(f.id, f.owner, f.text) for f in found] == [
        ("DG-CORS-PEER-prod", "isolation", f"allows prod's origin {PEERS['prod']}")]


def test_any_origin_configured_allows_the_wildcard_but_never_credentials() -> None:
    assert judge(lambda o: answer("*"), ["*"]) == []
    assert ids(judge(lambda o: answer(o, creds=True), ["*"])) == ["DG-CORS-CREDENTIALS"]


def test_own_origin_refused_is_found() -> None:
    found = judge(lambda o: answer(), [FRONT])
    assert [(f.id, f.text) for f in found] == [("DG-CORS-OWN-ORIGIN", f"does not allow its own origin {FRONT} "
                                                                      "(answered None)")]


def test_same_origin_frontend_owes_no_allow_origin_header() -> None:
    # the default expectation is the frontend's origin; served from the API's own origin, no CORS is needed
    assert own_origins([API], API) == []
    assert judge(lambda o: answer(), [API]) == []
    assert judge(lambda o: answer(), []) == []  # cors_origins = []: no cross-origin caller at all
    assert ids(judge(lambda o: answer("*"), [])) == ["DG-CORS-WILDCARD"]


def test_unprobed_origins_are_not_judged() -> None:
    # the security suite probes only the foreign origin: nothing is said about the own origin
    assert cors_findings({FOREIGN_ORIGIN: answer()}, [FRONT], api_origin=API, peers=PEERS) == []


# ---------------------------------------------------------------------------------------------- allowlist

class Sink:
    def __init__(self) -> None:
        self.findings: list[tuple[str, str, str]] = []
        self.unverified: list[tuple[str, str, str, dict[str, object]]] = []

    def finding(self, check: str, severity: str, text: str) -> None:
        self.findings.append((check, severity, text))

    def could_not_check(self, category: str, check: str, why: str, **labels: object) -> NoReturn:
        self.unverified.append((category, check, why, labels))
        raise Unverified(f"{check}: could not check: {why}")


def entry(id_: str, expires: datetime.date, path: str = "*") -> AllowEntry:
    return AllowEntry(id_, "known, fix planned", expires, path)


def test_allowlisted_posture_finding_is_listed_as_info_and_not_counted() -> None:
    sink = Sink()
    found = [Finding("DG-HEADER-X-Frame-Options", "X-Frame-Options is missing"),
             Finding("DG-HEADER-X-Content-Type-Options", "X-Content-Type-Options is missing")]
    counted = screen(sink, "headers", found, [entry("dg-header-x-frame-options", TODAY)], today=TODAY)
    assert ids(counted) == ["DG-HEADER-X-Content-Type-Options"]
    assert sink.findings[0] == ("headers", "INFO", "X-Frame-Options is missing [DG-HEADER-X-Frame-Options] "
                                                   "(allowlisted until 2026-06-01: known, fix planned)")
    assert sink.findings[1][1] == "MEDIUM"


def test_expired_entry_counts_again_and_says_so() -> None:
    sink = Sink()
    expired = entry("DG-CORS-WILDCARD", TODAY - datetime.timedelta(days=1))
    counted = screen(sink, "cors", [Finding("DG-CORS-WILDCARD", "answers *", "HIGH", "isolation")], [expired],
                     today=TODAY)
    assert ids(counted) == ["DG-CORS-WILDCARD"]
    assert sink.findings == [("cors", "HIGH", "answers * [DG-CORS-WILDCARD] (allowlist entry DG-CORS-WILDCARD "
                                              "expired on 2026-05-31: counts again)")]


def test_allowlist_path_scopes_a_secret_to_one_file() -> None:
    secret = Finding("DG-SECRET-API-KEY", "API key or token abcd…yz", "HIGH", where="/static/config.js")
    assert decide([entry("DG-SECRET-API-KEY", TODAY, "*/config.js")], [secret.id], secret.where, TODAY).accepted
    assert not decide([entry("DG-SECRET-API-KEY", TODAY, "*/app.js")], [secret.id], secret.where, TODAY).accepted


# ---------------------------------------------------------------------------------------------- fetch

class Client:
    """Answers with ``statuses`` in turn (None: the connection drops); remembers how often it was asked."""

    check = "test_x"

    def __init__(self, *statuses: int | None) -> None:
        self.statuses = list(statuses)
        self.asked = 0

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        status = self.statuses[min(self.asked, len(self.statuses) - 1)]
        self.asked += 1
        if status is None:
            raise RequestFailed(f"{self.check}: {method} {url}: connection closed before an answer", "dropped")
        response = requests.Response()
        response.status_code = status
        response.url = url
        return response


@pytest.mark.parametrize(("statuses", "why"), [
    ((None,), "GET http://h/p: connection closed before an answer"),
    ((503,), "GET http://h/p answered 503 (asked twice)"),
])
def test_no_usable_answer_is_could_not_check_never_a_finding(statuses: tuple[int | None, ...], why: str) -> None:
    sink = Sink()
    with pytest.raises(Unverified, match="could not check"):
        fetch(sink, "security", "security headers", Client(*statuses), "GET", "http://h/p")
    assert sink.unverified == [("security", "security headers", why, {})]


def test_a_one_off_5xx_on_a_read_is_asked_again() -> None:
    sink, client = Sink(), Client(502, 200)
    assert fetch(sink, "security", "CORS", client, "GET", "http://h/p").status_code == 200
    assert client.asked == 2 and sink.unverified == []


def test_a_write_is_never_sent_twice() -> None:
    sink, client = Sink(), Client(500, 200)
    with pytest.raises(Unverified, match=r"POST http://h/p answered 500$"):
        fetch(sink, "security", "protected endpoint", client, "POST", "http://h/p")
    assert client.asked == 1


def test_an_error_probe_expects_its_5xx() -> None:
    sink, client = Sink(), Client(500)
    assert fetch(sink, "security", "error probe", client, "GET", "http://h/p", error_expected=True).status_code == 500
    assert sink.unverified == [] and client.asked == 1
