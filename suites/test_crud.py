"""CRUD suite: every declared collection round-trips create → read → list → update → read → delete →
not found, through the API and (when the collection declares its table) in this environment's datastore.

Driven by ``crud.collections``; every record carries the run markers and a TTL and is deleted at teardown.
"""

from __future__ import annotations

import pytest

from pytest_deploygate import current_environment
from pytest_deploygate.failures import CheckFailure
from pytest_deploygate.records import Datastore

pytestmark = [pytest.mark.gate, pytest.mark.crud, pytest.mark.destructive]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    env = current_environment(metafunc.config)
    if env is not None and "collection_spec" in metafunc.fixturenames:
        specs = env.crud.collections
        metafunc.parametrize("collection_spec", specs, ids=[c.name for c in specs])


def test_crud_lifecycle(records, aws, gate, collection_spec) -> None:  # type: ignore[no-untyped-def]
    """One record of the collection goes through its whole life cycle."""
    coll = records.collection(collection_spec)
    store = Datastore(aws, collection_spec) if collection_spec.table else None
    ok = 0
    try:
        item_id, sent = records.create(coll)
        if store is not None and store.get(item_id) is None:
            raise CheckFailure(f"{coll.label}: datastore: created item {item_id} is not in {store.where}")

        wrong = coll.mismatches(coll.read(item_id), sent, collection_spec.compare)
        if wrong:
            raise CheckFailure(f"{coll.label}: read: item {item_id} does not match what was created: "
                               + "; ".join(wrong))
        if coll.find(coll.list_items(), item_id) is None:
            raise CheckFailure(f"{coll.label}: list: created item {item_id} is not in GET {collection_spec.path}")

        update = coll.body(collection_spec.update)
        coll.update(item_id, update)
        wrong = coll.mismatches(coll.read(item_id, "read after update"), update,
                                collection_spec.compare or list(collection_spec.update))
        if wrong:
            raise CheckFailure(f"{coll.label}: read after update: item {item_id} does not reflect the update: "
                               + "; ".join(wrong))

        coll.delete(item_id)
        records.deleted(coll, item_id)
        coll.expect_missing(item_id)
        if store is not None and store.get(item_id) is not None:
            raise CheckFailure(f"{coll.label}: datastore: deleted item {item_id} is still in {store.where}")
        ok = 1
    finally:
        for step in coll.steps:
            gate.record(f"crud.{step.name.replace(' ', '_')}_ms", step.elapsed_ms, collection=collection_spec.name)
        gate.record("crud.lifecycle_ok", ok, collection=collection_spec.name)
