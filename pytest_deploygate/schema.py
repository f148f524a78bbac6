"""The generic configuration machinery: TOML reading with locations, closed-schema validation, ``${VAR}``
expansion, and :class:`Section`, the base of every table declared as a dataclass (sections.py holds them).

Nothing here knows a deploygate key. Every problem is a :class:`ConfigError` naming file, line and key.
No pytest import.

PYTEST_DONT_REWRITE (loaded at pytest's start: see plugin.py).
"""

from __future__ import annotations

import dataclasses
import math
import re
import string
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

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

    def error(self, message: str, key_path: tuple[str, ...] = (), also: tuple[str, ...] | None = None) -> ConfigError:
        """A ConfigError at ``key_path``; ``also`` is where the value may have come from instead (an
        environment's key inherited from ``[defaults]``): its line is shown when the key is not in its own."""
        line, certain = find_key(self.text, (*self.prefix, *key_path))
        if not certain and also is not None:
            other, found = find_key(self.text, (*self.prefix, *also))
            if found:
                line = other
        return ConfigError(message, file=self.path, line=line, key=".".join(key_path) or None)


class _Trial(Source):
    """The document while :func:`validate` tries the options of an :class:`Either`: whether the value fits is
    all that counts (an option's error is dropped), so an error here skips the search for its line."""

    def error(self, message: str, key_path: tuple[str, ...] = (), also: tuple[str, ...] | None = None) -> ConfigError:
        return ConfigError(message, file=self.path, key=".".join(key_path) or None)


#: How deep tables and arrays may nest. No real configuration goes past a handful of levels; a limit
#: far below Python's recursion limit keeps every recursive step (validation, merging, expansion) safe.
MAX_DEPTH = 32

_BOMS = ((b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe\x00\x00", "UTF-32"),
         (b"\xfe\xff", "UTF-16"), (b"\xff\xfe", "UTF-16"))


def decode_toml(raw: bytes, path: Path) -> str:
    """The text of a TOML file, which must be UTF-8 (a UTF-8 byte-order mark is tolerated)."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            raise ConfigError(f"the file is {encoding} text; TOML files must be UTF-8 (save it as UTF-8)",
                              file=path, line=1)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # editors on Windows add it; TOML itself has no use for it
    if b"\x00" in raw:
        # no TOML text holds a NUL byte; UTF-16/32 without a byte-order mark is full of them
        line = raw.count(b"\n", 0, raw.index(b"\x00")) + 1
        raise ConfigError("not a text file: it holds NUL bytes (binary, or UTF-16/32 without a byte-order "
                          "mark); TOML files must be UTF-8", file=path, line=line)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"not UTF-8 text: byte 0x{raw[exc.start]:02x} (Latin-1 or another encoding?); "
                          "TOML files must be UTF-8", file=path, line=line) from None


def depth_error(data: Any, limit: int = MAX_DEPTH) -> tuple[str, ...] | None:
    """The key path of the first value nested deeper than ``limit``, or None (iterative: any depth)."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > limit:
            return path
        if isinstance(value, dict):
            stack.extend((v, (*path, str(k))) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*path, f"[{i}]")) for i, v in enumerate(value))
    return None


