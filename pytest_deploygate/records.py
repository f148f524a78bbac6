"""Test records the gate writes: CRUD through an environment's API, run markers and TTL on every record,
a ledger that deletes them whatever happens, and the clean-up of leftovers from crashed runs."""

from __future__ import annotations

import numbers
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import Environment
from .failures import CheckFailure, RequestFailed, WriteRefused
from .http import GateHTTP, json_body
from .sections import CollectionSpec

if TYPE_CHECKING:  # pragma: no cover
    import requests

    from .aws import EnvironmentAWS

#: fields every record written by the gate carries (when ``crud.markers`` is on)
MARK_RUN, MARK_ENV, MARK_CREATED = "deploygateRun", "deploygateEnv", "deploygateCreatedAt"
#: unique per record (``<run id>-<random>``): tells the gate's record from another one holding the same id
MARK_RECORD = "deploygateRecord"
#: unique per canary (``<env>:<run id>:<random>``), written by the isolation checks
MARK_CANARY = "deploygateCanary"
#: the markers that identify one record; ``deploygateCreatedAt`` and the TTL change with each update
IDENTITY_MARKERS = (MARK_RUN, MARK_ENV, MARK_RECORD, MARK_CANARY)


def record_marker(run_id: str) -> str:
    return f"{run_id}-{secrets.token_hex(4)}"


def cleanup_command(env: Environment, run_id: str) -> str:
    """The command that removes what a run left in ``env``."""
    return f"deploygate cleanup --env {env.name} --run-id {run_id}" + (" --allow-writes" if env.protected else "")


def _fill(value: Any, fields: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return value.format_map(fields)
    if isinstance(value, dict):
        return {k: _fill(v, fields) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, fields) for v in value]
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return bool(a == b)


@dataclass(frozen=True)
class Identity:
    """What makes a record the gate's own: its markers and the values unique to it, never its id (an API
    with counting-up ids gives a peer's own record the same id)."""

    fields: Mapping[str, Any]

    @classmethod
    def of(cls, body: Mapping[str, Any], run_id: str, markers_only: bool = False) -> Identity:
        """The identifying values of ``body``: its markers and (unless ``markers_only``) every text value
        carrying the run id (``"deploygate probe {run_id}"``)."""
        fields = {k: v for k, v in body.items() if k in IDENTITY_MARKERS}
        if not markers_only:
            fields.update({k: v for k, v in body.items() if isinstance(v, str) and run_id and run_id in v})
        return cls(fields)

    def compare(self, item: Mapping[str, Any]) -> bool | None:
        """True: ``item`` carries identifying values and all are this record's; False: one differs;
        None: it carries none of them (nothing to tell it by)."""
        present = [k for k in self.fields if k in item]
        if not present:
            return None
        return all(_same(item[k], self.fields[k]) for k in present)

    def kept_by(self, item: Mapping[str, Any]) -> Identity:
        """The identifying values ``item`` (this record as the API returns it) kept unchanged."""
        return Identity({k: v for k, v in self.fields.items() if k in item and _same(item[k], v)})

    def describe(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.fields.items())


@dataclass
class Step:
    """One request of a lifecycle, with its latency."""

    name: str
    response: requests.Response
    elapsed_ms: float


