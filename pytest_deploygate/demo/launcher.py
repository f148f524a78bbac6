"""Start, provision and stop the reference deployment; its addresses live in a JSON state file.

Per environment: a moto server (own account) holding the DynamoDB tables, the frontend bucket and the
serverless resources, and an API process serving the routed handler; one OSV service for all. Every server
is forked by one fork server (``forkserver.py``: moto and boto3 imported once, not seven times); every
process is stopped by its own pid.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..target import DEMO_STATE_FILE as STATE_FILE  # one name for the state file, the plugin's and the CLI's
from . import serverless
from .faults import format_faults
from .service import COLLECTIONS, _var

SERVICE = "aipm-backend"
#: the AWS services provisioning calls (their boto3 models load while the servers start) and the moto
#: backends behind them, which the fork server loads once before it forks the moto servers (``kms``: the
#: tables' encryption)
PROVISIONED_SERVICES = ("dynamodb", "s3", "iam", "lambda", "logs", "cognito-idp", "sqs", "cloudwatch", "ssm",
                        "secretsmanager")
MOTO_BACKENDS = ("dynamodb", "s3", "iam", "awslambda", "logs", "cognitoidp", "sqs", "cloudwatch", "ssm",
                 "secretsmanager", "kms")
START_TIMEOUT_S = 60.0
ENVIRONMENT_LABELS = {"dev": "development", "staging": "staging", "prod": "production"}


class DemoError(RuntimeError):
    """The reference deployment could not be started (what failed, in one line or with a server's log)."""


def _failure(exc: BaseException) -> str:
    """An error's type and message, one line (a botocore error's type says what it is: no traceback)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _step(what: str, work: Callable[[], None]) -> Callable[[], None]:
    """``work``, whose error (a botocore error: the server died, a call refused) becomes a DemoError naming
    ``what`` was being done (the environment and the step)."""
    def run() -> None:
        try:
            work()
        except DemoError:
            raise
        except Exception as exc:
            raise DemoError(f"reference deployment: {what} failed: {_failure(exc)}") from exc

    return run


def _task_name(task: Callable[[], None]) -> str:
    """A provisioning group's name: its function's (``_provision_tables``: "tables", ``user_pool``: "user pool")."""
    name = getattr(getattr(task, "func", task), "__name__", "") or "a group of calls"
    return name.removeprefix("_provision_").replace("_", " ")


def account_for(index: int) -> str:
    return str(index + 1) * 12 if index < 9 else f"{index + 1:012d}"


def bucket_for(stage: str) -> str:
    return f"aipm-{stage}-frontend-hosting"


def table_for(stage: str, collection: str) -> str:
    return f"{SERVICE}-{stage}-{collection}"


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # our own child: reap it if it exited
        if done:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


@dataclass
class _Proc:
    """A server process: started here (``popen``) or forked by the fork server (``forks``)."""

    name: str
    ready_file: Path
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    forks: _ForkServer | None = None

    @property
    def pid(self) -> int | None:
        if self.popen is not None:
            return self.popen.pid
        return self.forks.pid_of(self.name) if self.forks is not None else None

    def failed(self) -> str | None:
        """Why it will never be ready (it exited, or was never forked: with the log to read), or None while
        it still may be."""
        if self.popen is not None:
            code = self.popen.poll()
            return None if code is None else f"exited with {code} before it was ready" + _log_tail(self.log)
        assert self.forks is not None
        pid = self.forks.pid_of(self.name)
        if pid is None:
            return self.forks.failed()
        return None if pid_alive(pid) else "exited before it was ready" + _log_tail(self.log)


def _log_tail(log: Path) -> str:
    tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
    return f"; log {log}" + (f":\n{tail}" if tail else "")


def _child_environ(env: Mapping[str, str] | None = None) -> dict[str, str]:
    child_env = dict(os.environ)
    child_env.update(env or {})
    child_env.pop("DEPLOYGATE_DEMO_FAULTS", None)  # a server knows only its own faults
    return child_env


class _ForkServer:
    """``demo/forkserver.py``: one process imports moto, boto3 and the reference API once and forks every
    server from itself (seven imports of ~0.5 CPU-s each cost more than the whole launch on two cores).
    Its stdin stays open while the deployment runs: it exits when the launcher is gone."""

    def __init__(self, workdir: Path, backends: Iterable[str] = (), sockets: Iterable[int] = ()) -> None:
        self.workdir = workdir
        self.log = workdir / "forkserver.log"
        args = ["--workdir", str(workdir)]
        if backends:
            args += ["--backends", ",".join(backends)]
        fds = tuple(sockets)
        if fds:
            args += ["--sockets", ",".join(map(str, fds))]
        with open(self.log, "wb") as err:
            self.popen: subprocess.Popen[bytes] = subprocess.Popen(
                [sys.executable, "-m", "pytest_deploygate.demo.forkserver", *args], pass_fds=fds,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=_child_environ(), cwd=str(workdir))
        self.proc = _Proc("forkserver", workdir / "forkserver.ready", self.log, popen=self.popen)
        self._pids: dict[str, int] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._read, name="demo-forkserver", daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            try:
                answer = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                if "pid" in answer:
                    self._pids[answer["name"]] = int(answer["pid"])
                else:
                    self._errors[answer.get("name")] = str(answer.get("error"))

    def pid_of(self, name: str) -> int | None:
        with self._lock:
            return self._pids.get(name)

    def failed(self) -> str | None:
        with self._lock:
            for name, error in self._errors.items():
                return f"was not started by the fork server ({name}: {error})"
        code = self.popen.poll()
        if code is None:
            return None
        return f"was not started: the fork server exited with {code}" + _log_tail(self.log)

    def spawn(self, module: str, args: list[str], name: str, env: Mapping[str, str] | None = None,
              fd: int | None = None) -> _Proc:
        """Fork ``module`` as ``name``; ``fd``: a listening socket handed over at the start, which it serves."""
        ready = self.workdir / f"{name}.ready.json"
        ready.unlink(missing_ok=True)
        request: dict[str, Any] = {"name": name, "module": module, "env": dict(env or {}),
                                   "argv": ["--ready-file", str(ready), "--parent-pid", str(self.popen.pid), *args]}
        if fd is not None:
            request.update(fd=fd)
            request["argv"] += ["--fd", str(fd)]
        assert self.popen.stdin is not None
        try:
            self.popen.stdin.write(json.dumps(request).encode() + b"\n")
            self.popen.stdin.flush()
        except BrokenPipeError:
            pass  # it exited: failed() says why
        return _Proc(name, ready, self.workdir / f"{name}.log", forks=self)

    def close(self) -> None:
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            try:
                self.popen.stdin.close()
            except BrokenPipeError:
                pass


def _listening_socket() -> socket.socket:
    """A TCP socket listening on a free loopback port, to be handed to a server (inheritable)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


def _wait_ready(procs: list[_Proc], deadline: float) -> dict[str, dict[str, Any]]:
    ready: dict[str, dict[str, Any]] = {}
    while len(ready) < len(procs):
        for p in procs:
            if p.name in ready:
                continue
            if p.ready_file.exists():
                ready[p.name] = json.loads(p.ready_file.read_text())
            elif (why := p.failed()) is not None:
                raise DemoError(f"reference deployment: {p.name} {why}")
        if len(ready) < len(procs):
            if time.monotonic() > deadline:
                late = [p.name for p in procs if p.name not in ready]
                raise DemoError(f"reference deployment: {', '.join(late)} not ready within "
                                f"{START_TIMEOUT_S:g} s")
            time.sleep(0.01)
    return ready


def _index_html(env: str, stage: str, faults: frozenset[str]) -> str:
    extra = ('\n    <script src="vendor/chart.min.js"></script>' if "frontend-broken" in faults else "")
    return f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>AIPM ({stage})</title>
    <link rel="stylesheet" href="styles.css">
    <script src="config.js"></script>{extra}
    <script src="app.js" defer></script>
  </head>
  <body data-stage="{stage}">
    <h1>AIPM</h1>
    <p id="environment-banner">Environment: <span id="environment">{ENVIRONMENT_LABELS.get(env, env)}</span></p>
    <ul id="stories"></ul>
  </body>
</html>
"""


def _config_js(env: str, stage: str, api_url: str, tables_stage: str, leak_secret: bool = False) -> str:
    # secret-in-config: the deploy script pasted the CI's AWS keys into the frontend (AWS's documented
    # example key pair, not a real one)
    secret = ("  awsAccessKeyId: 'AKIAIOSFODNN7EXAMPLE',\n"
              "  awsSecretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',\n") if leak_secret else ""
    return f"""const CONFIG = {{
  environment: '{ENVIRONMENT_LABELS.get(env, env)}',
  apiEndpoint: '{api_url}',
  stage: '{stage}',
  region: 'us-east-1',
{secret}  storiesTable: '{table_for(tables_stage, "stories")}',
  acceptanceTestsTable: '{table_for(tables_stage, "acceptance-tests")}'
}};
"""


SERVICE_MODULES = ("service.py", "apigw.py", "faults.py", "process.py")
INSECURE_MODULE = '''"""Export helpers (insecure-code fault: a shell command built from request input)."""

import subprocess


def export_to(path: str) -> None:
    subprocess.Popen("tar czf " + path + " /tmp/export", shell=True)
'''


def _deploy_artifacts(env_dir: Path, faults: frozenset[str]) -> tuple[Path, Path]:
    """What a deploy ships: the service's source (for the code scan) and its pinned requirements."""
    from importlib.metadata import version

    src = env_dir / "src" / "aipm_api"
    src.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).parent
    (src / "__init__.py").write_text('"""The AIPM API, as deployed."""\n')
    for name in SERVICE_MODULES:
        (src / name).write_text((here / name).read_text())
    if "insecure-code" in faults:
        (src / "export.py").write_text(INSECURE_MODULE)
    pins = {"boto3": version("boto3"), "requests": version("requests")}
    if "vulnerable-deps" in faults:
        pins.update({"requests": "2.19.0", "jinja2": "2.10"})
    requirements = env_dir / "requirements.txt"
    requirements.write_text("".join(f"{name}=={v}\n" for name, v in sorted(pins.items())))
    return src.parent, requirements