def parse_toml_text(text: str, path: Path) -> dict[str, Any]:
    """``tomllib.loads`` whose every failure is a ConfigError with file (and line where known)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        msg = str(exc)
        if line is None:
            m = re.search(r"line (\d+)", msg)
            line = int(m.group(1)) if m else None
        raise ConfigError(f"malformed TOML: {msg}", file=path, line=line) from None
    except RecursionError:
        # best effort: the first line that opens more brackets than any configuration needs
        line = next((n for n, text_line in enumerate(text.splitlines(), start=1)
                     if text_line.count("[") + text_line.count("{") > MAX_DEPTH), None)
        raise ConfigError(f"malformed TOML: tables or arrays nested too deeply (at most {MAX_DEPTH} levels)",
                          file=path, line=line) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"malformed TOML: {exc}", file=path) from None
    deep = depth_error(data)
    if deep is not None:
        shown = ".".join(deep[:6]) + ("..." if len(deep) > 6 else "")
        raise ConfigError(f"tables or arrays nested too deeply (more than {MAX_DEPTH} levels)", file=path,
                          line=locate(text, deep[:1]), key=shown)
    return data


def read_toml(path: Path) -> Source:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    text = decode_toml(raw, path)
    return Source(path, text, parse_toml_text(text, path))


def locate(text: str, key_path: tuple[str, ...]) -> int | None:
    """Best-effort line number of ``key_path`` in a TOML text (tomllib keeps no positions): the key's own
    line when it is found; else the line of the nearest enclosing table (or of a key of that name
    elsewhere, when not even the table is there). ``[n]`` after an array of tables (``[[...]]``) is its
    n-th entry; other array positions are skipped."""
    return find_key(text, key_path)[0]


_INDEX = re.compile(r"\[(\d+)\]")


def find_key(text: str, key_path: tuple[str, ...]) -> tuple[int | None, bool]:
    """(line, certain) for :func:`locate`: ``certain`` when the line is the key's own (or its table's)."""
    for j in range(len(key_path) - 1, 0, -1):
        m = _INDEX.fullmatch(key_path[j])
        if m is None:
            continue
        table = ".".join(k for k in key_path[:j] if not _INDEX.fullmatch(k))
        header = _nth_header(text, table, int(m.group(1)))
        if header is not None:
            return _in_block(text, header, tuple(k for k in key_path[j + 1:] if not _INDEX.fullmatch(k)))
    return _find(text, tuple(k for k in key_path if not k.startswith("[")))


def _nth_header(text: str, table: str, n: int) -> int | None:
    """The line of the ``n``-th ``[[table]]`` header."""
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        h = _HEADER.match(line)
        if h and line.lstrip().startswith("[[") and _name(h.group(1)) == table:
            if seen == n:
                return number
            seen += 1
    return None


def _in_block(text: str, header: int, parts: tuple[str, ...]) -> tuple[int | None, bool]:
    """The line of ``parts`` inside the table that starts at line ``header`` (itself when not found there)."""
    lines = text.splitlines()
    end = next((n for n in range(header + 1, len(lines) + 1) if _HEADER.match(lines[n - 1])), len(lines) + 1)
    line = header
    for part in parts:
        assign = _assign(part)
        found = next((n for n in range(line, end) if n > header and assign.search(lines[n - 1])), None)
        if found is None:
            return line, False
        line = found
    return line, True


def _find(text: str, parts: tuple[str, ...]) -> tuple[int | None, bool]:
    if not parts:
        return None, False
    line, exact = _locate(text, parts)
    if exact:
        return line, True
    if len(parts) == 1:
        return line, False
    # A key inside an inline table (``"performance.avg_ms" = { fail = ... }``): find its parent, then the
    # key on or after the parent's line, before the next table header.
    parent, certain = _find(text, parts[:-1])
    if parent is None:
        return line, False
    assign = _assign(parts[-1])
    lines = text.splitlines()
    for number in range(parent, len(lines) + 1):
        if number > parent and _HEADER.match(lines[number - 1]):
            break
        if assign.search(lines[number - 1]):
            return number, certain
    return parent, False


def _name(header: str) -> str:
    return header.replace('"', "").replace("'", "").replace(" ", "")


_HEADER = re.compile(r"^\s*\[\[?\s*(.+?)\s*\]\]?\s*(?:#.*)?$")


def _assign(key: str) -> re.Pattern[str]:
    k = re.escape(key)
    return re.compile(rf"(?:^|[\s{{,.])\s*(?:{k}|\"{k}\"|'{k}')\s*(?:=|\.)")


def _locate(text: str, parts: tuple[str, ...]) -> tuple[int | None, bool]:
    """(line, whether it is certainly that key): the key's assignment in its parent table or its own table
    header; else the first assignment of a key of that name anywhere."""
    assign = _assign(parts[-1])
    parent = ".".join(parts[:-1])
    in_parent = parent == ""
    first_any: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        h = _HEADER.match(line)
        if h:
            name = _name(h.group(1))
            in_parent = name == parent
            if name == ".".join(parts) or name.startswith(".".join(parts) + "."):
                return number, True
            continue
        if assign.search(line):
            if in_parent:
                return number, True
            if first_any is None:
                first_any = number
    return first_any, False


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

#: No configured number may be larger than this (in magnitude): far above any count, size or duration a
#: configuration needs, and small enough that every consumer (float conversion, sleeps, socket
#: timeouts after their own range check) takes it. TOML allows inf, nan and 400-digit integers.
MAX_NUMBER = 1e15


class Num:
    """A finite number in a range: ``Num(0, 3600, above=True)`` is 0 < x <= 3600; ``integer=True`` for
    whole numbers. Plain ``NUMBER`` and ``int`` specs are finite and within :data:`MAX_NUMBER` too."""

    def __init__(self, low: float | None = None, high: float | None = None, *, above: bool = False,
                 integer: bool = False) -> None:
        self.low, self.high, self.above, self.integer = low, high, above, integer

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.above else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"<= {self.high:g}")
        return kind + (" " + " and ".join(parts) if parts else "")

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if self.integer else NUMBER):
            return False
        if not finite(value):
            return False
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or value <= self.high


#: a network timeout or wait: positive, and at most an hour (beyond that it is a typo, and sockets overflow)
TIMEOUT = Num(0, 3600, above=True)


def finite(value: int | float) -> bool:
    """Finite and within :data:`MAX_NUMBER` (an int too big for a float is not)."""
    if isinstance(value, int):
        return -MAX_NUMBER <= value <= MAX_NUMBER
    return math.isfinite(value) and abs(value) <= MAX_NUMBER


def _number_problem(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "got nan (not a number)"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not finite(value):
        shown = f"{value:g}" if isinstance(value, float) else f"an integer of {len(str(abs(value)))} digits"
        return f"got {shown}: numbers must be finite and at most {MAX_NUMBER:g} in magnitude"
    return f"got {value!r}"


def _type_name(spec: Any) -> str:
    if spec is bool:
        return "a boolean"
    if spec is str:
        return "a string"
    if spec is int:
        return "an integer"
    if spec is NUMBER:
        return "a number"
    if isinstance(spec, Num):
        return spec.describe()
    if isinstance(spec, list):
        return "an array"
    if isinstance(spec, OneOf):
        return "one of " + ", ".join(repr(c) for c in spec.choices)
    if isinstance(spec, Either):
        return " or ".join(_type_name(s) for s in spec.specs)
    if spec is object:
        return "any value"
    if isinstance(spec, type) and not issubclass(spec, Section):
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
        trial = _Trial(src.path, src.text, src.data, src.prefix)
        for option in spec.specs:
            try:
                validate(value, option, trial, path)
                return
            except ConfigError:
                continue
        raise src.error(f"expected {_type_name(spec)}, got {value!r}", path)
    elif spec is object:
        # free-form values (request bodies) still carry only finite numbers: JSON has no nan or inf
        if isinstance(value, dict):
            for key, sub in value.items():
                validate(sub, object, src, (*path, key))
        elif isinstance(value, list):
            for i, sub in enumerate(value):
                validate(sub, object, src, (*path, f"[{i}]"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and not finite(value):
            raise src.error(f"expected a finite number, {_number_problem(value)}", path)
    elif isinstance(spec, OneOf):
        if value not in spec.choices:
            raise src.error(f"expected {_type_name(spec)}, got {value!r}", path)
    elif spec is NUMBER:
        if isinstance(value, bool) or not isinstance(value, NUMBER) or not finite(value):
            raise src.error(f"expected a number, {_number_problem(value)}", path)
    elif spec is int:
        if isinstance(value, bool) or not isinstance(value, int) or not finite(value):
            raise src.error(f"expected an integer, {_number_problem(value)}", path)
    elif isinstance(spec, type) and issubclass(spec, Section):
        validate(value, spec.schema(), src, path)
    elif isinstance(spec, Num):
        if not spec.accepts(value):
            in_range = isinstance(value, float) and math.isfinite(value)
            got = f"got {value:g}" if in_range else _number_problem(value)
            raise src.error(f"expected {spec.describe()}, {got}", path)
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


# --------------------------------------------------------------------------------------------------
# Sections: a table declared once, as a frozen dataclass whose fields are its keys

_KEY = "deploygate.key"


def key(spec: Any, name: str | None = None, *, template: Collection[str] | None = None) -> dict[str, Any]:
    """The metadata of a dataclass field that is a configuration key: ``field(default=3.05,
    metadata=key(TIMEOUT))``. Its values follow ``spec`` (a schema leaf, a nested schema, or a
    :class:`Section` class, or ``[SectionClass]`` for an array of tables); ``name`` is the key when it differs
    from the field's name (dotted for a key of a subtable: ``"bandit.severity"``); with ``template``, every
    string in the value may hold only those ``{placeholders}``."""
    return {_KEY: (spec, name, frozenset(template) if template is not None else None)}


@dataclass(frozen=True)
class Where:
    """Where a table is, for error messages, and the template values known when it is read
    (``{env}``, ``{service}``, ...: what ``from_table`` may fill in at load time)."""

    src: Source
    path: tuple[str, ...]
    fields: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: the same table where its values may be inherited from (``("defaults",)`` for an environment)
    inherited: tuple[str, ...] | None = None

    def at(self, *keys: str) -> Where:
        return Where(self.src, (*self.path, *keys), self.fields,
                     (*self.inherited, *keys) if self.inherited is not None else None)

    def error(self, message: str, *keys: str) -> ConfigError:
        return self.src.error(message, (*self.path, *keys),
                              also=(*self.inherited, *keys) if self.inherited is not None else None)

    def check_template(self, value: Any, allowed: Collection[str], *keys: str) -> None:
        """Every string in ``value`` (nested tables and arrays too) uses only ``allowed`` placeholders."""
        if isinstance(value, dict):
            for k, v in value.items():
                self.check_template(v, allowed, *keys, str(k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.check_template(v, allowed, *keys, f"[{i}]")
        elif isinstance(value, str):
            try:
                names = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
            except ValueError as exc:
                raise self.error(f"bad template {value!r}: {exc}", *keys) from None
            unknown = sorted(n for n in names if n not in allowed)
            if unknown:
                raise self.error(f"unknown placeholder {{{unknown[0]}}} in {value!r} "
                                 f"(known: {', '.join(sorted(allowed))})", *keys)


S = TypeVar("S", bound="Section")


class Section:
    """A table of the configuration, declared once: a frozen dataclass whose fields carry their key's schema
    (``metadata=key(...)``) beside their default. :meth:`schema` is what :func:`validate` checks the table
    against (closed: an unknown key is an error); :meth:`from_table` builds the instance from a validated
    table, every key not given keeping the dataclass default. A section with rules beyond its schema
    (ranges between keys, derived values) overrides ``from_table`` and ends with :func:`build`."""

    #: how an error about the table names it: "a webhook needs 'url'"
    NOUN: ClassVar[str] = "this table"

    # One __eq__, __hash__ and __repr__ for every section, the ones @dataclass would generate for each (equal
    # when of the same class with equal field values, hashed by them, shown as ``Name(key=value, ...)``): the
    # sections of sections.py and resources.py say ``@dataclass(frozen=True, eq=False, repr=False)``, because
    # Python 3.11 compiles every generated method of every dataclass when its module is imported (these three:
    # ~0.18 ms a section, 35 sections, at every gate's start).
    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return _values(self, "compare") == _values(other, "compare")

    def __hash__(self) -> int:
        return hash(_values(self, "hash"))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _field_names(type(self), "repr"))
        return f"{type(self).__qualname__}({shown})"

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """The table's closed schema, derived from the fields when asked (nothing is computed at import)."""
        return _schema_of(cls)

    @classmethod
    def from_table(cls: type[S], raw: Mapping[str, Any], where: Where) -> S:
        return build(cls, raw, where)


