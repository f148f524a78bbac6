"""Secrets never leave the run. One function, :func:`redact`, decides what a secret looks like in text (whole,
escaped, or cut by a truncation); :class:`SecretGuard` applies it wherever pytest, its plugins or the logging
module write: reports (terminal, JUnit, xdist, JSON, Markdown), test ids, warnings, log records (message and
exception text), the terminal itself and, as a last net, the files other reporters wrote."""

from __future__ import annotations

import configparser
import dataclasses
import functools
import html
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from .config import Environment
    from .run import GateRun

MASK = "***"
#: a secret shorter than this is too common a string to replace (it would shred ordinary words)
MIN_SECRET_CHARS = 4
#: no piece of a secret this long survives anywhere: a truncated repr (``'Bearer dgpla...9c1d'``), a line
#: cut at a width, a diff that skips the common start all leave pieces, never the whole secret
PIECE_CHARS = 8
#: real AWS credentials are at least this long; shorter values are an emulator's placeholders (moto's
#: ``testing``), and treating them as secrets would mask ordinary words
MIN_AWS_CREDENTIAL_CHARS = 16
#: a piece of a secret holds, whole, one of the secret's *anchors*: its ANCHOR_CHARS-character substrings that
#: start every ANCHOR_STEP characters (ANCHOR_CHARS + ANCHOR_STEP = PIECE_CHARS + 1, so any PIECE_CHARS
#: consecutive characters of the secret hold one); a text without an anchor holds no piece
ANCHOR_CHARS = 4
ANCHOR_STEP = PIECE_CHARS + 1 - ANCHOR_CHARS
#: up to this many anchors, each is looked for with ``str.find`` (C speed, one pass over the text per anchor);
#: above it (long secrets: an AWS session token has hundreds), the text's runs of the characters pieces are
#: made of are listed (one regex pass), and each distinct run is scanned in Python (see ``_piece_starts``)
FIND_ANCHORS = 32

# Credentials botocore prints in its debug log whatever their source (assume-role, SSO, instance role:
# resolved at request time, after the run collected its secrets): the value after the name goes.
_CREDENTIAL_PATTERNS = (
    re.compile(r"""(?i)(x-amz-security-token['"]?\s*[:=,]\s*b?['"]?)[A-Za-z0-9+/=%_-]{8,}"""),
    re.compile(r"(Credential=)[A-Z0-9]{16,128}(?=/|%2F)"),
)
#: what each pattern's match must contain, found fast: a case-insensitive pattern that starts with a letter
#: is tried at every position (~25 ms on 4 MB), a search that starts with ``-`` skips to each hyphen (~1 ms)
_CREDENTIAL_HINTS = (re.compile(r"-(?i:amz-security-token)"), None)


def _variants(secret: str) -> set[str]:
    """How ``secret`` can appear in output: as is, JSON- or XML-escaped, in a Python repr, URL-encoded."""
    return {secret, json.dumps(secret)[1:-1], html.escape(secret), html.escape(secret, quote=False),
            repr(secret)[1:-1], _url_encoded(secret)}


def _url_encoded(secret: str) -> str:
    """``secret`` URL-encoded as the bytes it stands for: a value read from a non-UTF-8 environment carries
    lone surrogates, which the UTF-8 codec refuses."""
    for errors in ("surrogateescape", "surrogatepass"):
        try:
            return quote(secret.encode("utf-8", errors), safe="")
        except UnicodeEncodeError:
            continue
    return quote(secret.encode("utf-8", "replace"), safe="")


def _private_parts(secret: str) -> list[str]:
    """The parts of ``secret`` whose pieces are secret too. For a URL (a webhook) that is what follows the
    host: ``http://127.0.0.1:`` is in every address the run prints, and masking it would hide them all."""
    parts = urlsplit(secret)
    if parts.scheme in ("http", "https") and parts.netloc:
        return [secret.split(parts.netloc, 1)[1], parts.password or ""]
    return [secret]


