"""The records the gate writes (fast): a body from its template with the run markers and TTL, what a read-back
differs in, the records of a list answer, a delete retried only when retrying can help, the ledger that
removes a run's records (never another record that holds the same id by now) and the clean-up of leftovers.
Against a small REST collection served in this process on 127.0.0.1; the end-to-end runs are in
test_crud_isolation.py, test_cleanup.py and test_isolation_thirdparty.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from gatehelpers import serve
from pytest_deploygate.config import Environment, load_project
from pytest_deploygate.failures import CheckFailure
from pytest_deploygate.http import client_for
from pytest_deploygate.records import (
    MARK_CREATED,
    MARK_ENV,
    MARK_RECORD,
    MARK_RUN,
    Collection,
    Identity,
    Ledger,
    Leftover,
    delete_with_retry,
    describe_left,
    find_leftovers,
    remove_leftovers,
)

RUN = "dg-20260101T000000-c0ffee"


@dataclass
class Store:
    """The collection behind the server: its records by id, answers scripted per request, what was asked."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (method, path) -> statuses to answer, in turn, before the collection answers for itself
    script: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    #: the list answer's shape: "array", or the key the array is under
    shape: str = "array"
    seen: list[tuple[str, str]] = field(default_factory=list)


def _handler(current: list[Store]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: Any = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            store = current[0]
            store.seen.append((method, self.path))
            scripted = store.script.get((method, self.path))
            if scripted:
                self._answer(scripted.pop(0), {"message": "scripted"})
                return
            parts = self.path.strip("/").split("/")
            if parts == ["items"] and method == "GET":
                records = list(store.items.values())
                self._answer(200, records if store.shape == "array" else {"count": len(records),
                                                                          store.shape: records})
            elif len(parts) == 2 and parts[0] == "items" and parts[1] in store.items:
                if method == "GET":
                    self._answer(200, store.items[parts[1]])
                else:
                    del store.items[parts[1]]
                    self._answer(204)
            else:
                self._answer(404, {"message": "not found"})

        def do_GET(self) -> None:
            self._handle("GET")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def _server() -> Iterator[tuple[list[Store], str]]:
    current = [Store()]
    server, url = serve(_handler(current))
    yield current, url
    server.shutdown()


@pytest.fixture
def store(_server: tuple[list[Store], str]) -> tuple[Store, str]:
    """An empty collection for each test (one server for the module)."""
    current, url = _server
    current[0] = Store()
    return current[0], url


COLLECTION = '{ path = "/items", create = { title = "probe {run_id} in {env}/{stage}", tags = ["{service}", 3] } }'


def _env(tmp_path: Path, url: str, extra: str = "", protected: bool = False, collection: str = COLLECTION
         ) -> Environment:
    (tmp_path / "deploygate.toml").write_text(f"""
service = "svc"
[environments.x]
stage = "test"
base_url = "{url}"
protected = {str(protected).lower()}
http = {{ connect_timeout_s = 1, read_timeout_s = 1, retries = 0 }}
[environments.x.crud]
collections = [{collection}]
{extra}
""")
    return load_project(tmp_path / "deploygate.toml").environment("x")


def _collection(env: Environment, allow_writes: bool = False) -> Collection:
    return Collection(client_for(env, allow_writes=allow_writes), env, env.crud.collections[0], RUN)


def _record(item_id: str, run: str = RUN, age_s: float = 0, **more: Any) -> dict[str, Any]:
    return {"id": item_id, MARK_RUN: run, MARK_ENV: "x", MARK_CREATED: int(time.time() - age_s),
            MARK_RECORD: f"{run}-{item_id}", **more}


# --------------------------------------------------------------------------------------------------
# bodies, read-backs and list answers


def test_a_body_is_its_template_filled_in_with_the_run_markers_and_ttl(tmp_path: Path) -> None:
    env = _env(tmp_path, "http://127.0.0.1:1")
    coll = _collection(env)
    before = int(time.time())
    body = coll.body(coll.spec.create, {"extra": True})
    assert body["title"] == f"probe {RUN} in x/test" and body["tags"] == ["svc", 3] and body["extra"] is True
    assert (body[MARK_RUN], body[MARK_ENV]) == (RUN, "x")
    assert before <= body[MARK_CREATED] <= time.time() and body["ttl"] == body[MARK_CREATED] + 3600
    assert coll.spec.create["title"] == "probe {run_id} in {env}/{stage}"  # the template itself is unchanged


def test_without_markers_a_body_is_its_template_only(tmp_path: Path) -> None:
    coll = _collection(_env(tmp_path, "http://127.0.0.1:1", "markers = false"))
    assert coll.body(coll.spec.create) == {"title": f"probe {RUN} in x/test", "tags": ["svc", 3]}


def test_what_a_read_back_differs_in(tmp_path: Path) -> None:
    coll = _collection(_env(tmp_path, "http://127.0.0.1:1"))
    expected = {"title": "t", "count": 2, "done": True, "note": "n"}
    item = {"title": "other", "count": 2.0, "done": False, "id": "7"}
    assert coll.mismatches(item, expected, None) == ["title = 'other', expected 't'",
                                                     "done = False, expected True", "note is missing"]
    assert coll.mismatches(item, expected, ["count", "unknown"]) == []  # 2 == 2.0: numbers as numbers


@pytest.mark.parametrize("shape", ["array", "data", "records"])
def test_the_records_of_a_list_answer_whatever_key_they_are_under(store: tuple[Store, str], tmp_path: Path,
                                                                   shape: str) -> None:
    s, url = store
    s.items = {"1": _record("1"), "2": {"id": "2"}}
    s.shape = shape
    coll = _collection(_env(tmp_path, url, collection=f'{{ path = "/items", list_key = "{shape}" }}'
                            if shape == "records" else COLLECTION))
    assert [i["id"] for i in coll.list_items()] == ["1", "2"]
    assert coll.find(coll.list_items(), 2) == {"id": "2"}  # ids compared as text
    assert coll.find(coll.list_items(), "3") is None


def test_a_list_answer_without_a_list_is_a_failure_naming_the_url(store: tuple[Store, str], tmp_path: Path) -> None:
    s, url = store
    s.shape = "data"
    coll = _collection(_env(tmp_path, url, collection='{ path = "/items", list_key = "rows" }'))
    with pytest.raises(CheckFailure) as failed:
        coll.list_items()
    assert str(failed.value) == f"x items: list: GET {url}/items did not answer a list under 'rows'"


# --------------------------------------------------------------------------------------------------
# deleting


def test_a_delete_is_retried_on_5xx_and_429_only(store: tuple[Store, str], tmp_path: Path) -> None:
    s, url = store
    coll = _collection(_env(tmp_path, url))
    s.items = {"1": _record("1"), "2": _record("2")}
    s.script = {("DELETE", "/items/1"): [503, 429], ("DELETE", "/items/2"): [403]}
    assert delete_with_retry(coll, "1", backoff_s=0) is None and "1" not in s.items
    assert delete_with_retry(coll, "2", backoff_s=0) == f"DELETE {url}/items/2 answered 403"  # final
    assert s.seen.count(("DELETE", "/items/2")) == 1
    assert delete_with_retry(coll, "gone", backoff_s=0) is None  # 404: already gone


def test_a_delete_that_keeps_failing_says_how_often_it_was_tried(store: tuple[Store, str], tmp_path: Path) -> None:
    s, url = store
    s.items = {"1": _record("1")}
    s.script = {("DELETE", "/items/1"): [500, 502, 503]}
    why = delete_with_retry(_collection(_env(tmp_path, url)), "1", attempts=3, backoff_s=0)
    assert why == f"DELETE {url}/items/1 answered 503 (3 attempts)"


def test_a_delete_in_a_protected_environment_is_refused_and_never_sent(store: tuple[Store, str],
                                                                        tmp_path: Path) -> None:
    s, url = store
    s.items = {"1": _record("1")}
    why = delete_with_retry(_collection(_env(tmp_path, url, protected=True)), "1", backoff_s=0)
    assert why is not None and "environment x is protected" in why
    assert s.seen == [] and "1" in s.items


# --------------------------------------------------------------------------------------------------
# the ledger


def test_the_ledger_removes_its_records_but_never_another_record_that_holds_the_same_id(
        store: tuple[Store, str], tmp_path: Path) -> None:
    s, url = store
    coll = _collection(_env(tmp_path, url))
    mine, reused = _record("1"), _record("2")
    s.items = {"1": mine, "2": {**reused, MARK_RECORD: "another run's record"}}
    ledger = Ledger()
    for item_id, record in (("1", mine), ("2", reused)):
        entry = ledger.intend(coll, Identity.of(record, RUN))
        entry.item_id, entry.answered = item_id, True
    ledger.add(coll, "3")  # tracked by id only: already gone
    assert ledger.purge() == [] and ledger.entries == []
    assert list(s.items) == ["2"]  # id 2 holds another record by now: left alone
    assert ("DELETE", "/items/2") not in s.seen


def test_a_create_in_flight_is_found_by_its_record_marker(store: tuple[Store, str], tmp_path: Path) -> None:
    s, url = store
    coll = _collection(_env(tmp_path, url))
    landed = _record("9")
    s.items = {"8": _record("8", run="dg-other-run"), "9": landed}
    ledger = Ledger()
    ledger.intend(coll, Identity.of(landed, RUN))  # registered before the create: no id known
    assert ledger.purge() == []
    assert list(s.items) == ["8"]


def test_what_the_ledger_could_not_remove_is_named_with_the_command_that_removes_it(
        store: tuple[Store, str], tmp_path: Path) -> None:
    s, url = store
    env = _env(tmp_path, url, protected=True)
    coll = _collection(env, allow_writes=True)
    s.items = {"1": _record("1")}
    s.script = {("DELETE", "/items/1"): [403]}
    ledger = Ledger()
    ledger.add(coll, "1")
    ledger.discard(coll, "nothing")  # discarding what is not there changes nothing
    left = ledger.purge()
    assert [x.what for x in left] == [f"x items 1: DELETE {url}/items/1 answered 403"]
    assert describe_left(left, RUN) == (
        f"test records could not be removed: x items 1: DELETE {url}/items/1 answered 403. Remove them with: "
        f"`deploygate cleanup --env x --run-id {RUN} --allow-writes`")


def test_a_discarded_record_is_not_deleted(store: tuple[Store, str], tmp_path: Path) -> None:
    s, url = store
    coll = _collection(_env(tmp_path, url))
    s.items = {"1": _record("1")}
    ledger = Ledger()
    ledger.add(coll, 1)
    ledger.discard(coll, "1")
    assert ledger.purge() == [] and s.seen == []


# --------------------------------------------------------------------------------------------------
# leftovers of crashed runs


def test_leftovers_are_marked_records_of_the_run_asked_for_and_old_enough(store: tuple[Store, str],
                                                                         tmp_path: Path) -> None:
    s, url = store
    coll = _collection(_env(tmp_path, url))
    s.items = {"1": _record("1", age_s=7200), "2": _record("2", age_s=10), "3": _record("3", run="dg-other"),
               "4": {"id": "4", "title": "a user's record"}}
    found, failed = find_leftovers(coll, None)
    assert failed == [] and sorted(x.item_id for x in found) == ["1", "2", "3"]
    found, _ = find_leftovers(coll, None, older_than_s=3600, run_id=RUN)
    assert [(x.item_id, x.run_id, x.where) for x in found] == [("1", RUN, "api")]
    assert found[0].created_at is not None and time.time() - found[0].created_at >= 7200 - 5


def test_leftovers_cannot_be_looked_for_when_the_only_source_fails(store: tuple[Store, str], tmp_path: Path) -> None:
    s, url = store
    s.script = {("GET", "/items"): [500]}
    with pytest.raises(CheckFailure) as failed:
        find_leftovers(_collection(_env(tmp_path, url)), None)
    assert str(failed.value).startswith("x items: cannot look for leftovers: the API list failed (")
    assert "answered 500" in str(failed.value)


def test_removing_leftovers_counts_what_went_and_names_what_stayed(store: tuple[Store, str],
                                                                  tmp_path: Path) -> None:
    s, url = store
    coll = _collection(_env(tmp_path, url))
    s.items = {"1": _record("1"), "2": _record("2")}
    s.script = {("DELETE", "/items/2"): [403]}
    leftovers = [Leftover("items", i, RUN, None, "api") for i in ("1", "2")]
    removed, problems = remove_leftovers(coll, None, leftovers)
    assert removed == 1 and problems == [f"x items 2: DELETE {url}/items/2 answered 403"]
    assert list(s.items) == ["2"]