_FIELD_NAMES: dict[tuple[type, str], tuple[str, ...]] = {}


def _field_names(cls: type, use: str) -> tuple[str, ...]:
    """The fields of dataclass ``cls`` that count for ``use`` ("compare", "hash", "repr"), as @dataclass
    chooses them (a field's ``hash`` defaults to its ``compare``)."""
    names = _FIELD_NAMES.get((cls, use))
    if names is None:
        fields = dataclasses.fields(cls)
        if use == "hash":
            names = tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash))
        else:
            names = tuple(f.name for f in fields if getattr(f, use))
        _FIELD_NAMES[(cls, use)] = names
    return names


def _values(section: Section, use: str) -> tuple[Any, ...]:
    return tuple(getattr(section, name) for name in _field_names(type(section), use))


def _keys(cls: type) -> list[tuple[dataclasses.Field[Any], Any, tuple[str, ...], frozenset[str] | None]]:
    """(field, spec, key path, allowed placeholders) of each field of ``cls`` that is a configuration key."""
    out = []
    for f in dataclasses.fields(cls):
        if _KEY in f.metadata:
            spec, name, template = f.metadata[_KEY]
            out.append((f, spec, tuple((name or f.name).split(".")), template))
    return out


def _schema_of(cls: type) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    for _, spec, path, _ in _keys(cls):
        table = schema
        for part in path[:-1]:
            table = table.setdefault(part, {})
        table[path[-1]] = spec
    return schema


