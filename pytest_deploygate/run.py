"""One gate run, in three parts with one writer each:

- :class:`RunSettings` — what the run was asked to do (environment, configuration, policy, switches, run
  id). Frozen at configure.
- :class:`Target` — where the checks go: the environments with the addresses of a launched reference
  deployment filled in, once, at launch (on xdist workers before their first test).
- :class:`Results` — what the checks produced (metrics, test outcomes, notes, findings, artifacts),
  collected on the controller from every test report.

:class:`GateRun` is the handle fixtures and checks get (``deploygate_run``): the three parts and
read-only views over them. The verdict and the report are not kept here: the session judges the results
once and hands the report model to each renderer (see :mod:`pytest_deploygate.session`)."""

from __future__ import annotations

import json
import secrets as _secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    # the plugin imports this module at start-up: config, gate and thresholds load only once --env is given
    from .cognito import CognitoTokens
    from .config import ConfigError, Environment, Project
    from .gate import Metric, TestTally
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


@dataclass(frozen=True)
class RunSettings:
    """What the run was asked to do: fixed once the configuration is loaded."""

    env_name: str
    env_source: str
    project: Project
    policy: Policy
    config_path: Path
    report_path: Path
    #: where to write the Markdown summary too (--gate-markdown), e.g. $GITHUB_STEP_SUMMARY
    markdown_path: Path | None = None
    fail_on_warn: bool = False
    fail_on_inconclusive: bool = False
    allow_writes: bool = False
    allow_load: bool = False
    run_id: str = field(default_factory=new_run_id)
    started_at: float = field(default_factory=time.time)


#: one Cognito token holder per Target, whichever thread asks first
_TOKENS_LOCK = threading.Lock()


@dataclass
class Target:
    """The environments the checks talk to. Addresses of a launched reference deployment are filled in
    once (:meth:`resolve`); before that, the environments are the configured ones."""

    project: Project
    environments: dict[str, Environment] = field(default_factory=dict)
    #: the launched reference deployment (a ``demo.launcher.Demo``), if any
    demo: Any = None
    #: one line on what was launched or reused
    note: str = ""
    #: secrets that are not in the configuration (a launched deployment's token, AWS credentials)
    extra_secrets: set[str] = field(default_factory=set)
    #: xdist: where the controller leaves the launched addresses for its workers (they start before the launch)
    addresses_file: Path | None = None
    #: the addresses are known (launched, or there was nothing to launch)
    resolved: bool = False
    #: the holder of :attr:`tokens`, made when first asked for (most runs use no Cognito token)
    _tokens: CognitoTokens | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from .redaction import aws_credential_secrets

        self.extra_secrets |= aws_credential_secrets(self.project.environments.values())

    @property
    def tokens(self) -> CognitoTokens:
        """Tokens of the environments' Cognito user pools (``auth.cognito``), fetched once per process; each one
        joins ``extra_secrets`` the moment it exists."""
        with _TOKENS_LOCK:
            if self._tokens is None:
                from .cognito import CognitoTokens

                self._tokens = CognitoTokens(lambda secret: self.extra_secrets.add(secret))
            return self._tokens

    def all(self) -> Mapping[str, Environment]:
        return self.environments or self.project.environments

    def get(self, name: str) -> Environment:
        return self.environments.get(name) or self.project.environment(name)

    def resolve(self, addresses: Mapping[str, Mapping[str, Any]]) -> None:
        """Fill in the addresses of launched environments (``launch = "demo"``)."""
        from .redaction import aws_credential_secrets

        out: dict[str, Environment] = {}
        for name, env in self.project.environments.items():
            if env.launch and name in addresses:
                env = with_launched(env, addresses[name])
                for key in LAUNCHED_SECRETS:
                    if addresses[name].get(key):
                        self.extra_secrets.add(str(addresses[name][key]))
            out[name] = env
        self.environments = out
        self.extra_secrets |= aws_credential_secrets(out.values())
        self.resolved = True

    def share(self) -> None:
        """Leave the launched addresses for xdist workers, readable by this user only (they hold the
        launched deployment's token)."""
        assert self.addresses_file is not None
        addresses = self.demo.environments if self.demo is not None else {}
        tmp = self.addresses_file.with_suffix(".tmp")
        tmp.touch(mode=0o600)
        tmp.write_text(json.dumps(addresses))
        tmp.replace(self.addresses_file)

    def pick_up(self) -> None:
        """xdist worker: the addresses the controller launched, before the first test needs them."""
        if self.resolved:
            return
        if self.addresses_file is not None and self.addresses_file.exists():
            self.resolve(json.loads(self.addresses_file.read_text()))
        self.resolved = True


#: address keys of a launched environment that are credentials: redacted wherever they could appear
LAUNCHED_SECRETS = ("token", "cognito_password")  # cognito_password: demo/serverless.py (issue 12)


