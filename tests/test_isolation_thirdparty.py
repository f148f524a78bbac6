"""Isolation and CRUD against REST servers nobody here wrote, with counting-up numeric ids: json-server and
mock-config-server (its database mode), both from npm (tests/jsonserver, installed by .ci/run).

dev and prod are two instances, each holding data of its own, so a canary written in dev gets an id that
prod's own records already have: that is not a leak. Two addresses onto one instance (a shared store)
is. A peer that answers 500 or drops the connection is "could not check", never a leak. The unit tests
of the identity rule come first."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from gatehelpers import REPO, Gate, wait_for
from pytest_deploygate.records import MARK_CANARY, MARK_ENV, MARK_RECORD, MARK_RUN, Identity

SERVERS = REPO / "tests" / "jsonserver"
RUN = "dg-20260101T000000-abc123"


# --------------------------------------------------------------------------------------------------
# the identity rule (pure)


def _canary_identity() -> Identity:
    body = {"title": f"gate probe {RUN}", "author": "deploygate", MARK_RUN: RUN, MARK_ENV: "dev",
            MARK_RECORD: f"{RUN}-0a0b0c0d", MARK_CANARY: f"dev:{RUN}:01020304", "deploygateCreatedAt": 1}
    return Identity.of(body, RUN)


def test_a_record_with_the_same_id_but_other_values_is_not_the_canary() -> None:
    identity = _canary_identity()
    assert identity.compare({"id": 3, "title": "hello", "author": "prod's own"}) is False
    # an older gate record of prod, same id: another run, another canary
    assert identity.compare({"id": 3, "title": "gate probe dg-old", MARK_RUN: "dg-old", MARK_ENV: "prod"}) is False
    # a record of this run written in another environment is not this canary either
    other = {MARK_RUN: RUN, MARK_ENV: "staging", MARK_CANARY: f"staging:{RUN}:99999999"}
    assert identity.compare(other) is False


def test_the_canary_itself_is_recognised_whatever_its_id() -> None:
    identity = _canary_identity()
    assert identity.compare({"id": 17, **identity.fields}) is True
    assert identity.compare({"id": "x", MARK_CANARY: identity.fields[MARK_CANARY]}) is True  # fields dropped


def test_a_record_without_identifying_values_cannot_be_told() -> None:
    identity = _canary_identity()
    assert identity.compare({"id": 3}) is None
    assert identity.kept_by({"id": 3, "author": "deploygate"}).fields == {}
    kept = identity.kept_by({"id": 3, MARK_RUN: RUN, MARK_ENV: "dev", "title": "changed by the API"})
    assert kept.fields == {MARK_RUN: RUN, MARK_ENV: "dev"}


def test_what_stays_is_named_with_the_command_per_environment() -> None:
    from types import SimpleNamespace

    from pytest_deploygate.records import Left, describe_left

    # only an environment's name and protection matter here
    dev: Any = SimpleNamespace(name="dev", protected=False)
    prod: Any = SimpleNamespace(name="prod", protected=True)
    text = describe_left([Left(dev, "dev posts 3: DELETE answered 500 (4 attempts)"),
                          Left(dev, "dev posts 4: DELETE answered 500 (4 attempts)"),
                          Left(prod, "prod posts 9: DELETE answered 503 (4 attempts)")], RUN)
    assert "dev posts 3: DELETE answered 500 (4 attempts); dev posts 4" in text
    assert text.count(f"`deploygate cleanup --env dev --run-id {RUN}`") == 1
    assert f"`deploygate cleanup --env prod --run-id {RUN} --allow-writes`" in text


# --------------------------------------------------------------------------------------------------
# the servers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(kind: str, port: int, db: Path) -> list[str]:
    if kind == "json-server":
        binary = SERVERS / "node_modules" / ".bin" / "json-server"
        # the source first: --middlewares takes every argument after it
        return [str(binary), str(db), "--host", "127.0.0.1", "--port", str(port), "--middlewares",
                str(SERVERS / "faults.js")]
    return ["node", str(SERVERS / "mcs-serve.js"), str(port), str(db)]


StartServer = Callable[..., str]


@pytest.fixture
def rest_server(tmp_path: Path) -> Iterator[StartServer]:
    """``rest_server(kind, posts, fault=None)``: a third-party REST server holding ``posts`` on a free
    loopback port; returns its URL. Stopped by its pid at the end."""
    assert (SERVERS / "node_modules" / "json-server").exists() and \
        (SERVERS / "node_modules" / "mock-config-server").exists(), \
        "run: npm ci --prefix tests/jsonserver (done by .ci/run)"
    procs: list[subprocess.Popen[bytes]] = []

    def start(kind: str, posts: list[dict[str, Any]], fault: str | None = None) -> str:
        port = _free_port()
        db = tmp_path / f"db-{port}.json"
        db.write_text(json.dumps({"posts": posts}))
        env = dict(os.environ, DEPLOYGATE_TEST_FAULT=fault or "")
        procs.append(subprocess.Popen(_command(kind, port, db), cwd=tmp_path, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        def up() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for(up, timeout=30, what=kind)
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def second_door() -> Iterator[Callable[[str], str]]:
    """``second_door(url)``: another loopback port onto the same server (a plain TCP relay), as when two
    environments' APIs are deployed over one store: different addresses, the same data."""
    stop = threading.Event()
    listeners: list[socket.socket] = []

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve(listener: socket.socket, target: tuple[str, int]) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(target, timeout=10)
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    def open_door(url: str) -> str:
        host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listeners.append(listener)
        threading.Thread(target=serve, args=(listener, (host, int(port))), daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield open_door
    stop.set()
    for listener in listeners:
        listener.close()


def _posts(env: str, count: int, start: int = 1) -> list[dict[str, Any]]:
    """``count`` records of an environment's own, with ids from ``start``."""
    return [{"id": i, "title": f"{env} post {i}", "author": f"{env} team"} for i in range(start, start + count)]


#: prod's own data: ids 0..5 (whatever the canary gets in dev, prod has that id), one of them an old
#: gate record of prod's own (another run's markers)
PROD_POSTS = [*_posts("prod", 5, 0),
              {"id": 5, "title": "gate probe dg-old", MARK_RUN: "dg-20250101T000000-0ld0ld", MARK_ENV: "prod"}]


def _configure(gate: Gate, dev: str, prod: str) -> None:
    (gate.path / "deploygate.toml").write_text(f"""
service = "blog"

[defaults]
smoke = {{ health = [{{ path = "/posts" }}] }}

[[defaults.crud.collections]]
name = "posts"
path = "/posts"
create = {{ title = "gate probe {{run_id}}", author = "deploygate" }}
update = {{ title = "gate probe {{run_id}} v2", author = "deploygate" }}

[environments.dev]
base_url = "{dev}"

[environments.prod]
base_url = "{prod}"
protected = true
""")


def _list(url: str) -> list[dict[str, Any]]:
    data = requests.get(url + "/posts", timeout=10).json()
    assert isinstance(data, list)
    return data


# CORS is judged elsewhere (json-server reflects any origin); the configuration check needs a frontend
CHECKS = ["-k", "not cors"]


# --------------------------------------------------------------------------------------------------
# healthy: separate stores whose ids collide


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["json-server", "mock-config-server"])
def test_colliding_ids_in_a_populated_prod_are_not_leaks(gate_project: Gate, rest_server: StartServer,
                                                         kind: str) -> None:
    dev_posts = _posts("dev", 2, 1)
    dev, prod = rest_server(kind, dev_posts), rest_server(kind, PROD_POSTS)
    _configure(gate_project, dev, prod)
    res = gate_project.run("--env", "dev", "-m", "gate and (crud or isolation)", *CHECKS)
    assert res.ret == 0, res.output
    assert res.report is not None
    assert res.report["categories"]["crud"]["tests"]["passed"] == 1
    assert res.metric("isolation.leaks_count", check="canary-out", env="dev", seen_in="prod")["value"] == 0
    assert res.metric("isolation.canaries_checked_count", env="dev", seen_in="prod")["value"] == 1
    # the collision was real: the canary took dev's next id, which prod holds as its own record
    next_id = max(p["id"] for p in dev_posts) + 1
    assert requests.get(f"{prod}/posts/{next_id}", timeout=10).status_code == 200
    # nothing left behind in dev, nothing written to prod
    assert _list(dev) == dev_posts
    assert _list(prod) == PROD_POSTS