APP_JS = """document.addEventListener('DOMContentLoaded', async () => {
  const list = document.getElementById('stories');
  const res = await fetch(CONFIG.apiEndpoint + '/api/stories');
  for (const story of await res.json()) {
    const li = document.createElement('li');
    li.textContent = story.title;
    list.appendChild(li);
  }
});
"""
STYLES_CSS = "body { font-family: sans-serif; margin: 2rem; }\n"


class AwsClients:
    """Clients of one boto3 session for every environment's emulated account.

    A boto3 session is not thread-safe, its clients are: clients are created under a lock and cached
    per (service, endpoint), then used freely from the provisioning threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[tuple[str, str], Any] = {}

    def prepare(self, services: Iterable[str], endpoints: Iterable[str]) -> None:
        """Build the clients of ``services`` for every endpoint now (loading the services' models; a client
        opens no connection until its first call), while the servers start."""
        for endpoint in endpoints:
            for service in services:
                self.client(service, endpoint)

    def client(self, service: str, endpoint_url: str) -> Any:
        with self._lock:
            client = self._clients.get((service, endpoint_url))
            if client is None:
                if self._session is None:
                    import boto3

                    self._session = boto3.session.Session(
                        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
                client = self._clients[(service, endpoint_url)] = self._session.client(
                    service, endpoint_url=endpoint_url)
            return client


@dataclass(eq=False)
class EnvironmentSetup:
    """One environment while it is being deployed: what provisioning reads, and what it adds.

    ``api_env`` is the environment of the environment's API process (provisioning may add to it);
    ``outputs`` are merged into the environment's entry of the state file; ``peers`` holds every
    environment by name (read their ``outputs`` only in ``wire_environment``, after all are provisioned).
    """

    name: str
    stage: str
    index: int
    faults: frozenset[str]
    account_id: str
    endpoint_url: str
    clients: AwsClients
    api_env: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    peers: Mapping[str, EnvironmentSetup] = field(default_factory=dict)
    api_url: str = ""

    def client(self, service: str) -> Any:
        """A boto3 client of ``service`` in this environment's account (shared, thread-safe)."""
        return self.clients.client(service, self.endpoint_url)

    def next_peer(self) -> EnvironmentSetup | None:
        """The next environment in order (a miswired deploy's target), or None if there is only this one."""
        names = list(self.peers)
        if len(names) < 2:
            return None
        return self.peers[names[(names.index(self.name) + 1) % len(names)]]


