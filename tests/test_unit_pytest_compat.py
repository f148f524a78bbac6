"""The two workarounds on pytest's private state (pytest_deploygate.pytest_compat): a traceback entry
without a line number (a signal landing on an instruction with no source line, CPython 3.11+) gets its
frame's first line, so pytest can report the interruption; pytest's assertion-rewriting mark on the installed
package narrows to the built-in suites (the product modules then load from their .pyc). Pure, fast."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from pytest_deploygate.pytest_compat import fix_interrupt_traceback, numbered


def _interrupt() -> None:
    raise KeyboardInterrupt("SIGINT")


def _traceback() -> types.TracebackType:
    try:
        _interrupt()
    except KeyboardInterrupt:
        tb = sys.exc_info()[2]
        assert tb is not None
        return tb
    raise AssertionError("not reached")


def _entries(tb: types.TracebackType | None) -> list[types.TracebackType]:
    out = []
    while tb is not None:
        out.append(tb)
        tb = tb.tb_next
    return out


def _lineless(tb: types.TracebackType) -> types.TracebackType:
    """``tb`` with its last entry made line-less, as CPython leaves it for an instruction without a line
    (line -1 means "compute it from the instruction offset", and an offset past the code has none)."""
    entries = _entries(tb)
    rebuilt: types.TracebackType | None = None
    for i, e in enumerate(reversed(entries)):
        if i == 0:
            rebuilt = types.TracebackType(rebuilt, e.tb_frame, 10**6, -1)
        else:
            rebuilt = types.TracebackType(rebuilt, e.tb_frame, e.tb_lasti, e.tb_lineno)
    assert rebuilt is not None
    return rebuilt


def test_a_traceback_with_line_numbers_is_returned_as_it_is() -> None:
    tb = _traceback()
    assert numbered(tb) is tb
    assert numbered(None) is None


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tb_lineno is None only from CPython 3.11")
def test_an_entry_without_a_line_gets_its_frames_first_line() -> None:
    tb = _lineless(_traceback())
    assert _entries(tb)[-1].tb_lineno is None  # the state pytest's report crashes on
    fixed = numbered(tb)
    last = _entries(fixed)[-1]
    assert last.tb_lineno == _interrupt.__code__.co_firstlineno
    assert [e.tb_frame for e in _entries(fixed)] == [e.tb_frame for e in _entries(tb)]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tb_lineno is None only from CPython 3.11")
def test_the_exception_info_pytest_reports_is_fixed_in_place() -> None:
    tb = _lineless(_traceback())
    exc = KeyboardInterrupt("SIGINT").with_traceback(tb)
    info = pytest.ExceptionInfo.from_exception(exc)
    assert fix_interrupt_traceback(info) is True
    assert all(e.lineno is not None for e in info.traceback)  # pytest's own view of it now has lines
    assert "KeyboardInterrupt" in str(info.getrepr())
    assert fix_interrupt_traceback(info) is False  # nothing left to fix


def test_a_mark_expression_is_matched_as_pytest_will_before_collection() -> None:
    """The hint that starts Locust ahead of collection (only when ``-m`` selects the load test): pytest's own
    expression language; None (no hint) for what pytest rejects."""
    from pytest_deploygate.pytest_compat import mark_expression_selects

    marks = {"gate", "performance", "xdist_group"}
    for expression in ("performance", "gate and performance", "gate and (performance or smoke)", "not smoke",
                       "performance and not destructive"):
        assert mark_expression_selects(expression, marks) is True, expression
    for expression in ("smoke", "not performance", "smoke or crud", "xdist_group(name='other')"):
        assert mark_expression_selects(expression, marks) is False, expression
    assert mark_expression_selects("performance and (", marks) is None


def test_the_plugins_rewrite_mark_narrows_to_the_built_in_suites(
        request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wheel install: pytest marks the whole package for assertion rewriting (``mark_rewrite``, as its
    ``_mark_plugins_for_rewrite`` does for a ``pytest11`` distribution). Narrowed, pytest's own import hook
    leaves the product modules to the normal import (their .pyc) and still rewrites the built-in suites and any
    other marked name. Fails if a pytest release moves the state this reaches into (the workaround then does
    nothing: start-up is slower without a bytecode cache, nothing else changes)."""
    from _pytest.assertion.rewrite import AssertionRewritingHook, assertstate_key

    from pytest_deploygate.pytest_compat import stop_rewriting_plugin

    if assertstate_key not in request.config.stash:
        pytest.skip("this run does not rewrite asserts (--assert=plain)")
    package = tmp_path / "pytest_deploygate"
    (package / "suites").mkdir(parents=True)
    (package / "sections.py").write_text("X = 1\n")
    (package / "suites" / "helpers.py").write_text("def same(a, b):\n    assert a == b\n")
    (tmp_path / "userlib.py").write_text("def same(a, b):\n    assert a == b\n")
    hook = AssertionRewritingHook(request.config)
    with monkeypatch.context() as m:  # marking an imported module warns; this package is imported here
        m.delitem(sys.modules, "pytest_deploygate")
        hook.mark_rewrite("pytest_deploygate", "userlib")

    def rewritten(name: str, where: Path) -> bool:
        spec = hook.find_spec(name, [str(where)])
        return spec is not None and spec.loader is hook

    assert rewritten("pytest_deploygate.sections", package)  # what pytest does to a wheel install
    manager = types.SimpleNamespace(rewrite_hook=hook)
    assert stop_rewriting_plugin(manager) is True  # type: ignore[arg-type]
    assert not rewritten("pytest_deploygate.sections", package)
    assert rewritten("pytest_deploygate.suites.helpers", package / "suites")
    assert rewritten("userlib", tmp_path)  # pytest.register_assert_rewrite of a user's module
    assert stop_rewriting_plugin(manager) is False  # type: ignore[arg-type]  # once: the package is no longer marked
    assert stop_rewriting_plugin(types.SimpleNamespace()) is False  # type: ignore[arg-type]