class Redactor:
    """:func:`redact` for one set of secrets, compiled once."""

    def __init__(self, secrets: Iterable[str]) -> None:
        whole = {v for s in secrets if len(s) >= MIN_SECRET_CHARS for v in _variants(s)}
        self._whole = (re.compile("|".join(re.escape(s) for s in sorted(whole, key=len, reverse=True)))
                       if whole else None)
        pieces: set[str] = set()
        anchors: set[str] = set()
        for secret in secrets:
            for part in _private_parts(secret):
                for variant in _variants(part):
                    if len(variant) < PIECE_CHARS:
                        continue
                    pieces.update(variant[i:i + PIECE_CHARS] for i in range(len(variant) - PIECE_CHARS + 1))
                    anchors.update(variant[i:i + ANCHOR_CHARS]
                                   for i in range(0, len(variant) - ANCHOR_CHARS + 1, ANCHOR_STEP))
        self._pieces = frozenset(pieces)
        # a piece lies within a run of at least PIECE_CHARS of the characters pieces are made of
        chars = "".join(sorted({c for p in pieces for c in p}))
        self._runs = re.compile(f"[{re.escape(chars)}]{{{PIECE_CHARS},}}") if chars else None
        #: a piece found in a text holds one of these, found first
        self._anchors = frozenset(anchors)
        # every ANCHOR_CHARS-character substring of a piece: the text's own blocks are looked up among them
        self._grams = frozenset(p[i:i + ANCHOR_CHARS] for p in pieces for i in range(PIECE_CHARS - ANCHOR_CHARS + 1))

    def __call__(self, text: str) -> str:
        if self._whole is not None:
            text = self._whole.sub(MASK, text)
        for pattern, hint in zip(_CREDENTIAL_PATTERNS, _CREDENTIAL_HINTS, strict=True):
            if hint is None or hint.search(text):
                text = pattern.sub(lambda m: m.group(1) + MASK, text)
        if self._pieces:
            text = self._mask_pieces(text)
        return text

    def _piece_starts(self, text: str) -> list[int]:
        """Where a piece of a secret starts in ``text``, in order."""
        n, k, pieces, size = PIECE_CHARS, ANCHOR_CHARS, self._pieces, len(text)
        found: set[int] = set()
        if len(self._anchors) <= FIND_ANCHORS:
            # few anchors: str.find of each runs at C speed over the text; a piece holding the anchor found at
            # i starts at i - (n - k) .. i
            for anchor in self._anchors:
                i = text.find(anchor)
                while i != -1:
                    found.update(j for j in range(max(i - n + k, 0), min(i, size - n) + 1)
                                 if text[j:j + n] in pieces)
                    i = text.find(anchor, i + 1)
            return sorted(found)
        # many: a piece lies within a maximal run of piece characters (of n or more): each distinct run is scanned
        # once (a report repeats its words), then the runs holding a piece, usually none, are found in the text
        assert self._runs is not None
        hot: dict[str, list[int]] = {}
        grams, step = self._grams, ANCHOR_STEP
        for run in set(self._runs.findall(text)):
            for q in range(0, len(run) - k + 1, step):
                if run[q:q + k] in grams:  # the run may hold a piece: scan it all
                    starts = self._scan(run)
                    if starts:
                        hot[run] = starts
                        if len(hot) > FIND_ANCHORS:
                            return self._scan(text)
                    break
        for run, starts in hot.items():
            i = text.find(run)
            while i != -1:
                found.update(i + j for j in starts)
                i = text.find(run, i + 1)
        return sorted(found)

    def _scan(self, text: str) -> list[int]:
        """:meth:`_piece_starts` in Python: every run of n characters holds, whole, a block of k that starts at a
        multiple of n + 1 - k; the text's blocks there are looked up among the k-character substrings of the
        pieces, and around a block found, every piece start."""
        n, k, pieces, grams, size = PIECE_CHARS, ANCHOR_CHARS, self._pieces, self._grams, len(text)
        found: set[int] = set()
        for q in range(0, size - k + 1, ANCHOR_STEP):
            if text[q:q + k] in grams:
                found.update(j for j in range(max(q - n + k, 0), min(q, size - n) + 1) if text[j:j + n] in pieces)
        return sorted(found)

    def _mask_pieces(self, text: str) -> str:
        n = PIECE_CHARS
        starts = self._piece_starts(text)
        if not starts:
            return text
        out, done = [], 0
        span_start, span_end = starts[0], starts[0] + n
        for i in starts[1:]:
            if i > span_end:
                out += [text[done:span_start], MASK]
                done, span_start = span_end, i
            span_end = i + n
        out += [text[done:span_start], MASK, text[span_end:]]
        return "".join(out)