def _api_environment(env: EnvironmentSetup) -> dict[str, str]:
    """The API process's configuration, as a deploy sets a Lambda's environment variables."""
    return {
        "STAGE": env.stage, "SERVICE": SERVICE, "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": env.endpoint_url,
        "ALLOWED_ORIGIN": "*" if env.stage == "dev" or "cors-wildcard" in env.faults else env.endpoint_url,
        "DEPLOYGATE_FAULTS": ",".join(sorted(env.faults)),
        "ADMIN_TOKEN": secrets.token_urlsafe(18),
        **{_var(c): table_for(env.stage, c) for c in COLLECTIONS},
    }


def provision_environment(env: EnvironmentSetup) -> tuple[list[Callable[[], None]], list[Callable[[], None]]]:
    """The AWS resources of one environment, as its deploy creates them: independent groups of calls (each
    group's calls in order), which the launcher runs concurrently with each other and with the other
    environments' (a moto server serves requests in parallel; a call's turn-around is mostly waiting). First
    the groups the API's configuration needs (its user pool), then the others (tables, bucket, function, log
    group, queues, alarms, parameters, secret)."""
    for_api, others = serverless.tasks(env)
    return for_api, [functools.partial(_provision_tables, env), functools.partial(_provision_bucket, env), *others]