class Collection:
    """CRUD on one collection of one environment through its API, as configured in ``crud.collections``."""

    def __init__(self, http: GateHTTP, env: Environment, spec: CollectionSpec, run_id: str) -> None:
        self.http = http
        self.env = env
        self.spec = spec
        self.run_id = run_id
        self.steps: list[Step] = []

    @property
    def label(self) -> str:
        return f"{self.env.name} {self.spec.name}"

    def body(self, template: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``template`` filled in (``{run_id}``, ``{env}``, ...) plus the run markers and TTL."""
        fields = {**self.env.fields(), "run_id": self.run_id}
        body: dict[str, Any] = _fill(dict(template), fields)
        crud = self.env.crud
        if crud.markers:
            now = int(time.time())
            body.update({MARK_RUN: self.run_id, MARK_ENV: self.env.name, MARK_CREATED: now})
            if crud.ttl_field:
                body[crud.ttl_field] = now + crud.ttl_s
        body.update(extra or {})
        return body

    def _call(self, step: str, method: str, url: str, expected: tuple[int, ...], **kwargs: Any) -> requests.Response:
        response = self.http.request(method, url, **kwargs)
        elapsed = getattr(response, "elapsed_ms", 0.0)
        self.steps.append(Step(step, response, elapsed))
        if response.status_code not in expected:
            want = expected[0] if len(expected) == 1 else "one of " + ", ".join(map(str, expected))
            snippet = response.text[:120].replace("\n", " ")
            raise CheckFailure(f"{self.label}: {step}: {method} {response.url} answered {response.status_code}, "
                               f"expected {want}" + (f" ({snippet})" if snippet else ""))
        return response

    def create(self, body: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        r = self._call("create", "POST", self.spec.path, self.spec.expect["create"], json=dict(body))
        created = json_body(r, f"{self.label}: create") if r.content else {}
        item_id = created.get(self.spec.id_field) if isinstance(created, dict) else None
        if item_id is None:
            raise CheckFailure(f"{self.label}: create: POST {r.url} answered {r.status_code} without "
                               f"{self.spec.id_field!r} in its body")
        return item_id, created

    def read(self, item_id: Any, step: str = "read") -> dict[str, Any]:
        r = self._call(step, "GET", self.spec.url_of(item_id), self.spec.expect["read"])
        item = json_body(r, f"{self.label}: {step}")
        if not isinstance(item, dict):
            raise CheckFailure(f"{self.label}: {step}: GET {r.url} did not answer a JSON object")
        return item

    def probe(self, item_id: Any) -> requests.Response:
        """GET the item without expectations (isolation: is it visible here?)."""
        return self.http.get(self.spec.url_of(item_id))

    def list_items(self, step: str = "list") -> list[dict[str, Any]]:
        return self.items_of(self._call(step, "GET", self.spec.path, self.spec.expect["list"]), step)

    def items_of(self, r: requests.Response, step: str = "list") -> list[dict[str, Any]]:
        """The records of a list answer (a JSON array, or the array under ``list_key``)."""
        data = json_body(r, f"{self.label}: {step}")
        if isinstance(data, dict):
            if self.spec.list_key:
                data = data.get(self.spec.list_key)
            else:
                data = next((v for v in data.values() if isinstance(v, list)), None)
        if not isinstance(data, list):
            raise CheckFailure(f"{self.label}: {step}: GET {r.url} did not answer a list"
                               + (f" under {self.spec.list_key!r}" if self.spec.list_key else ""))
        return [i for i in data if isinstance(i, dict)]

    def find(self, items: Iterable[Mapping[str, Any]], item_id: Any) -> Mapping[str, Any] | None:
        return next((i for i in items if str(i.get(self.spec.id_field)) == str(item_id)), None)

    def update(self, item_id: Any, body: Mapping[str, Any]) -> None:
        self._call("update", self.spec.update_method, self.spec.url_of(item_id), self.spec.expect["update"],
                   json=dict(body))

    def delete(self, item_id: Any) -> None:
        self._call("delete", "DELETE", self.spec.url_of(item_id), self.spec.expect["delete"])

    def expect_missing(self, item_id: Any, step: str = "read after delete") -> None:
        self._call(step, "GET", self.spec.url_of(item_id), self.spec.expect["missing"])

    def mismatches(self, item: Mapping[str, Any], expected: Mapping[str, Any], keys: Iterable[str] | None) -> list[str]:
        out = []
        for key in keys if keys is not None else expected:
            if key not in expected:
                continue
            if key not in item:
                out.append(f"{key} is missing")
            elif not _same(item[key], expected[key]):
                out.append(f"{key} = {item[key]!r}, expected {expected[key]!r}")
        return out


# --------------------------------------------------------------------------------------------------
# the datastore behind a collection (DynamoDB), through boto3 in the environment's account


class Datastore:
    """A collection's DynamoDB table in one environment's account."""

    def __init__(self, aws: EnvironmentAWS, spec: CollectionSpec) -> None:
        assert spec.table
        self.aws = aws
        self.table = spec.table
        self._key = spec.table_key
        self._key_type: str | None = None

    @property
    def where(self) -> str:
        account = self.aws.env.aws.account_id
        return f"{self.aws.env.name}'s table {self.table}" + (f" (account {account})" if account else "")

    @property
    def key(self) -> str:
        """The attribute holding a record's id (``table_key``, else the table's hash key)."""
        if self._key_type is None:
            desc = self.aws.client("dynamodb").describe_table(TableName=self.table)["Table"]
            hash_key = next(k["AttributeName"] for k in desc["KeySchema"] if k["KeyType"] == "HASH")
            self._key = self._key or hash_key
            types = {a["AttributeName"]: a["AttributeType"] for a in desc["AttributeDefinitions"]}
            self._key_type = types.get(self._key, "S")
        assert self._key is not None
        return self._key

    def _key_of(self, item_id: Any) -> dict[str, Any]:
        key = self.key
        return {key: {self._key_type: str(item_id)}}

    def get(self, item_id: Any) -> dict[str, Any] | None:
        """The item stored under ``item_id`` (plain values), or None."""
        from boto3.dynamodb.types import TypeDeserializer

        item = self.aws.client("dynamodb").get_item(TableName=self.table, Key=self._key_of(item_id),
                                                    ConsistentRead=True).get("Item")
        if not item:
            return None
        des = TypeDeserializer()
        return {k: des.deserialize(v) for k, v in item.items()}

    def scan_marked(self) -> Iterator[dict[str, Any]]:
        """Every item carrying a gate run marker (plain values: strings and numbers)."""
        from boto3.dynamodb.types import TypeDeserializer

        des = TypeDeserializer()
        kwargs: dict[str, Any] = {"TableName": self.table, "FilterExpression": "attribute_exists(#r)",
                                  "ExpressionAttributeNames": {"#r": MARK_RUN}}
        client = self.aws.client("dynamodb")
        while True:
            page = client.scan(**kwargs)
            for raw in page.get("Items", []):
                yield {k: des.deserialize(v) for k, v in raw.items()}
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def delete(self, item_id: Any) -> None:
        self.aws.client("dynamodb").delete_item(TableName=self.table, Key=self._key_of(item_id))


# --------------------------------------------------------------------------------------------------
# the ledger: what this process created (or was creating), removed at teardown whatever happened

#: deletes answered 5xx (or dropped) are tried this many times, waiting 0.5 s, 1 s, 2 s ... in between
DELETE_ATTEMPTS = 4
DELETE_BACKOFF_S = 0.5
#: how often a create whose answer never came is looked for, while it may still land
PENDING_POLL_S = 0.5


def delete_with_retry(collection: Collection, item_id: Any, attempts: int = DELETE_ATTEMPTS,
                      backoff_s: float = DELETE_BACKOFF_S) -> str | None:
    """Delete ``item_id`` through the API; None once it is gone, else why it is still there. A 5xx, 429 or
    dropped connection is tried again with backoff (bounded); any other refusal is final."""
    gone = (*collection.spec.expect["delete"], *collection.spec.expect["missing"])
    why = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            response = collection.http.delete(collection.spec.url_of(item_id))
        except WriteRefused as exc:
            return str(exc)
        except RequestFailed as exc:
            why = str(exc)
            continue
        if response.status_code in gone:
            return None
        why = f"DELETE {response.url} answered {response.status_code}"
        if response.status_code < 500 and response.status_code != 429:
            return why
    return f"{why} ({attempts} attempts)"


@dataclass
class Entry:
    """One record of the ledger: registered *before* its create is sent, so a create in flight when the
    run is interrupted is still found (by its markers) and removed."""

    collection: Collection
    identity: Identity
    #: the table behind the collection, made only when a lost create has to be looked for there too
    store: Callable[[], Datastore | None] = lambda: None
    item_id: Any = None
    sent_at: float = field(default_factory=time.monotonic)
    #: an answer to the create came back (the server is done with it), even if it was an error
    answered: bool = False

    @property
    def label(self) -> str:
        return f"{self.collection.label} {self.item_id if self.item_id is not None else '(create in flight)'}"


@dataclass(frozen=True)
class Left:
    """A record the ledger could not remove."""

    env: Environment
    what: str


@dataclass
class Ledger:
    """Records created by the gate in this process, deleted at teardown (also after failures and
    interrupts). Entries are registered before the create is sent; a record is deleted only if it still
    carries its markers (an id can be another record's by then)."""

    entries: list[Entry] = field(default_factory=list)

    def intend(self, collection: Collection, identity: Identity,
               store: Callable[[], Datastore | None] | None = None) -> Entry:
        entry = Entry(collection, identity, store or (lambda: None))
        self.entries.append(entry)
        return entry

    def add(self, collection: Collection, item_id: Any) -> None:
        """Track a record created by other means (by id; its markers, if any, are checked at deletion)."""
        entry = self.intend(collection, Identity({}))
        entry.item_id, entry.answered = item_id, True

    def discard(self, collection: Collection, item_id: Any) -> None:
        self.entries = [e for e in self.entries
                        if not (e.collection is collection and str(e.item_id) == str(item_id))]

    def purge(self) -> list[Left]:
        """Delete every entry; returns what could not be removed (the clean-up must not stop at the first)."""
        left = []
        while self.entries:
            entry = self.entries.pop()
            try:
                ids = [entry.item_id] if entry.item_id is not None else self._landed(entry)
                for item_id in ids:
                    why = self._remove(entry, item_id)
                    if why:
                        left.append(Left(entry.collection.env, f"{entry.collection.label} {item_id}: {why}"))
            except Exception as exc:  # one record's trouble must not keep the others
                left.append(Left(entry.collection.env, f"{entry.label}: {type(exc).__name__}: {exc}"))
        return left

    @staticmethod
    def _remove(entry: Entry, item_id: Any) -> str | None:
        coll = entry.collection
        try:
            response = coll.probe(item_id)
        except RequestFailed:
            response = None  # cannot look: the delete below is tried (and retried) anyway
        if response is not None:
            if response.status_code in coll.spec.expect["missing"]:
                return None
            if response.ok:
                try:
                    item = response.json()
                except ValueError:
                    item = None
                if isinstance(item, dict) and entry.identity.compare(item) is False:
                    return None  # that id now holds another record: ours is gone already
        return delete_with_retry(coll, item_id)

    @staticmethod
    def _landed(entry: Entry) -> list[Any]:
        """Ids of the record a create without a known answer made, found by its record marker in the
        API's list and the table; looked for until the create could no longer land (its read timeout)."""
        marker = entry.identity.fields.get(MARK_RECORD)
        if not marker:
            return []  # markers are off: nothing tells this record from others of the run
        coll = entry.collection
        http = coll.env.http
        deadline = time.monotonic() if entry.answered else \
            entry.sent_at + http.connect_timeout_s + http.read_timeout_s + 1.0
        store = entry.store()
        problems: list[str] = []
        while True:
            found: list[Any] = []
            problems = []
            try:
                found += [i.get(coll.spec.id_field) for i in coll.items_of(coll.http.get(coll.spec.path))
                          if i.get(MARK_RECORD) == marker]
            except CheckFailure as exc:
                problems.append(f"API list: {exc}")
            if store is not None:
                try:
                    found += [i.get(store.key) for i in store.scan_marked() if i.get(MARK_RECORD) == marker]
                except Exception as exc:  # botocore errors: the API list may still have found it
                    problems.append(f"{store.where}: {type(exc).__name__}: {exc}")
            ids = list(dict.fromkeys(i for i in found if i is not None))
            if ids or time.monotonic() >= deadline:
                break
            time.sleep(PENDING_POLL_S)
        if not ids and len(problems) == (2 if store is not None else 1):
            raise CheckFailure(f"could not look for it: {'; '.join(problems)}")
        return ids


def describe_left(left: Iterable[Left], run_id: str) -> str:
    """What could not be removed, and the command per environment that removes it later."""
    left = list(left)
    envs = {x.env.name: x.env for x in left}
    return ("test records could not be removed: " + "; ".join(x.what for x in left) + ". Remove them with: "
            + " and ".join(f"`{cleanup_command(env, run_id)}`" for env in envs.values()))


# --------------------------------------------------------------------------------------------------
# clean-up of leftovers (``deploygate cleanup``)


@dataclass
class Leftover:
    collection: str
    item_id: Any
    run_id: str
    created_at: float | None
    where: str  # "api" or "table"


def find_leftovers(collection: Collection, store: Datastore | None, older_than_s: float = 0,
                   run_id: str | None = None) -> tuple[list[Leftover], list[str]]:
    """Records carrying a gate run marker, in the API's list and (if declared) in the table, and what
    could not be searched. One source failing falls back to the other; both failing is a CheckFailure."""
    now = time.time()
    found: dict[str, Leftover] = {}

    def keep(item: Mapping[str, Any], where: str, item_id: Any) -> None:
        run = item.get(MARK_RUN)
        if not run or (run_id and run != run_id):
            return
        created = item.get(MARK_CREATED)
        created_f = float(str(created)) if isinstance(created, numbers.Number) and not isinstance(created, bool) \
            else None
        if older_than_s and created_f is not None and now - created_f < older_than_s:
            return
        if item_id is not None and str(item_id) not in found:
            found[str(item_id)] = Leftover(collection.spec.name, item_id, str(run), created_f, where)

    failed: list[str] = []
    try:
        for item in collection.list_items("list leftovers"):
            keep(item, "api", item.get(collection.spec.id_field))
    except CheckFailure as exc:
        failed.append(f"the API list failed ({exc})")
    if store is not None:
        try:
            for item in store.scan_marked():
                keep(item, "table", item.get(store.key))
        except Exception as exc:  # botocore's errors: one line, and the API list stands
            failed.append(f"the scan of {store.where} failed ({type(exc).__name__}: {exc})")
    if len(failed) == (2 if store is not None else 1):
        raise CheckFailure(f"{collection.label}: cannot look for leftovers: " + "; ".join(failed))
    return list(found.values()), failed


def remove_leftovers(collection: Collection, store: Datastore | None,
                     leftovers: Iterable[Leftover]) -> tuple[int, list[str]]:
    """Delete through the API (retried on 5xx); what the API will not delete is removed from the table
    itself when there is one. Returns the number removed and what is still there."""
    removed, problems = 0, []
    for left in leftovers:
        why = delete_with_retry(collection, left.item_id)
        if why and store is not None:
            try:
                if store.get(left.item_id) is not None:
                    store.delete(left.item_id)  # not removable through the API: from the table itself
                why = None
            except Exception as exc:
                why = f"{why}; from {store.where}: {type(exc).__name__}: {exc}"
        if why:
            problems.append(f"{collection.label} {left.item_id}: {why}")
        else:
            removed += 1
    return removed, problems