@functools.lru_cache(maxsize=64)
def redactor(secrets: frozenset[str]) -> Redactor:
    return Redactor(secrets)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (4 characters or more) replaced by ``***``: whole, escaped (JSON, XML,
    repr, URL) or any piece of 8 characters or more (what a truncation leaves), and AWS credentials that
    botocore prints. The one definition of what a secret looks like in output."""
    if not text:
        return text  # with no secret the credential patterns still apply: botocore prints resolved ones
    return redactor(secrets if isinstance(secrets, frozenset) else frozenset(secrets))(text)


_SHORT_CHARS = 200


@functools.lru_cache(maxsize=4096)
def _redact_short(text: str, secrets: frozenset[str]) -> str:
    # a report's structure repeats its short strings (keys, units, verdicts, node ids) once per metric:
    # a report of 10k metrics redacted each anew spent ~30 µs per metric here
    return redact(text, secrets)


def redact_value(value: Any, secrets: Iterable[str], _seen: set[int] | None = None) -> Any:
    """``value`` with every string inside redacted: dicts, lists and tuples are rebuilt or updated; objects
    (pytest's failure representations) are redacted in place, so they keep their structure (the short
    summary still finds the crash message)."""
    key = secrets if isinstance(secrets, frozenset) else frozenset(secrets)
    seen = set() if _seen is None else _seen
    if isinstance(value, str):
        return _redact_short(value, key) if len(value) <= _SHORT_CHARS else redact(value, key)
    if value is None or isinstance(value, (int, float, bytes)) or id(value) in seen:
        return value
    seen.add(id(value))
    if isinstance(value, dict):
        return {redact_value(k, key, seen): redact_value(v, key, seen) for k, v in value.items()}
    if isinstance(value, list):
        value[:] = [redact_value(v, key, seen) for v in value]
        return value
    if isinstance(value, tuple):
        items = [redact_value(v, key, seen) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if not hasattr(value, "toterminal") or isinstance(value, type):
        return value  # not a failure representation: left alone (the caller checks the text it prints)
    if dataclasses.is_dataclass(value):
        names: Iterable[str] = [f.name for f in dataclasses.fields(value)]
    else:
        names = list(getattr(value, "__dict__", {}))
    for name in names:
        old = getattr(value, name, None)
        new = redact_value(old, key, seen)
        if new is not old:
            try:
                object.__setattr__(value, name, new)
            except (AttributeError, TypeError):
                pass
    return value


def _plain_texts(values: Iterable[Any], out: list[str], limit: int = 10_000) -> bool:
    """Add the strings in ``values`` to ``out``; False when they hold anything but strings, numbers, bytes and
    None in lists, tuples and dicts (which :func:`redact_value` would walk otherwise), or more than ``limit``
    items (a list that holds itself, say)."""
    stack = list(values)
    while stack:
        limit -= 1
        if limit < 0:
            return False
        value = stack.pop()
        kind = type(value)
        if kind is str:
            out.append(value)
        elif kind is tuple or kind is list:
            stack.extend(value)
        elif kind is dict:
            stack.extend(value)
            stack.extend(value.values())
        elif value is None or kind is int or kind is float or kind is bool or kind is bytes:
            pass
        elif isinstance(value, str):
            out.append(value)
        elif isinstance(value, (int, float, bytes)):
            pass
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
        else:
            return False
    return True


def redact_report(report: pytest.TestReport | pytest.CollectReport, secrets: frozenset[str]) -> None:
    """No secret reaches a report: terminal, JUnit, xdist, the JSON report and every other reporter read
    these fields, and the test id (a parametrize id may carry one) is among them."""
    texts = [report.nodeid]
    if _plain_texts((report.longrepr, report.sections), texts) and (
            not isinstance(report, pytest.TestReport)
            or _plain_texts((report.location, list(report.keywords), report.user_properties), texts)):
        # every field is plain text: when all of it together holds nothing to mask, no field does (a match in
        # a field is one in the whole), and the report is left as it is (the gate logs a threshold case, two
        # reports, per judged metric: 10k of them were ~40 µs each, field by field)
        joined = "\n".join(texts)
        if redact(joined, secrets) == joined:
            return
    report.nodeid = redact(report.nodeid, secrets)
    if report.longrepr is not None:
        report.longrepr = redact_value(report.longrepr, secrets)
        text = report.longreprtext
        if redact(text, secrets) != text:  # a representation this walk does not know: keep only its text
            report.longrepr = redact(text, secrets)
    report.sections = [(redact(t, secrets), redact(c, secrets)) for t, c in report.sections]
    if isinstance(report, pytest.TestReport):
        report.location = redact_value(report.location, secrets)
        report.keywords = {redact(k, secrets): v for k, v in report.keywords.items()}
        report.user_properties = redact_value(list(report.user_properties), secrets)


# --------------------------------------------------------------------------------------------------
# the secrets of a run that are not in the configuration: AWS credentials


AWS_CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
AWS_CREDENTIAL_KEYS = tuple(v.lower() for v in AWS_CREDENTIAL_VARS)


def aws_credential_secrets(environments: Iterable[Environment],
                           environ: Mapping[str, str] | None = None) -> set[str]:
    """AWS credentials any environment may sign with: static ones, the environment variables, and every
    profile of the shared credentials and config files (read as files: no credential provider runs, so no
    network call). Credentials resolved later (assume-role, SSO) are masked by their header in botocore's
    log instead."""
    environ = os.environ if environ is None else environ
    found = [v for env in environments for v in (env.aws.static_credentials or ())]
    found += [environ.get(var, "") for var in AWS_CREDENTIAL_VARS]
    for var, default in (("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"), ("AWS_CONFIG_FILE", "~/.aws/config")):
        parser = configparser.RawConfigParser(strict=False)
        try:
            parser.read(os.path.expanduser(environ.get(var) or default), encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in parser.sections():
            found += [parser.get(section, k, fallback="") for k in AWS_CREDENTIAL_KEYS]
    return {v.strip() for v in found if len(v.strip()) >= MIN_AWS_CREDENTIAL_CHARS}


# --------------------------------------------------------------------------------------------------
# logging


LOG_FACTORY_KEY = pytest.StashKey[Any]()


def redact_record(record: logging.LogRecord, secrets: frozenset[str]) -> None:
    """The message, the exception text and the stack of ``record``, redacted (formatters use a record's
    ``exc_text`` when it is set, so the exception is shown as usual, without the secret)."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: logging reports it when a handler formats the record, as usual
        message = None
    if message is not None:
        clean = redact(message, secrets)
        if clean != message:
            record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        clean = redact(text, secrets)
        if clean != text:
            record.exc_text = clean
    elif record.exc_text:
        record.exc_text = redact(record.exc_text, secrets)
    if record.stack_info:
        record.stack_info = redact(record.stack_info, secrets)