def _provision_tables(env: EnvironmentSetup) -> None:
    """The environment's tables, one after the other: an account's first encrypted table creates DynamoDB's AWS
    managed key (``alias/aws/dynamodb``), and moto's check-then-create of it has no lock (two tables created at
    once made two keys under that one alias)."""
    for collection in COLLECTIONS:
        _provision_table(env, collection)


def _provision_table(env: EnvironmentSetup, collection: str) -> None:
    ddb = env.client("dynamodb")
    table = table_for(env.stage, collection)
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     **serverless.TABLE_SSE)
    ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    serverless.table_options(env, collection, table)  # point-in-time recovery


def _provision_bucket(env: EnvironmentSetup) -> None:
    s3 = env.client("s3")
    bucket = bucket_for(env.stage)
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
                       "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}],
    }))
    serverless.bucket_options(env, bucket)  # encryption, public-access block


def wire_environment(env: EnvironmentSetup) -> None:
    """Settings that name another environment (after every environment is provisioned, in order)."""
    peer = env.next_peer()
    if "leak" in env.faults and peer is not None:
        # the deploy wired this environment's stories table to the next environment's
        env.api_env[_var("stories")] = table_for(peer.stage, "stories")
        env.api_env[_var("stories") + "_ENDPOINT"] = peer.endpoint_url
    serverless.wire(env)  # foreign-token-accepted: the API trusts a peer's user pool


def publish_frontend(env: EnvironmentSetup) -> None:
    """The frontend's objects in the environment's bucket (once every API has its address)."""
    # wrong-config: the generated config.js points at the next environment's API and tables.
    source = env.next_peer() if "wrong-config" in env.faults else None
    source = source or env
    config_js = _config_js(env.name, env.stage, source.api_url, source.stage,
                           leak_secret="secret-in-config" in env.faults)
    files = {
        "index.html": (_index_html(env.name, env.stage, env.faults), "text/html"),
        "config.js": (config_js, "application/javascript"),
        "app.js": (APP_JS, "application/javascript"),
        "styles.css": (STYLES_CSS, "text/css"),
    }
    s3 = env.client("s3")
    for key, (body, ctype) in files.items():
        s3.put_object(Bucket=bucket_for(env.stage), Key=key, Body=body.encode(), ContentType=ctype)


def _provision(setups: Mapping[str, EnvironmentSetup], start_apis: Callable[[], None]) -> None:
    """Provision every environment, its groups of calls concurrently (a thread each); once every user pool
    exists, wire the environments and ``start_apis()`` (an API builds its clients and fetches its pools' keys
    while the other groups finish; it does not need the tables yet). The first error is raised once every
    started group is done."""
    from concurrent.futures import ThreadPoolExecutor

    plans = {name: provision_environment(setup) for name, setup in setups.items()}
    for_api = [_step(f"provisioning {name} ({_task_name(task)})", task)
               for name, (first, _) in plans.items() for task in first]
    others = [_step(f"provisioning {name} ({_task_name(task)})", task)
              for name, (_, rest) in plans.items() for task in rest]
    with ThreadPoolExecutor(max_workers=len(for_api) + len(others), thread_name_prefix="demo-deploy") as pool:
        first = [pool.submit(task) for task in for_api]
        rest = [pool.submit(task) for task in others]
        for future in first:
            future.result()
        for setup in setups.values():
            _step(f"wiring {setup.name}", functools.partial(wire_environment, setup))()
        start_apis()
        for future in rest:
            future.result()