# --------------------------------------------------------------------------------------------------
# faulty: one store behind both environments


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["json-server", "mock-config-server"])
def test_a_shared_store_is_still_a_leak(gate_project: Gate, rest_server: StartServer,
                                       second_door: Callable[[str], str], kind: str) -> None:
    shared = rest_server(kind, _posts("dev", 2, 1))
    prod = second_door(shared)
    _configure(gate_project, shared, prod)
    res = gate_project.run("--env", "dev", "-m", "gate and isolation", *CHECKS)
    assert res.ret == 1, res.output
    reason = next(r for n, r in res.failed_tests().items() if "test_canary_stays_here[prod]" in n)
    assert "leak: canary posts/3 written in dev is visible in prod" in reason, reason
    assert f"by id (GET {prod}/posts/3 answered 200 with this canary)" in reason
    assert "in prod's list" in reason
    assert res.metric("isolation.leaks_count", check="canary-out", env="dev", seen_in="prod")["value"] == 2
    assert _list(shared) == _posts("dev", 2, 1)  # the canary is gone again


# --------------------------------------------------------------------------------------------------
# could not check


@pytest.mark.e2e
@pytest.mark.parametrize("fault, why", [("get-500", "answered 500"), ("get-drop", "GET ")])
def test_a_failing_peer_is_could_not_check_not_a_leak(gate_project: Gate, rest_server: StartServer,
                                                      fault: str, why: str) -> None:
    dev = rest_server("json-server", _posts("dev", 2, 1))
    prod = rest_server("json-server", PROD_POSTS, fault=fault)
    _configure(gate_project, dev, prod)
    res = gate_project.run("--env", "dev", "-m", "gate and isolation", "-k", "canary_stays_here")
    assert res.ret == 1, res.output
    reason = next(r for n, r in res.failed_tests().items() if "test_canary_stays_here[prod]" in n)
    assert "canary-out: could not check: canary posts/3 written in dev, looked for in prod: by id" in reason, reason
    assert why in reason and "prod's list" in reason
    assert "leak" not in reason
    assert res.metric("isolation.unverified_count", check="canary-out", env="dev", seen_in="prod")["value"] == 1
    assert not [m for m in res.report["metrics"] if m["name"] == "isolation.leaks_count"] if res.report else False
    assert _list(dev) == _posts("dev", 2, 1)


