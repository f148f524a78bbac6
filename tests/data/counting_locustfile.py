"""A locustfile that counts, in every Locust process, the requests it made (Locust's ``request`` event) and
the requests its stats reports to the master carried (``report_to_master``); each process leaves them in
``worker-counts-<pid>.json`` when it quits. Shared by tests/test_performance.py and bench/load_bench.py
(``distributed``), each pointing ``performance.locustfile`` at this file.

Parameters, from the environment (Locust processes inherit the gate's; a remote worker gets this file from
the master and reads its own): ``COUNTS_DIR`` (where the counts go; default: the process's working
directory), ``COUNTING_PATH`` (the one GET every user repeats; default ``/health``), ``COUNTING_WAIT_S``
(each user's wait between requests; default 0.02 s).
"""

from __future__ import annotations

import json
import os
from typing import Any

from locust import FastHttpUser, constant, events, task

COUNTS: dict[str, Any] = {"role": "", "requests": 0, "reported": 0}
PATH = os.environ.get("COUNTING_PATH", "/health")


@events.request.add_listener
def _count(**_: Any) -> None:
    COUNTS["requests"] += 1


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    from locust.runners import WorkerRunner

    COUNTS["role"] = "worker" if isinstance(environment.runner, WorkerRunner) else "master"
    if COUNTS["role"] == "worker":  # added after Locust's own listener, which fills the report

        @environment.events.report_to_master.add_listener
        def _sent(client_id: str, data: dict[str, Any], **_: Any) -> None:
            COUNTS["reported"] += data["stats_total"]["num_requests"]


@events.quit.add_listener
def _quit(**_: Any) -> None:
    with open(os.path.join(os.environ.get("COUNTS_DIR", "."), f"worker-counts-{os.getpid()}.json"), "w") as f:
        json.dump(COUNTS, f)


class Counted(FastHttpUser):
    wait_time = constant(float(os.environ.get("COUNTING_WAIT_S", "0.02")))

    @task
    def get(self) -> None:
        self.client.get(PATH, name=f"GET {PATH}")