def _convert(value: Any, spec: Any, where: Where) -> Any:
    """A validated TOML value as its field holds it: tables of a Section built, arrays as tuples,
    numbers of a non-integer :class:`Num` as floats."""
    if isinstance(spec, type) and issubclass(spec, Section):
        return spec.from_table(value, where)
    if isinstance(spec, list) and isinstance(value, list):
        return tuple(_convert(v, spec[0], where.at(f"[{i}]")) for i, v in enumerate(value))
    if isinstance(spec, Num) and not spec.integer and isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def build(cls: type[S], raw: Mapping[str, Any], where: Where, **values: Any) -> S:
    """The section ``cls`` from its validated table ``raw``: each key given (placeholders checked, converted
    by :func:`_convert`), then ``values`` (what ``from_table`` computed itself); every other field keeps its
    dataclass default, and a key without one must be given."""
    kwargs: dict[str, Any] = {}
    for f, spec, path, template in _keys(cls):
        if f.name in values:
            continue
        table: Any = raw
        for part in path:
            table = table.get(part, _ABSENT) if isinstance(table, Mapping) else _ABSENT
        if table is _ABSENT:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise where.error(f"{cls.NOUN} needs {'.'.join(path)!r}")
            continue
        if template is not None:
            where.check_template(table, template, *path)
        kwargs[f.name] = _convert(table, spec, where.at(*path))
    return cls(**kwargs, **values)


_ABSENT = object()
