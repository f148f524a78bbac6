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
    # A gate run from the repository root runs the gate, not the plugin's own tests (which need the
    # test extras and run with `pytest tests`, without --env).
    if collection_path == HERE / "tests" and current_environment(config) is not None:
        return True
    return None