@dataclass
class Results:
    """What the checks produced, collected on the controller (from xdist workers too)."""

    metrics: list[Metric] = field(default_factory=list)
    #: nodeid -> (category, outcome, one-line reason)
    outcomes: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    findings: list[dict[str, str]] = field(default_factory=list)
    # findings already listed, by content: a scan can report ~20k, and a list lookup each was quadratic
    _finding_keys: set[str] = field(default_factory=set, repr=False)

    def add_note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def add_finding(self, finding: dict[str, str]) -> None:
        key = json.dumps(finding, sort_keys=True)
        if key not in self._finding_keys:
            self._finding_keys.add(key)
            self.findings.append(finding)

    def add_outcome(self, nodeid: str, category: str, outcome: str, reason: str) -> None:
        """A test's outcome; a failure in any phase (setup, call, teardown) is final."""
        previous = self.outcomes.get(nodeid)
        if previous and previous[1] == "failed":
            return
        self.outcomes[nodeid] = (category, outcome, reason)

    def collect(self, report: pytest.TestReport, secrets: frozenset[str]) -> None:
        """Take what a test report carries: its metrics, and once per test its notes, findings, artifacts
        (from the teardown report's user properties) and its outcome. Threshold cases carry nothing."""
        from .gate import Metric, category_of
        from .redaction import redact

        for raw in getattr(report, METRICS_ATTR, None) or ():
            self.metrics.append(Metric.from_dict(raw))
        if report.nodeid.startswith(THRESHOLD_PREFIX):
            return
        if report.when == "teardown":
            for key, value in report.user_properties:
                if key == ARTIFACT_PROPERTY and "=" in str(value):
                    name, _, path = str(value).partition("=")
                    self.artifacts[name] = path
                elif key == NOTE_PROPERTY:
                    self.add_note(redact(str(value), secrets))
                elif key == FINDING_PROPERTY:
                    try:
                        self.add_finding(json.loads(str(value)))
                    except ValueError:
                        continue
        if report.failed:
            outcome = "failed"
        elif report.skipped:
            outcome = "skipped"
        elif report.when == "call":
            outcome = "passed"
        else:
            return
        reason = redact(one_line(report), secrets) if report.failed else ""
        self.add_outcome(report.nodeid, category_of(report.keywords), outcome, reason)

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


@dataclass
class GateRun:
    """The run as fixtures and checks see it (``deploygate_run``): its settings, its target and, on the
    controller, its results."""

    settings: RunSettings
    target: Target
    results: Results = field(default_factory=Results)

    # read-only views, for checks and fixtures
    @property
    def run_id(self) -> str:
        return self.settings.run_id

    @property
    def env_name(self) -> str:
        return self.settings.env_name

    @property
    def project(self) -> Project:
        return self.settings.project

    @property
    def policy(self) -> Policy:
        return self.settings.policy

    @property
    def allow_writes(self) -> bool:
        return self.settings.allow_writes

    @property
    def allow_load(self) -> bool:
        return self.settings.allow_load

    @property
    def environment(self) -> Environment:
        return self.target.get(self.settings.env_name)

    @property
    def environments(self) -> Mapping[str, Environment]:
        """Every environment of the project, with launched addresses once known."""
        return self.target.all()

    @property
    def peers(self) -> dict[str, Environment]:
        return {n: e for n, e in self.target.all().items() if n != self.settings.env_name}

    @property
    def read_only(self) -> bool:
        """The selected environment takes no writes in this run (protected, no ``--allow-writes``)."""
        return self.environment.read_only(self.settings.allow_writes)

    @property
    def secrets(self) -> frozenset[str]:
        return self.settings.project.secrets | self.target.extra_secrets


def one_line(report: pytest.TestReport) -> str:
    """A failed test's reason in one line: its first ``E`` line, else its last line."""
    text = report.longreprtext.strip()
    if not text:
        return report.when or "failed"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("E ")]
    line = errors[0][2:].strip() if errors else lines[-1]
    return (f"{report.when}: " if report.when != "call" else "") + line[:1000]


def with_launched(env: Environment, address: Mapping[str, Any]) -> Environment:
    """``env`` pointed at a launched reference deployment (URLs, emulator, token, deployed artifacts, the
    user pool of its ``auth.cognito``)."""
    from .cognito import with_launched_cognito
    from .config import DEPLOYED_FIELDS

    return with_launched_cognito(env.with_addresses(
        base_url=address["api_url"], frontend_url=address["frontend_url"], endpoint_url=address["endpoint_url"],
        account_id=address["account_id"], token=address.get("token"),
        deployed={k: address[k] for k in DEPLOYED_FIELDS if address.get(k)}), address)


#: metrics a test recorded, waiting to ride on its next report (plain dicts: they cross xdist)
METRICS_KEY = pytest.StashKey[list[dict[str, Any]]]()
METRICS_ATTR = "deploygate_metrics"
#: user property carrying ``name=path`` of a file a check produced
ARTIFACT_PROPERTY = "deploygate_artifact"
NOTE_PROPERTY = "deploygate_note"
#: user property carrying a JSON finding: {"check", "severity", "text"}
FINDING_PROPERTY = "deploygate_finding"
#: node id prefix of the test cases the gate adds for its judged thresholds (JUnit, Allure, xdist)
THRESHOLD_PREFIX = "deploygate::gate::"
#: node id of the gate's verdict case (failed exactly when the run blocks promotion)
VERDICT_NODEID = f"{THRESHOLD_PREFIX}verdict"


def get_run(config: pytest.Config) -> GateRun | None:
    """The gate run of this pytest session, or None when no environment was selected."""
    from .session import SESSION_KEY

    session = config.stash.get(SESSION_KEY, None)
    return session.run if session is not None else None


def __getattr__(name: str) -> Any:
    if name == "ConfigError":  # still importable from here, without loading the config module at start-up
        from .config import ConfigError

        return ConfigError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ARTIFACT_PROPERTY", "FINDING_PROPERTY", "METRICS_ATTR", "METRICS_KEY", "NOTE_PROPERTY", "THRESHOLD_PREFIX",
    "VERDICT_NODEID",
    "ConfigError", "GateRun", "Results", "RunSettings", "RunStart", "Target", "get_run",
    "new_run_id",
]
