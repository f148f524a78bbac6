"""Production stays read-only through every HTTP route a user's test can take: the guard sits at the
transport and decides by destination, whatever fixture made the client (issue 10)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from hostile import HostileServer

from gatehelpers import REFUSAL, Gate, ProdState, RunningDemo

pytestmark = pytest.mark.e2e

@pytest.fixture
def prod(gate_project: Gate) -> Iterator[tuple[RunningDemo, str]]:
    demo = RunningDemo(gate_project, [])
    try:
        # a record of prod's own, for the deletes to aim at
        created = requests.post(demo.api("prod") + "/api/stories", json={"title": "prod's own"}, timeout=5)
        assert created.status_code in (200, 201), created.text
        yield demo, str(created.json()["id"])
    finally:
        demo.stop()


def _refusals(failed: dict[str, str], expected: dict[str, str]) -> None:
    for test, method in expected.items():
        reason = failed.get(f"test_mine.py::{test}", "")
        assert f"refused {method} http://127.0.0.1:" in reason and REFUSAL in reason, (test, reason)


def test_no_http_route_writes_to_prod_from_a_prod_run(gate_project: Gate, prod: tuple[RunningDemo, str]) -> None:
    demo, item = prod
    redirector = HostileServer()
    gate_project.monkeypatch.setenv("PROD_ITEM", item)
    gate_project.monkeypatch.setenv("REDIRECTOR", redirector.url)
    gate_project.pytester.makepyfile(test_mine="""
        import os
        import requests
        from requests.adapters import HTTPAdapter

        def prepared(method, url, **kw):
            return requests.Request(method, url, **kw).prepare()

        def test_send_post(api):
            api.send(prepared("POST", api.url_for("/api/stories"), json={"title": "oops"}))

        def test_send_delete(api):
            api.send(prepared("DELETE", api.url_for("/api/stories/" + os.environ["PROD_ITEM"])))

        def test_session_send(api):
            requests.Session.send(api, prepared("PUT", api.url_for("/api/stories/" + os.environ["PROD_ITEM"]),
                                                json={"title": "replaced"}))

        def test_adapter_send(api):
            url = api.url_for("/api/stories")
            api.get_adapter(url).send(prepared("POST", url, json={"title": "oops"}), timeout=5)

        def test_new_adapter(api):
            api.mount("http://", HTTPAdapter())
            api.post("/api/stories", json={"title": "oops"})

        def test_adapters_dict(api):
            api.adapters["http://"] = HTTPAdapter()
            api.delete("/api/stories/" + os.environ["PROD_ITEM"])

        def test_redirect(api):
            target = api.url_for("/api/stories")
            api.post(os.environ["REDIRECTOR"] + "/redirect?to=" + target, json={"title": "oops"})

        def test_frontend_put(frontend):
            frontend.put("config.js", data="window.CONFIG = {};")

        def test_reads_still_work(api, frontend):
            assert api.get("/api/stories").status_code == 200
            assert api.send(prepared("GET", api.url_for("/api/stories/" + os.environ["PROD_ITEM"]))).status_code == 200
            assert frontend.get("config.js").status_code == 200
    """)
    state = ProdState(demo)
    try:
        before = state.snapshot()
        res = gate_project.run("--env", "prod", "--no-builtin-suites", "test_mine.py")
        after = state.snapshot()
    finally:
        redirector.stop()
    assert res.ret == 1, res.output
    failed = res.failed_tests()
    _refusals(failed, {"test_send_post": "POST", "test_send_delete": "DELETE", "test_session_send": "PUT",
                       "test_adapter_send": "POST", "test_new_adapter": "POST", "test_adapters_dict": "DELETE",
                       "test_redirect": "POST", "test_frontend_put": "PUT"})
    assert "test_mine.py::test_reads_still_work" not in failed
    assert res.report is not None and res.report["tests"]["passed"] == 1
    assert after == before


def test_no_http_route_writes_to_prod_from_a_staging_run(gate_project: Gate, prod: tuple[RunningDemo, str]) -> None:
    demo, item = prod
    gate_project.monkeypatch.setenv("PROD_ITEM", item)
    gate_project.pytester.makepyfile(test_mine="""
        import os

        def test_client_on_prod_url(http_client, peers):
            http_client(base_url=peers["prod"].base_url).post("/api/stories", json={"title": "oops"})

        def test_absolute_prod_url(api, peers):
            api.delete(peers["prod"].base_url + "/api/stories/" + os.environ["PROD_ITEM"])

        def test_prod_bucket_from_frontend(frontend, peers):
            frontend.put(peers["prod"].frontend_url.rsplit("/", 1)[0] + "/config.js", data="window.CONFIG = {};")

        def test_reads_of_prod(http_client, peers):
            prod = http_client(base_url=peers["prod"].base_url)
            assert prod.get("/api/stories/" + os.environ["PROD_ITEM"]).json()["title"] == "prod's own"

        def test_staging_writes_are_fine(api):
            created = api.post("/api/stories", json={"title": "staging's"})
            assert created.status_code in (200, 201)
            assert api.delete("/api/stories/" + str(created.json()["id"])).status_code in (200, 204)
    """)
    state = ProdState(demo)
    before = state.snapshot()
    res = gate_project.run("--env", "staging", "--no-builtin-suites", "test_mine.py")
    after = state.snapshot()
    assert res.ret == 1, res.output
    failed = res.failed_tests()
    _refusals(failed, {"test_client_on_prod_url": "POST", "test_absolute_prod_url": "DELETE",
                       "test_prod_bucket_from_frontend": "PUT"})
    assert res.report is not None and res.report["tests"]["passed"] == 2, failed
    assert after == before
