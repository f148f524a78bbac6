"""pytest-deploygate: a pytest plugin that gates deployments."""

from __future__ import annotations

try:
    from importlib.metadata import version as _version

    __version__ = _version("pytest-deploygate")
except Exception:  # pragma: no cover - running from a source tree that is not installed
    __version__ = "0.0.0"

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pytest

    from .config import Environment


def current_environment(config: pytest.Config) -> Environment | None:
    """The environment selected for this run (``--env``), or None when the gate is not active.

    Use it in ``pytest_generate_tests`` to parametrize checks from the environment's settings.
    """
    from .run import get_run

    run = get_run(config)
    return run.environment if run is not None else None


__all__ = ["__version__", "current_environment"]
