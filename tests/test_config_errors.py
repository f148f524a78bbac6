"""Bad configuration is a usage error (exit 4) that says what and where, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gatehelpers import Gate
from pytest_deploygate.config import ConfigError, Source, load_project, parse_project
from pytest_deploygate.thresholds import FAIL, PASS, WARN, Policy, parse_condition, parse_policy

USAGE_ERROR = 4


def _usage_error(res, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert res.ret == USAGE_ERROR, res.output
    assert "Traceback" not in res.output
    for needle in needles:
        assert needle in res.stderr, res.stderr


@pytest.mark.e2e
def test_malformed_toml_names_file_line_and_column(gate_project: Gate) -> None:
    (gate_project.path / "deploygate.toml").write_text('service = "x"\n[environments.staging\nstage = 1\n')
    res = gate_project.run("--env", "staging")
    _usage_error(res, "deploygate.toml:2:", "malformed TOML", "line 2, column")


@pytest.mark.e2e
def test_unknown_key_is_rejected_with_its_path_and_line(gate_project: Gate) -> None:
    text = (gate_project.path / "deploygate.toml").read_text()
    text = text.replace('[environments.staging]\nstage = "staging"',
                        '[environments.staging]\nstage = "staging"\nbase_ulr = "http://x"')
    (gate_project.path / "deploygate.toml").write_text(text)
    line = text.splitlines().index('base_ulr = "http://x"') + 1
    res = gate_project.run("--env", "staging")
    _usage_error(res, f"deploygate.toml:{line}: environments.staging.base_ulr: unknown key 'base_ulr'")


@pytest.mark.e2e
def test_missing_variable_names_key_and_variable(gate_project: Gate) -> None:
    (gate_project.path / "deploygate.toml").write_text(
        '[environments.staging]\nbase_url = "${STAGING_API_URL}"\n')
    gate_project.monkeypatch.delenv("STAGING_API_URL", raising=False)
    res = gate_project.run("--env", "staging")
    _usage_error(res, "environments.staging.base_url", "${STAGING_API_URL} is not set")


@pytest.mark.e2e
def test_unknown_env_lists_the_known_ones(gate_project: Gate) -> None:
    res = gate_project.run("--env", "qa", "-m", "gate")
    _usage_error(res, "unknown environment 'qa' (known: dev, prod, staging)")


@pytest.mark.e2e
def test_bad_threshold_names_file_and_metric(gate_project: Gate) -> None:
    gate_project.pytester.makefile(".toml", thresholds='[metrics]\n"performance.p95_ms" = { fail = "above 2s" }\n')
    res = gate_project.run("--env", "staging")
    _usage_error(res, "thresholds.toml:2:", "metrics.performance.p95_ms.fail", "bad threshold 'above 2s'")


@pytest.mark.e2e
def test_unknown_fault_is_a_usage_error(gate_project: Gate) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate", faults="staging:on-fire")
    _usage_error(res, "unknown fault 'on-fire'", "health-down")


def test_literal_secret_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "deploygate.toml"
    path.write_text('[environments.prod]\nbase_url = "https://api"\nauth = { value = "Bearer abc123" }\n')
    with pytest.raises(ConfigError, match="secrets must be references"):
        load_project(path)


def test_secret_reference_is_expanded_and_remembered_for_redaction(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "deploygate.toml"
    path.write_text('[environments.prod]\nbase_url = "https://api"\nauth = { value = "Bearer ${TOKEN}" }\n')
    project = load_project(path, environ={"TOKEN": "s3cr3t-value"})
    assert project.environments["prod"].auth is not None
    assert project.environments["prod"].auth.value == "Bearer s3cr3t-value"
    assert "s3cr3t-value" in project.secrets


def test_defaults_merge_and_templates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "deploygate.toml"
    path.write_text("""
