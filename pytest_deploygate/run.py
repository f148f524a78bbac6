"""The state of one gate run, kept on ``config.stash``: selected environment, policy, launched
deployment, recorded metrics and test outcomes."""

from __future__ import annotations

import os
import secrets as _secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    # the plugin imports this module at start-up: config, gate and thresholds load only once --env is given
    from .config import ConfigError, Environment, Project
    from .gate import Metric, TestTally, Verdict
    from .thresholds import Policy


def new_run_id() -> str:
    return time.strftime("dg-%Y%m%dT%H%M%S", time.gmtime()) + "-" + _secrets.token_hex(3)


@dataclass
class RunStart:
    """What a gate run knows before its configuration is loaded: enough to say, in the report file, that
    this run (not an earlier one) is running, was interrupted, or could not run."""

    env_name: str
    report_path: Path
    markdown_path: Path | None = None
    run_id: str = field(default_factory=new_run_id)
    started_at: float = field(default_factory=time.time)
    #: the report file holds this run's final word (a verdict, ERROR or INTERRUPTED)
    final: bool = False
    #: set once this process saw pytest's internal error
    internal_error: bool = False


@dataclass
class GateRun:
    env_name: str
    env_source: str
    project: Project
    policy: Policy
    config_path: Path
    report_path: Path
    #: where to write the Markdown summary too (--gate-markdown), e.g. $GITHUB_STEP_SUMMARY
    markdown_path: Path | None = None
    fail_on_warn: bool = False
    allow_writes: bool = False
    allow_load: bool = False
    run_id: str = field(default_factory=new_run_id)
    started_at: float = field(default_factory=time.time)
    # filled at session start, once addresses of launched environments are known
    environments: dict[str, Environment] = field(default_factory=dict)
    demo: Any = None
    demo_note: str = ""
    # collected on the controller
    metrics: list[Metric] = field(default_factory=list)
    outcomes: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    findings: list[dict[str, str]] = field(default_factory=list)
    verdict: Verdict | None = None
    report: dict[str, Any] | None = None
    error: str | None = None
    #: secrets that are not in the configuration (a launched deployment's token, AWS credentials)
    extra_secrets: set[str] = field(default_factory=set)
    fail_on_inconclusive: bool = False
    #: xdist: where the controller leaves the launched addresses for its workers (they start before the launch)
    addresses_file: Path | None = None
    launched: bool = False

    def __post_init__(self) -> None:
        from .redaction import aws_credential_secrets

        self.extra_secrets |= aws_credential_secrets(self.project.environments.values())

    @property
    def environment(self) -> Environment:
        return self.environments.get(self.env_name) or self.project.environment(self.env_name)

    @property
    def peers(self) -> dict[str, Environment]:
        envs = self.environments or dict(self.project.environments)
        return {n: e for n, e in envs.items() if n != self.env_name}

    @property
    def secrets(self) -> frozenset[str]:
        return self.project.secrets | self.extra_secrets

    def resolve(self, addresses: Mapping[str, Mapping[str, Any]]) -> None:
        """Fill in the addresses of launched environments (``launch = "demo"``)."""
        out: dict[str, Environment] = {}
        for name, env in self.project.environments.items():
            if env.launch and name in addresses:
                env = with_launched(env, addresses[name])
                if addresses[name].get("token"):
                    self.extra_secrets.add(addresses[name]["token"])
            out[name] = env
        self.environments = out
        from .redaction import aws_credential_secrets

        self.extra_secrets |= aws_credential_secrets(out.values())

    def tallies(self) -> dict[str, TestTally]:
        from .gate import TestTally

        result: dict[str, TestTally] = {}
        for nodeid, (category, outcome, reason) in self.outcomes.items():
            tally = result.setdefault(category, TestTally())
            if outcome == "failed":
                tally.failed += 1
                tally.failures.append({"nodeid": nodeid, "reason": reason})
            elif outcome == "skipped":
                tally.skipped += 1
            else:
                tally.passed += 1
        return result


def with_launched(env: Environment, address: Mapping[str, Any]) -> Environment:
    """``env`` pointed at a launched reference deployment (URLs, emulator, token, deployed artifacts)."""
    from .config import DEPLOYED_FIELDS

    return env.with_addresses(
        base_url=address["api_url"], frontend_url=address["frontend_url"], endpoint_url=address["endpoint_url"],
        account_id=address["account_id"], token=address.get("token"),
        deployed={k: address[k] for k in DEPLOYED_FIELDS if address.get(k)})


RUN_KEY = pytest.StashKey[GateRun]()
START_KEY = pytest.StashKey[RunStart]()
#: metrics a test recorded, waiting to ride on its next report (plain dicts: they cross xdist)
METRICS_KEY = pytest.StashKey[list[dict[str, Any]]]()
METRICS_ATTR = "deploygate_metrics"
#: user property carrying ``name=path`` of a file a check produced
ARTIFACT_PROPERTY = "deploygate_artifact"
NOTE_PROPERTY = "deploygate_note"
#: user property carrying a JSON finding: {"check", "severity", "text"}
FINDING_PROPERTY = "deploygate_finding"


def get_run(config: pytest.Config) -> GateRun | None:
    return config.stash.get(RUN_KEY, None)


def get_start(config: pytest.Config) -> RunStart | None:
    return config.stash.get(START_KEY, None)


def env_name_from(option: str | None, ini: str | None) -> tuple[str | None, str]:
    """``--env``, then ``DEPLOYGATE_ENV``, then the ``deploygate_env`` ini value."""
    if option:
        return option, "--env"
    if os.environ.get("DEPLOYGATE_ENV"):
        return os.environ["DEPLOYGATE_ENV"], "DEPLOYGATE_ENV"
    if ini:
        return ini, "ini deploygate_env"
    return None, ""


def __getattr__(name: str) -> Any:
    if name == "ConfigError":  # still importable from here, without loading the config module at start-up
        from .config import ConfigError

        return ConfigError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ARTIFACT_PROPERTY", "FINDING_PROPERTY", "METRICS_ATTR", "METRICS_KEY", "NOTE_PROPERTY", "RUN_KEY",
    "START_KEY", "ConfigError", "GateRun", "RunStart", "env_name_from", "get_run", "get_start", "new_run_id",
]