# --------------------------------------------------------------------------------------------------
# nothing left behind when the API will not delete


def _crud_only(gate: Gate, url: str) -> None:
    (gate.path / "deploygate.toml").write_text(f"""
service = "blog"

[environments.local]
base_url = "{url}"
smoke = {{ health = [{{ path = "/posts" }}] }}

[[environments.local.crud.collections]]
name = "posts"
path = "/posts"
create = {{ title = "gate probe {{run_id}}", author = "deploygate" }}
update = {{ title = "gate probe {{run_id}} v2", author = "deploygate" }}
""")


@pytest.mark.e2e
def test_a_record_the_api_will_not_delete_is_named_with_the_cleanup_command(gate_project: Gate,
                                                                           rest_server: StartServer) -> None:
    url = rest_server("json-server", [], fault="delete-500")
    _crud_only(gate_project, url)
    res = gate_project.run("--env", "local", "-m", "gate and crud")
    assert res.ret == 1, res.output
    assert res.report is not None
    run_id = res.report["run_id"]
    command = f"deploygate cleanup --env local --run-id {run_id}"
    left = _list(url)
    assert [p["id"] for p in left] == [1] and left[0][MARK_RUN] == run_id  # it really is still there
    note = next(n for n in res.report["notes"] if "could not be removed" in n)
    assert f"local posts 1: DELETE {url}/posts/1 answered 500 (4 attempts)" in note
    assert command in note
    assert command in res.stdout  # the summary names it too
    teardown = next(r for n, r in res.failed_tests().items() if "test_crud_lifecycle[posts]" in n)
    assert "delete" in teardown


