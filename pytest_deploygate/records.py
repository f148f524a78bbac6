"""Test records the gate writes: CRUD through an environment's API, run markers and TTL on every record,
a ledger that deletes them whatever happens, and the clean-up of leftovers from crashed runs."""

from __future__ import annotations

import numbers
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import Environment
from .http import CheckFailure, GateHTTP, json_body
from .specs import CollectionSpec

if TYPE_CHECKING:  # pragma: no cover
    import requests

    from .aws import EnvironmentAWS

#: fields every record written by the gate carries (when ``crud.markers`` is on)
MARK_RUN, MARK_ENV, MARK_CREATED = "deploygateRun", "deploygateEnv", "deploygateCreatedAt"


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
        r = self._call(step, "GET", self.spec.path, self.spec.expect["list"])
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

    def _key_of(self, item_id: Any) -> dict[str, Any]:
        if self._key_type is None:
            desc = self.aws.client("dynamodb").describe_table(TableName=self.table)["Table"]
            hash_key = next(k["AttributeName"] for k in desc["KeySchema"] if k["KeyType"] == "HASH")
            self._key = self._key or hash_key
            types = {a["AttributeName"]: a["AttributeType"] for a in desc["AttributeDefinitions"]}
            self._key_type = types.get(self._key, "S")
        assert self._key is not None
        return {self._key: {self._key_type: str(item_id)}}

    def get(self, item_id: Any) -> dict[str, Any] | None:
        item = self.aws.client("dynamodb").get_item(TableName=self.table, Key=self._key_of(item_id),
                                                    ConsistentRead=True).get("Item")
        return dict(item) if item else None

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
# the ledger: what this process created, removed at teardown whatever happened


@dataclass
class Ledger:
    """Records created by the gate in this process, deleted at teardown (also after failures)."""

    entries: list[tuple[Collection, Any]] = field(default_factory=list)

    def add(self, collection: Collection, item_id: Any) -> None:
        self.entries.append((collection, item_id))

    def discard(self, collection: Collection, item_id: Any) -> None:
        self.entries = [(c, i) for c, i in self.entries if not (c is collection and str(i) == str(item_id))]

    def purge(self) -> list[str]:
        """Delete every entry; returns the problems (the run's clean-up must not stop at the first)."""
        problems = []
        while self.entries:
            collection, item_id = self.entries.pop()
            try:
                response = collection.http.delete(collection.spec.url_of(item_id))
                ok = (*collection.spec.expect["delete"], *collection.spec.expect["missing"])
                if response.status_code not in ok:
                    problems.append(f"{collection.label} {item_id}: DELETE answered {response.status_code}")
            except Exception as exc:
                problems.append(f"{collection.label} {item_id}: {exc}")
        return problems


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
                   run_id: str | None = None) -> list[Leftover]:
    """Records carrying a gate run marker, in the API's list and (if declared) in the table."""
    now = time.time()
    found: dict[str, Leftover] = {}

    def keep(item: Mapping[str, Any], where: str) -> None:
        run = item.get(MARK_RUN)
        if not run or (run_id and run != run_id):
            return
        created = item.get(MARK_CREATED)
        created_f = float(str(created)) if isinstance(created, numbers.Number) and not isinstance(created, bool) \
            else None
        if older_than_s and created_f is not None and now - created_f < older_than_s:
            return
        item_id = item.get(collection.spec.id_field)
        if item_id is not None and str(item_id) not in found:
            found[str(item_id)] = Leftover(collection.spec.name, item_id, str(run), created_f, where)

    for item in collection.list_items("list leftovers"):
        keep(item, "api")
    if store is not None:
        for item in store.scan_marked():
            keep(item, "table")
    return list(found.values())


def remove_leftovers(collection: Collection, store: Datastore | None, leftovers: Iterable[Leftover]) -> int:
    removed = 0
    for left in leftovers:
        response = collection.http.delete(collection.spec.url_of(left.item_id))
        if response.status_code in collection.spec.expect["delete"]:
            removed += 1
        elif store is not None and store.get(left.item_id) is not None:
            store.delete(left.item_id)  # not reachable through the API: remove it from the table itself
            removed += 1
    return removed
