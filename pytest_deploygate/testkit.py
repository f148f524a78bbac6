"""What the fixtures hand to a test (:mod:`pytest_deploygate.fixtures`): the gate recorder
(:class:`GateRecorder`, the ``gate`` fixture), the records helper (:class:`Records`, ``records``) and a
canary record (:class:`Canary`, ``canary``). Imported by the first fixture that needs one, not at pytest's
start: installed, the plugin loads only its hooks and the fixture definitions in every pytest run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from .failures import Unverified
from .run import ARTIFACT_PROPERTY, FINDING_PROPERTY, NOTE_PROPERTY, GateRun, get_run

if TYPE_CHECKING:  # pragma: no cover
    from .aws import EnvironmentAWS
    from .config import Environment
    from .gate import Metric
    from .http import GateHTTP
    from .records import Collection, Datastore, Identity, Ledger
    from .sections import CollectionSpec

__all__ = ["Canary", "GateRecorder", "Records"]


class Records:
    """Creates records through environments' APIs and deletes them all at teardown."""

    def __init__(self, run: GateRun, http_client: Callable[..., GateHTTP], ledger: Ledger,
                 aws_for: Callable[[Environment], EnvironmentAWS] | None = None) -> None:
        self.run = run
        self._http_client = http_client
        self.ledger = ledger
        self._aws_for = aws_for

    def collection(self, spec: CollectionSpec | str | None = None, env: Environment | None = None) -> Collection:
        """CRUD access to ``spec`` (a ``crud.collections`` entry or its name; default the first) in
        ``env`` (default the selected environment); what it creates is tracked by the ledger."""
        from .records import Collection
        from .sections import CollectionSpec

        env = env or self.run.environment
        if not isinstance(spec, CollectionSpec):
            found = env.crud.collection(spec)
            if found is None:
                pytest.skip(f"environment {env.name} declares no crud collection"
                            + (f" named {spec!r}" if spec else ""))
            spec = found
        return Collection(self._http_client(env=env), env, spec, self.run.run_id)

    def create(self, collection: Collection, template: dict[str, Any] | None = None,
               **extra: Any) -> tuple[Any, dict[str, Any]]:
        """Create a marked record (deleted at teardown) and return ``(id, body sent)``. The ledger knows
        of it before the request leaves, so a create interrupted in flight is still removed."""
        from .records import MARK_RECORD, Identity, record_marker

        body = collection.body(collection.spec.create if template is None else template, extra)
        if collection.env.crud.markers:
            body[MARK_RECORD] = record_marker(self.run.run_id)
        entry = self.ledger.intend(collection, Identity.of(body, self.run.run_id, markers_only=True),
                                   self._store_of(collection))
        steps = len(collection.steps)
        try:
            item_id, _ = collection.create(body)
        except BaseException:
            entry.answered = len(collection.steps) > steps
            raise
        entry.item_id, entry.answered = item_id, True
        return item_id, body

    def deleted(self, collection: Collection, item_id: Any) -> None:
        """Tell the ledger a record was deleted by the test itself."""
        self.ledger.discard(collection, item_id)

    def _store_of(self, collection: Collection) -> Callable[[], Datastore | None]:
        from .records import Datastore

        def store() -> Datastore | None:
            if self._aws_for is None or not collection.spec.table:
                return None
            return Datastore(self._aws_for(collection.env), collection.spec)

        return store


@dataclass(frozen=True)
class Canary:
    """A marked record written in one environment to prove it is not visible anywhere else."""

    env: Environment
    collection: Collection
    item_id: Any
    body: dict[str, Any]

    @property
    def identity(self) -> Identity:
        """What tells this canary from any other record: its markers and unique values, not its id."""
        from .records import Identity

        return Identity.of(self.body, self.collection.run_id)


class GateRecorder:
    """Records named metrics for the gate from inside a test."""

    def __init__(self, sink: list[dict[str, Any]], nodeid: str, item: pytest.Item | None = None) -> None:
        self._sink = sink
        self.nodeid = nodeid
        self._item = item

    def note(self, text: str) -> None:
        """A line for the gate summary and the JSON report's ``notes``."""
        if self._item is not None:
            self._item.user_properties.append((NOTE_PROPERTY, text))

    def finding(self, check: str, severity: str, text: str) -> None:
        """A security finding (or other itemised problem) listed in the report under ``findings``."""
        if self._item is not None:
            self._item.user_properties.append(
                (FINDING_PROPERTY, json.dumps({"check": check, "severity": severity.upper(), "text": text})))

    def artifact(self, name: str, path: str) -> None:
        """Attach a file (a load report, a scan result) to the gate report and the JUnit properties (its path
        relative to the report directory: no absolute local path in JUnit)."""
        if self._item is not None:
            run = get_run(self._item.config)
            if run is not None:
                from .report.metadata import relative_to

                path = relative_to(path, run.settings.report_path.parent)
            self._item.user_properties.append((ARTIFACT_PROPERTY, f"{name}={path}"))

    def record(self, name: str, value: float, unit: str | None = None, *, samples: int | None = None,
               values: Sequence[float] = (), **labels: object) -> Metric:
        """Record ``name`` (``category.name_unit``, e.g. ``smoke.health.latency_ms``) = ``value``;
        ``labels`` tell instances apart (``path="/health"``). Judged against thresholds.toml.
        ``samples``: how many observations stand behind ``value`` (the requests behind a rate: a rate from
        few requests is judged on its confidence interval, and ``min_samples`` applies); ``values``: the
        observations themselves, when few (shown in the report)."""
        from .gate import make_metric

        metric = make_metric(name, value, unit, labels, self.nodeid, samples, values)
        self._sink.append(metric.to_dict())
        return metric

    def could_not_check(self, category: str, check: str, why: str, **labels: Any) -> NoReturn:
        """Fail the test as *not verified* (never as a finding): records ``<category>.unverified_count``
        = 1 for ``check`` and raises :class:`pytest_deploygate.failures.Unverified` saying why."""
        self.record(f"{category}.unverified_count", 1, None, check=check, **labels)
        raise Unverified(f"{check}: could not check: {why}")

    @contextmanager
    def timer(self, name: str, **labels: Any) -> Iterator[None]:
        """Record the wall time of the ``with`` block, in ms, as ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.record(name, (time.perf_counter() - start) * 1000.0, "ms", **labels)
