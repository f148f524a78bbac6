"""What the write guard takes for a read although it is sent as a POST (issue 12): a GraphQL *query*.

A GraphQL mutation or subscription can only be written with the keyword ``mutation`` or ``subscription``
before its selection set (a document without an operation keyword, ``{ … }``, is a query). So a document in
which neither word occurs as a word, anywhere (names, strings and comments included), holds no mutation: the
rule may refuse a query that merely mentions the word, never let a mutation through. No GraphQL parser is
needed, and the rule is the same wherever it is applied (the configuration, the transport). Pure; no
third-party import.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["graphql_query_body", "writes_in_graphql"]

#: the operation keywords that change or stream state (GraphQL names are [_A-Za-z][_0-9A-Za-z]*, so a word
#: boundary is a name boundary; any case, to be safe with lenient servers)
_WRITE_WORDS = re.compile(r"(?<![_0-9A-Za-z])(mutation|subscription)(?![_0-9A-Za-z])", re.IGNORECASE)


def writes_in_graphql(document: str) -> str | None:
    """The word that makes ``document`` possibly not a read (``mutation``/``subscription``), else None."""
    m = _WRITE_WORDS.search(document)
    return m.group(1) if m else None


def _query_only(payload: Any) -> bool:
    if not isinstance(payload, dict):
        return False
    query = payload.get("query")
    return isinstance(query, str) and bool(query.strip()) and writes_in_graphql(query) is None


def graphql_query_body(body: Any) -> bool:
    """True when ``body`` (a request body: bytes or str) is a GraphQL-over-HTTP JSON request whose every
    operation is a query: ``{"query": "…", "variables": …}``, or a batch (a JSON array) of them. Anything
    else (no JSON, a persisted-query hash without its text, a stream, a mutation anywhere) is False."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return False
    if not isinstance(body, str):
        return False
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    if isinstance(payload, list):
        return bool(payload) and all(_query_only(p) for p in payload)
    return _query_only(payload)
