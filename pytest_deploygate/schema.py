"""TOML reading with locations, closed-schema validation and ``${VAR}`` expansion.

Every problem is a :class:`ConfigError` naming file, line and key. No pytest import.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


class ConfigError(Exception):
    """A configuration problem, reported as ``file:line: key: message``."""

    def __init__(self, message: str, *, file: Path | str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.key = key

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"


# --------------------------------------------------------------------------------------------------
# TOML reading with locations


@dataclass(frozen=True)
class Source:
    """A TOML document and where it came from, so errors can point at a line."""

    path: Path
    text: str
    data: dict[str, Any]
    prefix: tuple[str, ...] = ()

    def error(self, message: str, key_path: tuple[str, ...] = ()) -> ConfigError:
        return ConfigError(message, file=self.path, line=locate(self.text, (*self.prefix, *key_path)),
                           key=".".join(key_path) or None)


def read_toml(path: Path) -> Source:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        msg = str(exc)
        if line is None:
            m = re.search(r"line (\d+)", msg)
            line = int(m.group(1)) if m else None
        raise ConfigError(f"malformed TOML: {msg}", file=path, line=line) from None
    return Source(path, text, data)


def locate(text: str, key_path: tuple[str, ...]) -> int | None:
    """Best-effort line number of ``key_path`` in a TOML text (tomllib keeps no positions)."""
    if not key_path:
        return None
    parts = [k for k in key_path if not k.startswith("[")]
    if not parts:
        return None
    key = re.escape(parts[-1])
    quoted = rf"(?:{key}|\"{key}\"|'{key}')"
    header = re.compile(r"^\s*\[\[?\s*(.+?)\s*\]\]?\s*(?:#.*)?$")
    assign = re.compile(rf"(?:^|[\s{{,.])\s*{quoted}\s*(?:=|\.)")
    lines = text.splitlines()
    parent = ".".join(parts[:-1])
    in_parent = parent == ""
    first_any: int | None = None
    for number, line in enumerate(lines, start=1):
        h = header.match(line)
        if h:
            name = h.group(1).replace('"', "").replace("'", "").replace(" ", "")
            in_parent = name == parent
            if name == ".".join(parts) or name.startswith(".".join(parts) + "."):
                return number
            continue
        if assign.search(line):
            if in_parent:
                return number
            if first_any is None:
                first_any = number
    return first_any


# --------------------------------------------------------------------------------------------------
# Schema validation: closed tables, typed leaves


class MapOf:
    """An open table whose values all follow one spec (e.g. ``environments.<name>``)."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec


class OneOf:
    def __init__(self, *choices: str) -> None:
        self.choices = choices


class Either:
    """A value that may follow any of several specs (e.g. a status code or a list of them)."""

    def __init__(self, *specs: Any) -> None:
        self.specs = specs


NUMBER = (int, float)


def _type_name(spec: Any) -> str:
    if spec is bool:
        return "a boolean"
    if spec is str:
        return "a string"
    if spec is int:
        return "an integer"
    if spec is NUMBER:
        return "a number"
    if isinstance(spec, list):
        return "an array"
    if isinstance(spec, OneOf):
        return "one of " + ", ".join(repr(c) for c in spec.choices)
    if isinstance(spec, Either):
        return " or ".join(_type_name(s) for s in spec.specs)
    if spec is object:
        return "any value"
    if isinstance(spec, type):
        return f"a {spec.__name__}"
    return "a table"


def validate(value: Any, spec: Any, src: Source, path: tuple[str, ...]) -> None:
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise src.error(f"expected a table, got {type(value).__name__}", path)
        for key, sub in value.items():
            if key not in spec:
                known = ", ".join(sorted(spec))
                raise src.error(f"unknown key {key!r} (known: {known})", (*path, key))
            validate(sub, spec[key], src, (*path, key))
    elif isinstance(spec, MapOf):
        if not isinstance(value, dict):
            raise src.error(f"expected a table, got {type(value).__name__}", path)
        for key, sub in value.items():
            validate(sub, spec.spec, src, (*path, key))
    elif isinstance(spec, list):
        if not isinstance(value, list):
            raise src.error(f"expected an array, got {type(value).__name__}", path)
        for i, sub in enumerate(value):
            validate(sub, spec[0], src, (*path, f"[{i}]"))
    elif isinstance(spec, Either):
        for option in spec.specs:
            try:
                validate(value, option, src, path)
                return
            except ConfigError:
                continue
        raise src.error(f"expected {_type_name(spec)}, got {value!r}", path)
    elif spec is object:
        return
    elif isinstance(spec, OneOf):
        if value not in spec.choices:
            raise src.error(f"expected {_type_name(spec)}, got {value!r}", path)
    elif spec is NUMBER:
        if isinstance(value, bool) or not isinstance(value, NUMBER):
            raise src.error(f"expected a number, got {value!r}", path)
    elif spec is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise src.error(f"expected an integer, got {value!r}", path)
    elif not isinstance(value, spec):
        raise src.error(f"expected {_type_name(spec)}, got {value!r}", path)


# --------------------------------------------------------------------------------------------------
# ${VAR} expansion

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_vars(value: Any, src: Source, path: tuple[str, ...], environ: Mapping[str, str],
                secrets: set[str] | None = None) -> Any:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in every string; a missing variable is an error."""
    if isinstance(value, dict):
        return {k: expand_vars(v, src, (*path, k), environ, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_vars(v, src, (*path, f"[{i}]"), environ, secrets) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in environ:
            result = environ[name]
        elif default is not None:
            result = default
        else:
            raise src.error(f"environment variable ${{{name}}} is not set", path)
        if secrets is not None and result:
            secrets.add(result)
        return result

    return _VAR.sub(sub, value)
