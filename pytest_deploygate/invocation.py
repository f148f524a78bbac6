"""pytest's rootdir, chosen without the plugin's options: put right before anything uses it.

pytest picks its rootdir (and ini file) from the command line's paths in ``Config.parse`` *before* it loads
plugins from entry points. At that moment ``--gate-report`` is an unknown option, so in the space form
(``--gate-report /var/log/gate/prod.json``) its value counts as a test path once the file exists: the rootdir
becomes ``/var/log/gate``, the project's ``deploygate.toml`` and ini file are not found, and a scheduled run
breaks from its second run on. The same holds for any plugin's option that takes a path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def setup_without_option_values(config: pytest.Config) -> tuple[Path, Path | None, Any, Any] | None:
    """pytest's rootdir, ini path, ini values and ignored ini files as they come out of the command line's
    real paths, now that every plugin's options are known; None when ``--rootdir`` or ``-c`` decided them."""
    from _pytest.config.findpaths import determine_setup

    ns = config.known_args_namespace
    if getattr(ns, "rootdir", None) or getattr(ns, "inifilename", None):
        return None
    rootpath, inipath, inicfg, ignored = determine_setup(
        inifile=None, override_ini=getattr(ns, "override_ini", None), args=list(getattr(ns, "file_or_dir", [])),
        rootdir_cmd_arg=None, invocation_dir=config.invocation_params.dir)
    return rootpath, inipath, inicfg, ignored


def correct_rootdir(config: pytest.Config, parser: pytest.Parser, args: list[str]) -> str | None:
    """Re-decide the rootdir and ini file without option values taken for paths; returns what changed (for
    the header), or None. Runs before the initial conftests are loaded and before the final parse."""
    try:
        found = setup_without_option_values(config)
        if found is None:
            return None
        rootpath, inipath, inicfg, ignored = found
        if rootpath == config.rootpath and inipath == config.inipath:
            return None
        wrong = config.rootpath
        ns = config.known_args_namespace
        previous_cut = str(config.inipath.parent if config.inipath else config.rootpath)
        # pytest has no public way to set these; they are what Config.parse set a moment ago
        config._rootpath = rootpath  # type: ignore[attr-defined]
        config._inipath = inipath  # type: ignore[attr-defined]
        config._inicfg = inicfg  # type: ignore[attr-defined]
        config._ignored_config_files = ignored  # type: ignore[attr-defined]
        config._inicache.clear()  # type: ignore[attr-defined]
        parser.extra_info["rootdir"] = str(rootpath)
        parser.extra_info["inifile"] = str(inipath)
        if ns.confcutdir == previous_cut:
            ns.confcutdir = str(inipath.parent if inipath else rootpath)
        addopts = config.getini("addopts")  # the right ini file's, which the first parse never saw
        if addopts:
            args[:] = [*addopts, *args]
        return f"rootdir {rootpath} (not {wrong}: an option's value is not a test path)"
    except (AttributeError, TypeError, ImportError):  # pytest's internals moved: say how to avoid the trap
        return None
