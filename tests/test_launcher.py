"""The launcher's own failure paths: a server that cannot start fails the launch with its name and log, at
once (no wait for the start timeout), and leaves no process behind."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from gatehelpers import demo_processes, wait_for
from pytest_deploygate.demo import launcher
from pytest_deploygate.demo.faults import parse_faults

pytestmark = pytest.mark.e2e  # starts the fork server and moto servers as child processes

STAGES = {"dev": "dev", "staging": "staging"}


def test_a_fork_server_that_cannot_load_fails_the_launch_with_its_log(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher, "MOTO_BACKENDS", ("dynamodb", "nosuchbackend"))
    start = time.monotonic()
    with pytest.raises(launcher.DemoError) as failed:
        launcher.Demo.start(STAGES, parse_faults("", STAGES), tmp_path / "demo")
    message = str(failed.value)
    assert message.startswith("reference deployment: dev-aws was not started: the fork server exited with 1; log ")
    assert "No module named 'moto.nosuchbackend'" in message, message  # the fork server's log says why
    assert time.monotonic() - start < launcher.START_TIMEOUT_S / 2  # said at once, not at the timeout
    wait_for(lambda: demo_processes(str(tmp_path)) == [], timeout=30, what="no process left")


def test_a_server_that_dies_before_it_is_ready_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the staging API's deploy sets a sweep interval that is not a number: the API stops before it serves
    wire = launcher.wire_environment

    def miswire(env: launcher.EnvironmentSetup) -> None:
        wire(env)
        if env.name == "staging":
            env.api_env["DEMO_TTL_SWEEP_S"] = "never"

    monkeypatch.setattr(launcher, "wire_environment", miswire)
    with pytest.raises(launcher.DemoError) as failed:
        launcher.Demo.start(STAGES, parse_faults("", STAGES), tmp_path / "demo")
    message = str(failed.value)
    assert message.startswith("reference deployment: staging-api exited before it was ready; log "), message
    assert "could not convert string to float: 'never'" in message, message  # its log says why
    wait_for(lambda: demo_processes(str(tmp_path)) == [], timeout=30, what="no process left")


def test_a_moto_server_alone_holds_its_listening_socket(tmp_path: Path) -> None:
    # the launcher makes each moto server's socket and the fork server hands it over: once that server is gone
    # its port refuses connections (no other process of the deployment holds the socket open, which would
    # leave a client waiting for an answer that never comes instead of being refused)
    demo = launcher.Demo.start(STAGES, parse_faults("", STAGES), tmp_path / "demo")
    try:
        # the last server forked: the ones forked before it were forked while the fork server held its socket
        dev, staging = demo.environments["dev"], demo.environments["staging"]
        port = int(staging["endpoint_url"].rsplit(":", 1)[1])
        os.kill(staging["aws_pid"], signal.SIGKILL)

        def refused() -> bool:  # once the process's last thread is gone (it shows as a zombie before that)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=10).close()
            except ConnectionRefusedError:
                return True
            return False

        wait_for(refused, timeout=30, what="staging's port refusing connections once its server is gone")
        with urllib.request.urlopen(dev["endpoint_url"] + "/moto-api/", timeout=30) as answer:
            assert answer.status == 200  # the other environment's server still serves
    finally:
        demo.stop()
    wait_for(lambda: demo_processes(str(tmp_path)) == [], timeout=30, what="no process left")


def test_each_account_has_one_aws_managed_dynamodb_key(tmp_path: Path) -> None:
    # DynamoDB creates its AWS managed key (alias/aws/dynamodb) with an account's first encrypted table; moto's
    # check-then-create has no lock, so an environment's tables created at the same time made two keys under one
    # alias, an account no real AWS holds
    import boto3

    demo = launcher.Demo.start(STAGES, parse_faults("", STAGES), tmp_path / "demo")
    try:
        for name, info in demo.environments.items():
            options = {"endpoint_url": info["endpoint_url"], "region_name": "us-east-1",
                       "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
            kms, ddb = boto3.client("kms", **options), boto3.client("dynamodb", **options)
            aliases = [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/aws/dynamodb"]
            assert len(aliases) == 1, f"{name}: {len(aliases)} keys aliased alias/aws/dynamodb: {aliases}"
            key_arn = kms.describe_key(KeyId="alias/aws/dynamodb")["KeyMetadata"]["Arn"]
            tables = ddb.list_tables()["TableNames"]
            assert len(tables) == len(launcher.COLLECTIONS), (name, tables)
            for table in tables:  # every table encrypted with that one key
                sse = ddb.describe_table(TableName=table)["Table"]["SSEDescription"]
                assert (sse["SSEType"], sse["KMSMasterKeyArn"]) == ("KMS", key_arn), (name, table, sse)
    finally:
        demo.stop()
    wait_for(lambda: demo_processes(str(tmp_path)) == [], timeout=30, what="no process left")