service = "aipm-backend"
[defaults]
base_url = "https://api.example.com/${STAGE_PREFIX:-}{stage}"
resources = { tables = ["{service}-{stage}-stories"] }
[environments.dev]
stage = "dev"
[environments.prod]
stage = "prod"
protected = true
resources = { tables = ["{service}-{stage}-stories", "{service}-{stage}-audit"] }
""")
    project = load_project(path, environ={})
    dev, prod = project.environments["dev"], project.environments["prod"]
    assert dev.tables == ("aipm-backend-dev-stories",)
    assert prod.tables == ("aipm-backend-prod-stories", "aipm-backend-prod-audit")
    assert prod.protected and not dev.protected
    assert dev.base_url == "https://api.example.com/{stage}"  # late template, filled by format()
    assert dev.format(dev.base_url) == "https://api.example.com/dev"


def test_unknown_placeholder_is_rejected(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "deploygate.toml"
    path.write_text('[environments.dev]\nbase_url = "http://x"\nresources = { tables = ["{servce}-t"] }\n')
    with pytest.raises(ConfigError, match=r"unknown placeholder \{servce\}"):
        load_project(path)


@pytest.mark.e2e
def test_pyproject_tool_table_holds_the_same_config(gate_project: Gate) -> None:
    text = (gate_project.path / "deploygate.toml").read_text()
    (gate_project.path / "deploygate.toml").unlink()
    body = []
    for line in text.splitlines():
        if line.startswith("[["):
            line = "[[tool.deploygate." + line[2:]
        elif line.startswith("["):
            line = "[tool.deploygate." + line[1:]
        body.append(line)
    # top-level keys must come first, under [tool.deploygate]
    (gate_project.path / "pyproject.toml").write_text("[tool.deploygate]\n" + "\n".join(body) + "\n")
    res = gate_project.run("--env", "dev", "-m", "gate and smoke")
    assert res.ret == 0, res.output
    assert "pyproject.toml" in res.stdout
    assert res.report is not None and res.report["verdict"] == "PASS"


@pytest.mark.e2e
def test_env_falls_back_to_variable_then_ini(gate_project: Gate) -> None:
    gate_project.pytester.makeini("[pytest]\ndeploygate_env = dev\n")
    res = gate_project.run("--co")
    assert "environment dev (from ini deploygate_env" in res.stdout, res.output
    gate_project.monkeypatch.setenv("DEPLOYGATE_ENV", "prod")
    res = gate_project.run("--co")
    assert "environment prod (from DEPLOYGATE_ENV" in res.stdout, res.output
    res = gate_project.run("--co", "--env", "staging")
    assert "environment staging (from --env" in res.stdout, res.output


@pytest.mark.e2e
def test_without_env_the_plugin_stays_out_of_the_way(gate_project: Gate) -> None:
    gate_project.pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    res = gate_project.run("-q")
    assert res.ret == 0
    assert "deploygate" not in res.stdout
    assert res.report is None


@pytest.mark.parametrize(("metric", "text", "value", "expected"), [
    ("smoke.health.latency_ms", "> 3000", 3500, FAIL),
    ("smoke.health.latency_ms", "> 3000", 3000, PASS),
    ("performance.p95_ms", "> 2 s", 2500, FAIL),
    ("performance.success_rate", "< 95%", 94.9, FAIL),
    ("performance.success_rate", "< 95", 95, PASS),
    ("isolation.leaks_count", ">= 1", 1, FAIL),
    ("isolation.leaks_count", "!= 0", 0, PASS),
])
def test_conditions(metric: str, text: str, value: float, expected: str) -> None:
    cond = parse_condition(text, metric)
    assert (FAIL if cond.breached(value) else PASS) == expected


def test_policy_overrides_and_globs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = """
[metrics]
"smoke.*.latency_ms" = { warn = "> 1000", fail = "> 3000" }
"smoke.health.latency_ms" = { fail = "> 500" }
[environments.prod.metrics]
"smoke.api.latency_ms" = { fail = "> 100" }
"""
    from pytest_deploygate.schema import tomllib

    src = Source(tmp_path / "thresholds.toml", text, tomllib.loads(text))
    staging, prod = parse_policy(src, "staging"), parse_policy(src, "prod")

    def judge(policy: Policy, metric: str, value: float) -> str:
        threshold = policy.lookup(metric)
        assert threshold is not None, metric
        return threshold.judge(value)

    assert judge(staging, "smoke.health.latency_ms", 600) == FAIL  # exact beats glob
    assert judge(staging, "smoke.api.latency_ms", 1500) == WARN  # glob
    assert judge(staging, "smoke.api.latency_ms", 150) == PASS
    assert judge(prod, "smoke.api.latency_ms", 150) == FAIL  # prod override
    assert staging.lookup("crud.create_ms") is None


def test_unit_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="unit '%' does not match"):
        parse_condition("> 5%", "performance.p95_ms")


def test_parse_project_rejects_empty_environments(tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = Source(tmp_path / "deploygate.toml", "", {})
    with pytest.raises(ConfigError, match="no environments defined"):
        parse_project(src, {}, {})


# --------------------------------------------------------------------------------------------------
# Bad configuration never crashes: the gate exits 4 naming file (key, line), and `deploygate check-config`
# runs the same checks on the same files and says the same.

def _set_http(text: str, value: str) -> str:
    return text.replace('[environments.staging]\nstage = "staging"',
                        f'[environments.staging]\nstage = "staging"\nhttp = {{ read_timeout_s = {value} }}')


def _deep_arrays(text: str) -> str:
    return text + "\nnested = " + "[" * 1200 + "]" * 1200 + "\n"


def _deep_tables(text: str) -> str:
    return text + "\n[" + ".".join(["a"] * 1200) + "]\nb = 1\n"


BAD_CONFIGS = {
    # name: (file to write, how to change the repository's text or the bytes to write, words the error has)
    "nan-timeout": ("deploygate.toml", lambda t: _set_http(t, "nan"),
                    ["environments.staging.http.read_timeout_s", "got nan", "@nan }"]),
    "huge-timeout": ("deploygate.toml", lambda t: _set_http(t, "1e300"),
                     ["environments.staging.http.read_timeout_s", "got 1e+300"]),
    "nan-wait": ("deploygate.toml",
                 lambda t: t.replace("probe_requests = 100", "wait_s = [nan, nan]\nprobe_requests = 100"),
                 ["defaults.performance.wait_s", "got nan", "@wait_s"]),
    "400-digit-users": ("deploygate.toml", lambda t: t.replace("users = 20", "users = " + "9" * 400),
                        ["defaults.performance.users", "400 digits"]),
    "utf-16": ("deploygate.toml", lambda t: t.encode("utf-16"), ["deploygate.toml:1:", "UTF-16", "must be UTF-8"]),
    "binary": ("deploygate.toml", lambda t: bytes(range(256)) * 4, ["deploygate.toml:1:", "not a text file"]),
    "latin-1": ("deploygate.toml", lambda t: ("# caf\u00e9\n" + t).encode("latin-1", "replace"),
                ["deploygate.toml:1:", "not UTF-8 text: byte 0xe9"]),
    "deep-arrays": ("deploygate.toml", _deep_arrays, ["@nested = [[[", "nested too deeply"]),
    "deep-tables": ("deploygate.toml", _deep_tables, ["deploygate.toml:", "a.a.a.a.a.a...", "nested too deeply"]),
    "threshold-typo": ("thresholds.toml",
                       lambda t: t.replace('"smoke.health.latency_ms" = { warn', '"smoke.helth.latency_ms" = { warn'),
                       ["metrics.smoke.helth.latency_ms: unknown metric", "@helth",
                        "did you mean 'smoke.health.latency_ms'?"]),
    "400-digit-threshold": ("thresholds.toml",
                            lambda t: t.replace('fail = "> 2000", description = "average', 'fail = "> '
                                                + "9" * 400 + '", description = "average'),
                            ["metrics.performance.avg_ms.fail", "out of range", "@99999"]),
    "binary-thresholds": ("thresholds.toml", lambda t: b"\xff\xfe" + t.encode("utf-16-le"),
                          ["thresholds.toml:1:", "UTF-16"]),
    "empty-policy": ("thresholds.toml", lambda t: "# nothing here\n", ["thresholds.toml", "no thresholds"]),
}


def _check_config(gate_project: Gate, *args: str) -> subprocess.CompletedProcess[str]:
    deploygate = str(Path(sys.executable).with_name("deploygate"))
    return subprocess.run([deploygate, "check-config", *args], cwd=gate_project.path, capture_output=True,
                          text=True, timeout=120)


def _message(stderr: str) -> str:
    """The configuration error as both the gate and the CLI print it (after their ``deploygate:`` prefix)."""
    line = next(line for line in stderr.splitlines() if "deploygate: " in line)
    return line.split("deploygate: ", 1)[1]


@pytest.mark.e2e
@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_configuration_exits_4_without_a_traceback_and_check_config_agrees(gate_project: Gate,
                                                                               case: str) -> None:
    name, change, needles = BAD_CONFIGS[case]
    target = gate_project.path / name
    source = target if target.exists() else Path(__file__).resolve().parent.parent / name
    changed = change(source.read_text())
    assert changed != source.read_text()
    if isinstance(changed, bytes):
        target.write_bytes(changed)
    else:
        target.write_text(changed)
    res = gate_project.run("--env", "staging", "-m", "gate")
    # "@text": the error names the file and the line holding that text
    lines = changed.splitlines() if isinstance(changed, str) else []
    needles = [f"{name}:{next(i for i, x in enumerate(lines, 1) if n[1:] in x)}: " if n.startswith("@") else n
               for n in needles]
    _usage_error(res, *needles)
    assert len(res.output.splitlines()) < 20, res.output  # one clear message, not pages of recursion
    cli = _check_config(gate_project, "--env", "staging")
    assert cli.returncode == USAGE_ERROR and "Traceback" not in cli.stderr, cli.stderr
    assert _message(cli.stderr) == _message(res.stderr)
    assert not cli.stdout


@pytest.mark.e2e
def test_check_config_finds_the_gates_files_and_passes_what_the_gate_accepts(gate_project: Gate) -> None:
    (gate_project.path / "thresholds.toml").write_text(
        '[metrics]\n"smoke.health.latency_ms" = { warn = "> 50000", fail = "> 60000" }\n')
    res = gate_project.run("--env", "staging", "--co")
    assert res.ret == 0, res.output
    assert f"thresholds: {gate_project.path / 'thresholds.toml'}" in res.stdout, res.stdout
    ok = _check_config(gate_project)
    assert ok.returncode == 0, ok.stderr
    assert f"{gate_project.path / 'deploygate.toml'}: ok (dev, staging, prod)" in ok.stdout
    assert f"{gate_project.path / 'thresholds.toml'}: ok" in ok.stdout
    # from a subdirectory, the CLI still finds the project's files (the gate's rootdir)
    sub = gate_project.path / "tests" / "deep"
    sub.mkdir(parents=True)
    deploygate = str(Path(sys.executable).with_name("deploygate"))
    nested = subprocess.run([deploygate, "check-config"], cwd=sub, capture_output=True, text=True, timeout=120)
    assert nested.returncode == 0 and nested.stdout == ok.stdout, nested.stderr
    # an unknown environment: the same error from both
    gate = gate_project.run("--env", "qa")
    cli = _check_config(gate_project, "--env", "qa")
    assert gate.ret == cli.returncode == USAGE_ERROR
    assert _message(cli.stderr) == _message(gate.stderr)


@pytest.mark.e2e
def test_a_threshold_that_judged_nothing_is_a_note(gate_project: Gate) -> None:
    # the glob is shadowed by the exact names for every smoke latency: it judges nothing
    (gate_project.path / "thresholds.toml").write_text("""[metrics]
