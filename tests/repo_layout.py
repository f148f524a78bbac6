"""What a pytest run from this repository's root collects (a plugin named in pyproject.toml's ``addopts``, not a
``conftest.py``: a repository-root conftest is an ancestor of ``suites/``, so with the plugin installed editable
it would be loaded into every user's gate run, from any project).

A gate run here (``pytest --env staging -m gate``) runs the built-in suites against the embedded reference
deployment, not the plugin's own tests (which need the test extras); a plain ``pytest`` runs the plugin's
tests, not the suites (which need an ``--env``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_deploygate import current_environment

REPO = Path(__file__).resolve().parent.parent
NEVER = ("bench", "build", "dist")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if Path(config.rootpath) != REPO:
        return None
    if collection_path.parent == REPO and collection_path.name in NEVER:
        return True
    gate_run = current_environment(config) is not None
    if collection_path == REPO / "tests" and gate_run:
        return True
    if collection_path == REPO / "suites" and not gate_run:
        return True
    return None