def redact_logging(config: pytest.Config, run: GateRun) -> None:
    """Every log record is redacted as it is made, before any handler (pytest's capture, live logs,
    ``--log-file``, a user's own) sees it."""
    previous = logging.getLogRecordFactory()
    config.stash[LOG_FACTORY_KEY] = previous

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact_record(record, run.secrets)
        return record

    logging.setLogRecordFactory(factory)


def restore_logging(config: pytest.Config) -> None:
    factory = config.stash.get(LOG_FACTORY_KEY, None)
    if factory is not None:
        logging.setLogRecordFactory(factory)


# --------------------------------------------------------------------------------------------------
# files other reporters write


def redact_file(path: Path, secrets: frozenset[str]) -> None:
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return
    clean = redact(text, secrets)
    if clean != text:
        path.write_text(clean, encoding="utf-8", errors="surrogateescape")


def redact_allure_results(config: pytest.Config, secrets: frozenset[str]) -> None:
    """allure-pytest writes its result files itself: redact them in place once the run is over."""
    allure_dir = getattr(config.option, "allure_report_dir", None)
    if not allure_dir:
        return
    for path in Path(allure_dir).glob("*"):
        if path.is_file():
            redact_file(path, secrets)


def written_files(config: pytest.Config) -> list[Path]:
    """Files pytest's own reporters wrote from values this module may not have seen (a JUnit
    ``record_xml_attribute``, a log file of records made before the run started)."""
    paths = [getattr(config.option, "xmlpath", None), getattr(config.option, "log_file", None)]
    try:
        paths.append(config.getini("log_file"))
    except ValueError:
        pass
    base = Path(config.invocation_params.dir)
    return [base / p for p in paths if p and (base / p).is_file()]


class AllureRedactor:
    """allure-pytest writes a test's result when it ends: the result object is redacted before its file is
    written (the files are redacted again at the end: attachments are copied as they are)."""

    def __init__(self, secrets: Callable[[], frozenset[str]]) -> None:
        self.secrets = secrets

    def _redact(self, value: Any, secrets: frozenset[str], depth: int = 0) -> Any:
        if isinstance(value, str):
            return redact(value, secrets)
        if depth > 50:
            return value
        if isinstance(value, list):
            value[:] = [self._redact(v, secrets, depth + 1) for v in value]
        elif isinstance(value, dict):
            for k in list(value):
                value[k] = self._redact(value[k], secrets, depth + 1)
        elif hasattr(type(value), "__attrs_attrs__"):  # allure's result model
            for attribute in type(value).__attrs_attrs__:
                old = getattr(value, attribute.name, None)
                new = self._redact(old, secrets, depth + 1)
                if new is not old:
                    setattr(value, attribute.name, new)
        return value

    def report_result(self, result: Any) -> None:
        self._redact(result, self.secrets())

    def report_container(self, container: Any) -> None:
        self._redact(container, self.secrets())