"smoke.*.latency_ms" = { fail = "> 60000" }
"smoke.health.latency_ms" = { fail = "> 60000" }
"smoke.api.latency_ms" = { fail = "> 60000" }
"smoke.frontend.latency_ms" = { fail = "> 60000" }
"performance.p95_ms" = { fail = "> 60000" }
""")
    res = gate_project.run("--env", "dev", "-m", "gate and smoke")
    assert res.ret == 0, res.output
    assert res.report is not None
    note = "1 threshold(s) judged nothing in this run (no metric of that name was recorded): smoke.*.latency_ms"
    assert note in res.report["notes"]  # performance did not run: its threshold is no news
    assert note in res.stdout


def test_locate_files_is_the_one_lookup(tmp_path: Path) -> None:
    from pytest_deploygate.config import cli_root, locate_files

    with pytest.raises(ConfigError, match=r"no deploygate\.toml"):
        locate_files(tmp_path)
    (tmp_path / "deploygate.toml").write_text("")
    files = locate_files(tmp_path)
    assert files.config == tmp_path / "deploygate.toml" and files.table is None
    assert files.thresholds.name == "thresholds.toml" and files.thresholds.parent.name == "pytest_deploygate"
    (tmp_path / "thresholds.toml").write_text("")
    assert locate_files(tmp_path).thresholds == tmp_path / "thresholds.toml"
    with pytest.raises(ConfigError, match="thresholds file not found"):
        locate_files(tmp_path, thresholds=tmp_path / "nope.toml")
    # the CLI's root: the nearest directory upwards holding the configuration
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert cli_root(deep) == tmp_path.resolve()
    (tmp_path / "a" / "pyproject.toml").write_text('[tool.deploygate]\nservice = "x"\n')
    assert cli_root(deep) == (tmp_path / "a").resolve()
    assert locate_files(cli_root(deep)).table == "tool.deploygate"
    (tmp_path / "a" / "pyproject.toml").write_text('[tool.other]\nx = 1\n')
    assert cli_root(deep) == tmp_path.resolve()
