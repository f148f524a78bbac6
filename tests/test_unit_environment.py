"""The production-safety rule of an environment, defined once (``Environment.read_only`` and
``Environment.load_refused``), and the guards that use it: pure, fast, no deployment."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_deploygate.config import Environment, parse_project
from pytest_deploygate.schema import Source

TEXT = {
    "service": "shop",
    "environments": {
        "staging": {"base_url": "https://staging.example.test"},
        "prod": {"base_url": "https://prod.example.test", "protected": True},
    },
}


def _envs() -> dict[str, Environment]:
    src = Source(Path("deploygate.toml"), "", TEXT)
    return dict(parse_project(src, TEXT, environ={}).environments)


@pytest.mark.parametrize(("name", "allow", "read_only"), [
    ("prod", False, True), ("prod", True, False), ("staging", False, False), ("staging", True, False)])
def test_a_protected_environment_is_read_only_unless_writes_are_allowed(name: str, allow: bool,
                                                                         read_only: bool) -> None:
    env = _envs()[name]
    assert env.read_only(allow) is read_only
    assert env.load_refused(allow) is read_only


def test_the_transport_and_aws_follow_the_rule() -> None:
    from pytest_deploygate.aws import EnvironmentAWS
    from pytest_deploygate.failures import WriteRefused
    from pytest_deploygate.http import client_for

    envs = _envs()
    assert EnvironmentAWS(envs["prod"]).read_only
    assert not EnvironmentAWS(envs["prod"], allow_writes=True).read_only
    assert not EnvironmentAWS(envs["staging"]).read_only
    client = client_for(envs["prod"])
    with pytest.raises(WriteRefused, match="environment prod is protected"):
        client.request("POST", "/orders")
    assert client_for(envs["prod"], allow_writes=True).read_only is None
