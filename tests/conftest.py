"""Fixtures for the plugin's own tests."""

from __future__ import annotations

import pytest

from gatehelpers import Gate


@pytest.fixture
def gate_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Gate:
    return Gate(pytester, monkeypatch)


@pytest.fixture(autouse=True)
def _no_outer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DEPLOYGATE_ENV", "DEPLOYGATE_DEMO_FAULTS", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(var, raising=False)
