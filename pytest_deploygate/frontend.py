"""Reading a deployed frontend: the page URL, the assets it references, its generated ``config.js``."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

from .config import Environment

_JS_VALUE = re.compile(r"""["']?([A-Za-z_$][\w$]*)["']?\s*:\s*(?:'([^']*)'|"([^"]*)"|(true|false|-?\d+(?:\.\d+)?))""")


def page_url(env: Environment) -> str:
    spec = env.smoke.frontend
    return urljoin(env.frontend_url, spec.page) if spec and spec.page else env.frontend_url


def config_js_url(env: Environment) -> str | None:
    spec = env.smoke.frontend
    if spec is None or not spec.config_js or not env.frontend_url:
        return None
    return urljoin(page_url(env), spec.config_js)


def parse_config_js(text: str) -> dict[str, str]:
    """``key: 'value'`` pairs of a generated ``config.js`` (object literal or JSON)."""
    values: dict[str, str] = {}
    for m in _JS_VALUE.finditer(text):
        values.setdefault(m.group(1), next(g for g in m.groups()[1:] if g is not None))
    return values


def fetch_config_js(client: Any, env: Environment) -> tuple[str, dict[str, str]] | None:
    """``(url, values)`` of the environment's ``config.js`` fetched through ``client``; None when the
    environment declares none; a CheckFailure when it does not load."""
    from .http import CheckFailure

    url = config_js_url(env)
    if url is None:
        return None
    response = client.get(url)
    if response.status_code != 200:
        raise CheckFailure(f"config.js of {env.name}: GET {url} answered {response.status_code}")
    return url, parse_config_js(response.text)


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source") and a.get("src"):
            self.refs.append(str(a["src"]))
        elif tag == "link" and a.get("href") and (a.get("rel") or "").lower() in (
                "stylesheet", "icon", "preload", "modulepreload", "manifest"):
            self.refs.append(str(a["href"]))


def asset_refs(html: str) -> list[str]:
    """Scripts, stylesheets, icons and images an HTML page references, in order, without repeats."""
    parser = _Assets()
    parser.feed(html)
    return list(dict.fromkeys(parser.refs))
