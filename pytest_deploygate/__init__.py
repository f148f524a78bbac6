"""pytest-deploygate: a pytest plugin that gates deployments."""

from __future__ import annotations

try:
    from importlib.metadata import version as _version

    __version__ = _version("pytest-deploygate")
except Exception:  # pragma: no cover - running from a source tree that is not installed
    __version__ = "0.0.0"