# --------------------------------------------------------------------------------------------------
# the plugin


class SecretGuard:
    """Redacts everything pytest and its plugins write, on the controller and on xdist workers."""

    def __init__(self, config: pytest.Config, secrets: Callable[[], frozenset[str]]) -> None:
        self.config = config
        self.secrets = secrets

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Everything the terminal reporter writes (headers, ids, warnings summary, live logs, tracebacks)
        goes through one writer: redact at its last step."""
        self._guard_allure()
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        writer = self.config.get_terminal_writer()
        write_raw = writer.write_raw
        secrets = self.secrets

        def redacting_write_raw(msg: str, *, flush: bool = False) -> None:
            write_raw(redact(msg, secrets()), flush=flush)

        writer.write_raw = redacting_write_raw  # type: ignore[method-assign]

    def _guard_allure(self) -> None:
        if not getattr(self.config.option, "allure_report_dir", None) or "allure_commons" not in sys.modules:
            return
        import allure_commons

        for name in ("report_result", "report_container"):  # marked here: allure is an optional dependency
            allure_commons.hookimpl(tryfirst=True)(getattr(AllureRedactor, name))
        plugin = AllureRedactor(self.secrets)
        allure_commons.plugin_manager.register(plugin)
        self.config.add_cleanup(lambda: allure_commons.plugin_manager.unregister(plugin))

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """A parametrize id can carry a secret; the test id is in every report, the cache and xdist's
        scheduling, so it is redacted once, at its source, after selection (``-k``, ``--deselect``) is
        done. (pytest-xdist rewrites ids the same way for its groups.)"""
        secrets = self.secrets()
        for item in items:
            clean = redact(item.nodeid, secrets)
            if clean != item.nodeid:
                _set_nodeid(item, clean)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        # Registered at configure: around the wrappers of conftests and of this plugin's module, inside
        # those of reporters registered later (allure-pytest reads the report in its wrapper).
        report = yield
        redact_report(report, self.secrets())
        if hasattr(self.config, "workerinput"):
            # an xdist worker checks that a report names its item; where the item's id could not be
            # redacted (another pytest), the controller redacts the report (pytest_runtest_logreport)
            report.nodeid = item.nodeid
        return report

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Any:
        report = yield
        redact_report(report, self.secrets())
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Before any reporter reads it: a report from an xdist worker, or one a plugin changed after it was
        made. (Not on a worker, which checks that the report still names its item.)"""
        if not hasattr(self.config, "workerinput"):
            redact_report(report, self.secrets())

    @pytest.hookimpl(tryfirst=True)
    def pytest_warning_recorded(self, warning_message: Any) -> None:
        """The warnings summary (and xdist, which forwards warnings) show ``str(message)``."""
        secrets = self.secrets()
        message = warning_message.message
        text = str(message)
        clean = redact(text, secrets)
        if clean != text:
            replaced = message
            try:
                replaced = type(message)(clean)
            except Exception:
                pass
            if str(replaced) != clean:
                replaced = UserWarning(clean)
            warning_message.message = replaced
        if isinstance(warning_message.line, str):
            warning_message.line = redact(warning_message.line, secrets)

    @pytest.hookimpl(trylast=True)  # after the last teardowns (the records' safety net) have logged
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        secrets = self.secrets()
        redact_allure_results(config, secrets)
        for path in written_files(config):
            redact_file(path, secrets)
        restore_logging(config)


def _set_nodeid(item: pytest.Item, nodeid: str) -> None:
    """Give ``item`` the id ``nodeid``. pytest keeps it privately: a parsed ``NodeId`` in ``_id`` (pytest 9),
    a string in ``_nodeid`` before; an unknown layout leaves the id (the reports are redacted anyway)."""
    current = getattr(item, "_id", None)
    try:
        if current is not None and hasattr(type(current), "parse"):
            item._id = type(current).parse(nodeid)  # type: ignore[attr-defined]
        elif isinstance(getattr(item, "_nodeid", None), str):
            item._nodeid = nodeid  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        pass


def guard(config: pytest.Config, run: GateRun) -> None:
    """Redact everything this run writes (see :class:`SecretGuard`)."""
    redact_logging(config, run)
    config.pluginmanager.register(SecretGuard(config, lambda: run.secrets), "deploygate-secrets")


__all__ = ["MASK", "Redactor", "SecretGuard", "aws_credential_secrets", "guard", "redact",
           "redact_report", "redact_value"]
