"""What a report says about where it comes from: the commit, the CI job, the target, the deployed version and
when; and where its artifacts are (links relative to the report directory, or through ``[report] report_url``).

The ``[report]`` table of ``deploygate.toml`` (:class:`ReportSpec`)::

    [report]
    # artifact links in Markdown (and the Allure executor's report link): ${VAR}s from the CI job's environment
    # at report time, {path} the artifact's path relative to the report directory, {name} its name
    report_url = "${CI_JOB_URL}/artifacts/file/.deploygate/{path}"
    # the deployed version: a path on the environment's API (or a full URL), read after the checks
    version_url = "/version"
    version_header = "X-App-Version"   # take it from this response header; else the JSON key below; else the text
    version_key = "version"
"""

from __future__ import annotations

import os
import re
import string
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..schema import Num, Section, Where, build, key

if TYPE_CHECKING:  # pragma: no cover
    from ..run import GateRun

#: how reports name the artifacts a run leaves (others by their own name)
ARTIFACT_TITLES = {"report": "gate report (JSON)", "locust_html": "Locust HTML report", "locustfile": "locustfile",
                   "locust_json": "Locust statistics (JSON)", "locust_log": "Locust log",
                   "locust_failures": "Locust failures"}
_VAR = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
#: the placeholders ``report_url`` may use besides ``${VAR}``s
URL_FIELDS = ("path", "name")


@dataclass(frozen=True)
class ReportSpec(Section):
    """``[report]``: where the report's artifacts are published, and how to read the deployed version."""

    NOUN: ClassVar[str] = "the report table"

    report_url: str = field(default="", metadata=key(str))
    version_url: str = field(default="", metadata=key(str))
    version_header: str = field(default="", metadata=key(str))
    version_key: str = field(default="version", metadata=key(str))
    timeout_s: float = field(default=5.0, metadata=key(Num(0, 60, above=True)))

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> ReportSpec:
        url = raw.get("report_url")
        if isinstance(url, str) and url:
            # ${VAR}s are the CI job's, filled in at report time; the rest may use {path} and {name} only
            where.check_template(_VAR.sub("", url), URL_FIELDS, "report_url")
        return build(cls, raw, where)


def spec_of(run: GateRun) -> ReportSpec:
    """The run's ``[report]`` table (its defaults when the configuration has none)."""
    spec = getattr(run.project, "report", None)
    return spec if isinstance(spec, ReportSpec) else ReportSpec()


# --------------------------------------------------------------------------------------------------
# metadata


def ci_job_url(environ: Mapping[str, str]) -> str:
    """The CI job's page: GitHub Actions' run, else GitLab's ``CI_JOB_URL``, else ``BUILD_URL`` (Jenkins)."""
    gh = [environ.get(k, "") for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    if all(gh):
        return f"{gh[0].rstrip('/')}/{gh[1]}/actions/runs/{gh[2]}"
    return environ.get("CI_JOB_URL") or environ.get("BUILD_URL") or ""


def ci_name(environ: Mapping[str, str]) -> str:
    if environ.get("GITHUB_ACTIONS"):
        return "GitHub Actions"
    if environ.get("GITLAB_CI"):
        return "GitLab CI"
    if environ.get("JENKINS_URL"):
        return "Jenkins"
    return "CI" if environ.get("CI") else ""


def commit_of(environ: Mapping[str, str], where: Path) -> str:
    """The commit under test: the CI's variable (GitHub, GitLab, Jenkins), else ``git rev-parse HEAD`` where the
    configuration lives (nothing outside a repository, or without git)."""
    for name in ("GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT"):
        if environ.get(name):
            return environ[name]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{7,64}", sha) else ""


def deployed_version(run: GateRun, spec: ReportSpec) -> str:
    """The version the environment says it runs (``version_url``; a header, a JSON key or the text); what
    could not be read says so (``could not read ...``), never a guess."""
    if not spec.version_url:
        return ""
    from ..http import client_for

    env = run.environment
    try:
        with client_for(env, secrets=run.secrets, check="report: deployed version") as http:
            response = http.get(spec.version_url, timeout=spec.timeout_s)
            if response.status_code >= 400:
                return f"could not read {spec.version_url}: HTTP {response.status_code}"
            if spec.version_header:
                value = response.headers.get(spec.version_header, "")
                if value:
                    return value[:200]
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, Mapping) and body.get(spec.version_key) not in (None, ""):
                return str(body[spec.version_key])[:200]
            text = response.text.strip().splitlines()
            if text and body is None and len(text[0]) <= 200:
                return text[0]
            return f"could not read {spec.version_url}: no {spec.version_header or spec.version_key!r} in the answer"
    except Exception as exc:  # an unreachable or slow endpoint: the report says so, the verdict stands
        return f"could not read {spec.version_url}: {type(exc).__name__}"


def collect_metadata(run: GateRun, environ: Mapping[str, str] | None = None,
                     fetch_version: bool = True) -> dict[str, str]:
    """commit, ci, ci_job_url, target_url, frontend_url and deployed_version (the keys with a value)."""
    environ = os.environ if environ is None else environ
    env = run.environment
    spec = spec_of(run)
    data = {
        "commit": commit_of(environ, run.settings.config_path.parent),
        "ci": ci_name(environ),
        "ci_job_url": ci_job_url(environ),
        "target_url": env.base_url,
        "frontend_url": env.frontend_url,
        "deployed_version": deployed_version(run, spec) if fetch_version else "",
    }
    return {k: v for k, v in data.items() if v}


# --------------------------------------------------------------------------------------------------
# links


def relative_to(path: str | os.PathLike[str], base: Path) -> str:
    """``path`` relative to ``base`` in ``/`` form (``../x`` when outside it); never an absolute local path."""
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    try:
        return Path(os.path.relpath(p, base)).as_posix()
    except ValueError:  # another drive (Windows)
        return p.name


def fill_url(template: str, path: str, name: str, environ: Mapping[str, str]) -> str | None:
    """``report_url`` filled in; None when one of its ``${VAR}``s is not set in this job."""
    filled = string.Template(template).safe_substitute(environ)
    if _VAR.search(filled):
        return None
    return filled.replace("{path}", path).replace("{name}", name)


def artifact_links(run: GateRun, artifacts: Mapping[str, str],
                   environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each artifact's link, and the JSON report's own (``report``): through ``[report] report_url`` when its
    variables are set, else the path relative to the report directory."""
    environ = os.environ if environ is None else environ
    base = run.settings.report_path.parent
    template = spec_of(run).report_url
    links = {}
    for name, path in {**artifacts, "report": str(run.settings.report_path)}.items():
        rel = relative_to(resolve(path, base), base)
        links[name] = (fill_url(template, rel, name, environ) if template else None) or rel
    return links


def resolve(path: str, base: Path) -> Path:
    """An artifact path as recorded (absolute, or relative to the report directory) as a local path."""
    p = Path(path)
    return p if p.is_absolute() else base / p


__all__ = ["ARTIFACT_TITLES", "ReportSpec", "artifact_links", "ci_job_url", "collect_metadata", "commit_of",
           "deployed_version", "fill_url", "relative_to", "resolve", "spec_of"]
