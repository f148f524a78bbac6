"""pytest-deploygate: a pytest plugin that gates deployments."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any


def __getattr__(name: str) -> Any:
    # the version is read from the installed metadata when first asked for, not at every pytest start (~2.5 ms)
    if name == "__version__":
        try:
            from importlib.metadata import version

            value = version("pytest-deploygate")
        except Exception:  # pragma: no cover - running from a source tree that is not installed
            value = "0.0.0"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    import pytest

    from .config import Environment

    __version__: str


def current_environment(config: pytest.Config) -> Environment | None:
    """The environment selected for this run (``--env``), or None when the gate is not active.

    Use it in ``pytest_generate_tests`` to parametrize checks from the environment's settings.
    """
    from .run import get_run

    run = get_run(config)
    return run.environment if run is not None else None


__all__ = ["__version__", "current_environment"]