@pytest.mark.e2e
def test_deletes_answered_500_are_retried(gate_project: Gate, rest_server: StartServer) -> None:
    # the lifecycle's own DELETE and the teardown's first one answer 500; the teardown tries again
    url = rest_server("json-server", [], fault="delete-500:2")
    _crud_only(gate_project, url)
    res = gate_project.run("--env", "local", "-m", "gate and crud")
    assert res.ret == 1, res.output  # the lifecycle's delete step failed: a CRUD finding
    assert res.report is not None
    assert not [n for n in res.report["notes"] if "could not be removed" in n]
    assert _list(url) == []


@pytest.mark.e2e
def test_a_list_that_fails_is_could_not_check_for_foreign_records(gate_project: Gate,
                                                                  rest_server: StartServer) -> None:
    dev = rest_server("json-server", _posts("dev", 2, 1), fault="get-500")
    _configure(gate_project, dev, rest_server("json-server", PROD_POSTS))
    res = gate_project.run("--env", "dev", "-m", "gate and isolation", "-k", "foreign")
    assert res.ret == 1, res.output
    reason = next(r for n, r in res.failed_tests().items() if "test_no_foreign_records" in n)
    assert f"foreign-records: could not check: GET {dev}/posts answered 500" in reason, reason
    assert res.metric("isolation.unverified_count", check="foreign-records", env="dev")["value"] == 1


# --------------------------------------------------------------------------------------------------
# CRUD on a json-server API (its own ids, no marker fields)


@pytest.fixture
def json_server(tmp_path: Path) -> Iterator[str]:
    """The real json-server (npm) on a free loopback port: an API written by nobody here."""
    binary = REPO / "tests" / "jsonserver" / "node_modules" / ".bin" / "json-server"
    assert binary.exists(), "run: npm ci --prefix tests/jsonserver (done by .ci/run)"
    (tmp_path / "db.json").write_text(json.dumps({"posts": [], "comments": []}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(binary), "--host", "127.0.0.1", "--port", str(port), "db.json"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(url + "/posts", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(up, timeout=30, what="json-server")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_crud_on_a_json_server_api(gate_project: Gate, json_server: str) -> None:
    (gate_project.path / "deploygate.toml").write_text(f"""
service = "blog"

[environments.local]
base_url = "{json_server}"
smoke = {{ health = [{{ path = "/posts" }}] }}

[[environments.local.crud.collections]]
path = "/posts"
create = {{ title = "gate probe {{run_id}}", author = "deploygate" }}
update = {{ title = "gate probe {{run_id}} v2", author = "deploygate" }}
expect = {{ create = 201, delete = 200 }}

[[environments.local.crud.collections]]
name = "comments"
path = "/comments"
create = {{ body = "probe", postId = 1 }}
update = {{ body = "probe, edited", postId = 1 }}
update_method = "PATCH"
""")
    res = gate_project.run("--env", "local", "-m", "gate and crud")
    assert res.ret == 0, res.output
    assert res.report is not None and res.report["categories"]["crud"]["tests"]["passed"] == 2
    assert requests.get(json_server + "/posts", timeout=5).json() == []  # nothing left behind