def _each(work: Callable[[Any], None], items: Iterable[Any]) -> None:
    """``work(item)`` for every item, a thread each; the first error is raised once all are done."""
    from concurrent.futures import ThreadPoolExecutor

    todo = list(items)
    if len(todo) <= 1:
        for item in todo:
            work(item)
        return
    with ThreadPoolExecutor(max_workers=len(todo), thread_name_prefix="demo-deploy") as pool:
        for future in [pool.submit(work, item) for item in todo]:
            future.result()


class Demo:
    """A running reference deployment (started here, or found through its state file)."""

    def __init__(self, state: dict[str, Any], state_path: Path, owned: bool) -> None:
        self.state = state
        self.state_path = state_path
        self.owned = owned
        self._procs: list[_Proc] = []  # the processes this object started (waited for on stop)

    @property
    def environments(self) -> dict[str, dict[str, Any]]:
        return self.state["environments"]

    @property
    def pids(self) -> list[int]:
        pids = [p for e in self.environments.values() for p in (e["api_pid"], e["aws_pid"])]
        pids += [self.state["osv_pid"]] if self.state.get("osv_pid") else []
        return pids + ([self.state["forkserver_pid"]] if self.state.get("forkserver_pid") else [])

    def alive(self) -> bool:
        return all(pid_alive(p) for p in self.pids)

    # ------------------------------------------------------------------------------------------
    @classmethod
    def start(cls, stages: Mapping[str, str], faults: Mapping[str, frozenset[str]],
              workdir: Path) -> Demo:
        """Start every environment of ``stages`` (env name -> stage) and provision it.

        The fork server loads moto (and builds what the moto servers' first requests would) while this process
        loads the boto3 models; the moto servers and OSV are forked; the environments are provisioned, every
        group of calls of every environment in parallel (a thread each, clients of one boto3 session); once
        the user pools exist the environments are wired and each API is forked with its environment's
        configuration (it builds and warms its clients before it says it is ready) while the other groups
        finish; then the frontends are published while each API's health path and first TTL sweep run,
        before the addresses are handed out.

        Whatever fails is stopped and raised as a DemoError naming the environment and step (a botocore error
        too, e.g. a moto server killed mid-provisioning); an interrupt (KeyboardInterrupt) stops it all too,
        and is raised as it is.
        """
        deadline = time.monotonic() + START_TIMEOUT_S
        names = list(stages)
        accounts = {name: account_for(i) for i, name in enumerate(names)}
        procs: list[_Proc] = []
        forks: _ForkServer | None = None
        step = "starting the servers"
        try:
            workdir.mkdir(parents=True, exist_ok=True)
            # each moto server's listening socket, made here: its address is known now, its clients built
            # while moto loads; the fork server hands each to its server (this process keeps no copy)
            listening = {n: _listening_socket() for n in names}
            try:
                forks = _ForkServer(workdir, MOTO_BACKENDS, [sock.fileno() for sock in listening.values()])
                procs.append(forks.proc)
                endpoints = {n: f"http://127.0.0.1:{sock.getsockname()[1]}" for n, sock in listening.items()}
                aws = [forks.spawn("pytest_deploygate.demo.awsserver", ["--account", accounts[n]], f"{n}-aws",
                                   fd=listening[n].fileno()) for n in names]
            finally:
                for sock in listening.values():
                    sock.close()
            osv = forks.spawn("pytest_deploygate.demo.osv", [], "osv")
            procs += [*aws, osv]
            clients = AwsClients()
            clients.prepare(PROVISIONED_SERVICES, endpoints.values())  # boto3 models and clients, while moto loads
            aws_ready = _wait_ready([*aws, osv], deadline)
            step = "provisioning"
            setups = {n: EnvironmentSetup(
                name=n, stage=stages[n], index=i, faults=faults.get(n, frozenset()), account_id=accounts[n],
                endpoint_url=endpoints[n], clients=clients,
            ) for i, n in enumerate(names)}
            for setup in setups.values():
                setup.peers = setups
                setup.api_env.update(_api_environment(setup))
            apis: list[_Proc] = []

            def start_apis() -> None:  # each with its environment's configuration
                assert forks is not None
                for n, setup in setups.items():
                    apis.append(forks.spawn("pytest_deploygate.demo.apigw", [], f"{n}-api", setup.api_env))
                    procs.append(apis[-1])

            _provision(setups, start_apis)
            step = "starting the APIs"
            api_ready = _wait_ready(apis, deadline)
            step = "writing the deploy artifacts"
            state: dict[str, Any] = {
                "version": 1, "owner_pid": os.getpid(), "workdir": str(workdir), "osv_pid": aws_ready["osv"]["pid"],
                "forkserver_pid": forks.popen.pid,
                "faults": format_faults(dict(faults)), "started_at": time.time(), "environments": {},
            }
            for n, setup in setups.items():
                source_dir, requirements = _deploy_artifacts(workdir / n, setup.faults)
                state["environments"][n] = {
                    "stage": setup.stage, "api_url": api_ready[f"{n}-api"]["url"],
                    "frontend_url": f"{setup.endpoint_url}/{bucket_for(setup.stage)}/index.html",
                    "endpoint_url": setup.endpoint_url, "account_id": setup.account_id,
                    "api_pid": api_ready[f"{n}-api"]["pid"], "aws_pid": aws_ready[f"{n}-aws"]["pid"],
                    "faults": sorted(setup.faults),
                    "source_dir": str(source_dir), "requirements": str(requirements),
                    "osv_url": aws_ready["osv"]["url"], "token": setup.api_env["ADMIN_TOKEN"],
                    **setup.outputs,
                }
                setup.api_url = state["environments"][n]["api_url"]
            demo = cls(state, workdir / STATE_FILE, owned=True)
            demo._procs = procs
            # the frontends published while the APIs warm up
            step = "publishing the frontends"
            _each(lambda work: work(), [*(_step(f"publishing {s.name}'s frontend",
                                                functools.partial(publish_frontend, s)) for s in setups.values()),
                                        demo.warm])
            step = "writing the state file"
            demo.write_state()
            return demo
        except BaseException as exc:
            _terminate_all([p for p in procs if p.forks is not None], [p for p in procs if p.forks is None])
            if forks is not None:
                forks.close()
            if isinstance(exc, Exception) and not isinstance(exc, DemoError):  # not an interrupt: one clear line
                raise DemoError(f"reference deployment: {step} failed: {_failure(exc)}") from exc
            raise

    def warm(self) -> None:
        """Each API's health path and first TTL sweep, run now rather than on the gate's first checks."""
        import urllib.request

        def warm_one(info: dict[str, Any]) -> None:
            try:
                with urllib.request.urlopen(info["api_url"] + "/_demo/warm", timeout=30) as answer:
                    answer.read()
            except OSError:
                pass  # a fault (health-down, slow) may refuse it: the checks will say what is wrong

        _each(warm_one, self.environments.values())

    def write_state(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        tmp.replace(self.state_path)

    @classmethod
    def find(cls, state_path: Path) -> Demo | None:
        """A running deployment described by ``state_path``, or None if there is none (or it died)."""
        try:
            state = json.loads(state_path.read_text())
        except (OSError, ValueError):
            return None
        demo = cls(state, state_path, owned=False)
        return demo if demo.pids and demo.alive() else None

    def stop(self) -> None:
        """Stop every process by its pid (SIGTERM, then SIGKILL) and remove the state file."""
        popens = {p.popen.pid: p.popen for p in self._procs if p.popen is not None}
        servers = self.pids
        parent = self.state.get("forkserver_pid")
        # the servers first (the fork server reaps them), then the fork server
        _terminate_pids([p for p in servers if p != parent], popens)
        _terminate_pids([p for p in servers if p == parent], popens)
        for p in self._procs:
            if p.popen is not None and p.popen.stdin is not None and not p.popen.stdin.closed:
                try:
                    p.popen.stdin.close()
                except BrokenPipeError:
                    pass
        if self.owned or self.state_path.exists():
            self.state_path.unlink(missing_ok=True)


def _terminate_all(forked: list[_Proc], started: list[_Proc]) -> None:
    """Stop what a failed start left: the forked servers, then the processes started here."""
    _terminate_pids([pid for p in forked if (pid := p.pid) is not None], {})
    _terminate_pids([p.popen.pid for p in started if p.popen is not None],
                    {p.popen.pid: p.popen for p in started if p.popen is not None})


def _terminate_pids(pids: list[int], popens: Mapping[int, subprocess.Popen[bytes]], grace_s: float = 5.0) -> None:
    """SIGTERM every pid at once, then wait for each (SIGKILL after ``grace_s``)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in pids:
        _terminate(pid, popens.get(pid), grace_s)


def _terminate(pid: int, popen: subprocess.Popen[bytes] | None = None, grace_s: float = 5.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if popen is not None:
            if popen.poll() is not None:
                return
        elif not pid_alive(pid):
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if popen is not None:
        popen.wait(timeout=5)
