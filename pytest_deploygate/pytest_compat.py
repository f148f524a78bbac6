"""The two workarounds that reach into pytest's private state, kept small and tested here
(tests/test_unit_pytest_compat.py); and a read of pytest's ``-m`` expression parser
(:func:`mark_expression_selects`), for a hint only.

On CPython 3.11+ a signal that lands on an instruction without a source line leaves ``tb_lineno`` None in
the traceback, and pytest's own report of the KeyboardInterrupt then crashes (``None - 1``): the run would
end in a traceback, exit 1, without its "interrupted" status. :func:`numbered` rebuilds such a traceback
with a line number on every entry; :func:`fix_interrupt_traceback` puts it into the ``ExceptionInfo``
pytest is about to report (``ExceptionInfo`` has no public way to replace its traceback).

Installed from a wheel, pytest marks the whole ``pytest_deploygate`` package for assertion rewriting (as it does
for every distribution that declares a ``pytest11`` entry point): every module of it that pytest's import hook
sees is read from source, rewritten and compiled, never loaded from the ``.pyc`` the install wrote — in every
run when no bytecode cache can be written (``PYTHONDONTWRITEBYTECODE``, a read-only site-packages).
:func:`stop_rewriting_plugin` narrows that mark, once the plugin's hooks are loaded, to the built-in suites
(``pytest_deploygate.suites``: test files, whose asserts pytest explains); the product modules import from their
``.pyc``. Their asserts are internal invariants, not checks a user reads.

PYTEST_DONT_REWRITE (this module is imported while the mark still holds: pytest skips its assertion pass)."""

from __future__ import annotations

import types
from collections.abc import Collection

import pytest


def numbered(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The same traceback with a line number on every entry (an entry without one gets its frame's first
    line); the traceback itself when every entry has one."""
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    if all(e.tb_lineno is not None for e in entries):
        return entries[0] if entries else None
    rebuilt: types.TracebackType | None = None
    for e in reversed(entries):
        if e.tb_lineno is None:  # no instruction offset (-1): formatters then use the line number given
            rebuilt = types.TracebackType(rebuilt, e.tb_frame, -1, e.tb_frame.f_code.co_firstlineno)
        else:
            rebuilt = types.TracebackType(rebuilt, e.tb_frame, e.tb_lasti, e.tb_lineno)
    return rebuilt


def fix_interrupt_traceback(excinfo: pytest.ExceptionInfo[BaseException]) -> bool:
    """Give every entry of ``excinfo``'s traceback a line number; returns whether anything changed.
    Private fields of pytest's ``ExceptionInfo`` (``_excinfo``, ``_traceback``): if a pytest release
    renames them this does nothing, and the interrupt is still recorded by the session."""
    raw = getattr(excinfo, "_excinfo", None)
    if raw is None or raw[2] is None:
        return False
    tb = numbered(raw[2])
    if tb is raw[2]:
        return False
    excinfo._excinfo = (raw[0], raw[1].with_traceback(tb), tb)  # type: ignore[assignment]
    excinfo._traceback = None
    return True


def mark_expression_selects(expression: str, names: Collection[str]) -> bool | None:
    """Whether ``-m expression`` selects a test whose markers are ``names`` (none with keyword arguments), as
    pytest will decide at collection; None when this cannot tell (an expression pytest rejects, or a pytest
    release that moved its expression parser, ``_pytest.mark.expression``). A hint for work started ahead of
    collection, never a selection: pytest still deselects by its own rule."""
    try:
        from _pytest.mark.expression import Expression

        def matcher(name: str, /, **kwargs: object) -> bool:
            return name in names and not kwargs

        return bool(Expression.compile(expression).evaluate(matcher))  # type: ignore[arg-type,unused-ignore]
    except Exception:
        return None


#: the package pytest marks for rewriting, and what of it must stay marked: the built-in suites (test files)
PACKAGE = "pytest_deploygate"
SUITES = "pytest_deploygate.suites"


def stop_rewriting_plugin(pluginmanager: pytest.PytestPluginManager) -> bool:
    """Narrow pytest's assertion-rewriting mark on this package (``pytest_deploygate``, set by pytest for a
    wheel install) to its built-in suites; returns whether it did. Private state of pytest's import hook
    (``_pytest.assertion.rewrite.AssertionRewritingHook``: ``_must_rewrite``, the set of marked names, and
    ``_marked_for_rewrite_cache``, its memo): if a pytest release renames them, or the package is not marked
    (an editable install, ``--assert=plain``, plugin autoload off), this does nothing and the package is simply
    rewritten as pytest decides. Other names stay as they are: ``pytest.register_assert_rewrite`` of a user's
    module, conftest files and test files are untouched; a module of this package named by
    ``register_assert_rewrite`` or in ``pytest_plugins`` is marked by its own name and still rewritten."""
    hook = getattr(pluginmanager, "rewrite_hook", None)
    marked = getattr(hook, "_must_rewrite", None)
    memo = getattr(hook, "_marked_for_rewrite_cache", None)
    if not isinstance(marked, set) or not isinstance(memo, dict) or PACKAGE not in marked:
        return False
    marked.discard(PACKAGE)
    marked.add(SUITES)
    memo.clear()
    return True


__all__ = ["fix_interrupt_traceback", "mark_expression_selects", "numbered", "stop_rewriting_plugin"]
