"""Repository-root conftest: the plugin itself is loaded through its ``pytest11`` entry point
(``pip install -e .``), so ``pytest --env staging -m gate`` here runs the built-in suites against the
embedded reference deployment that ``deploygate.toml`` launches."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_deploygate import current_environment

HERE = Path(__file__).parent
collect_ignore = ["bench", "build", "dist"]


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # A gate run from the repository root (`--env`) runs the gate, not the plugin's own tests (which need
    # the test extras); a plain `pytest` runs the plugin's tests, not the suites (which need an --env).
    gate_run = current_environment(config) is not None
    if collection_path == HERE / "tests" and gate_run:
        return True
    if collection_path == HERE / "suites" and not gate_run:
        return True
    return None
