"""Reading a deployed frontend (pure, fast): the values of a generated ``config.js`` (object literal or JSON),
the assets an HTML page references, and the page and ``config.js`` addresses an environment's configuration
gives. No server."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_deploygate.config import Environment, load_project
from pytest_deploygate.frontend import asset_refs, config_js_url, page_url, parse_config_js


def test_config_js_as_an_object_literal() -> None:
    text = """window.APP_CONFIG = {
      apiEndpoint: 'https://api.example.com/prod',
      "region": "eu-west-1",
      'stage': 'prod',
      retries: 3, ratio: -0.5, debug: false,
      empty: '',
    };"""
    assert parse_config_js(text) == {"apiEndpoint": "https://api.example.com/prod", "region": "eu-west-1",
                                     "stage": "prod", "retries": "3", "ratio": "-0.5", "debug": "false", "empty": ""}


def test_config_js_as_json_and_the_first_value_of_a_key_wins() -> None:
    text = 'window.CONFIG = {"stage": "staging", "apiEndpoint": "http://127.0.0.1:1/"}; CONFIG.stage = "x";\n' \
           'var other = {stage: "dev"};'
    assert parse_config_js(text) == {"stage": "staging", "apiEndpoint": "http://127.0.0.1:1/"}


def test_config_js_without_values() -> None:
    assert parse_config_js("") == {}
    assert parse_config_js("console.log('no config here');") == {}
    assert parse_config_js("x = {nested: {a: 1}}") == {"a": "1"}  # the value pair inside is still read


def test_the_assets_a_page_references_in_order_without_repeats() -> None:
    html = """<!doctype html><html><head>
      <link rel="stylesheet" href="/app.css"><link rel="ICON" href="/favicon.ico">
      <link rel="preconnect" href="https://cdn.example"><link rel="canonical" href="/home">
      <link rel="modulepreload" href="/chunk.js"><link rel="manifest" href="/site.webmanifest">
      <script src="config.js"></script><script>inline()</script>
    </head><body>
      <img src="/logo.png"><img alt="no source"><iframe src="/embed.html"></iframe>
      <video><source src="/intro.mp4"></video><a href="/about">about</a>
      <script src="config.js"></script>
    </body></html>"""
    assert asset_refs(html) == ["/app.css", "/favicon.ico", "/chunk.js", "/site.webmanifest", "config.js",
                                "/logo.png", "/embed.html", "/intro.mp4"]


def test_a_page_without_assets() -> None:
    assert asset_refs("<html><body><p>maintenance</p></body></html>") == []
    assert asset_refs("") == []


def _env(tmp_path: Path, frontend_url: str, frontend: str) -> Environment:
    (tmp_path / "deploygate.toml").write_text(
        f'[environments.x]\nbase_url = "http://127.0.0.1:1"\nfrontend_url = "{frontend_url}"\n'
        f"[environments.x.smoke.frontend]\n{frontend}\n")
    return load_project(tmp_path / "deploygate.toml").environment("x")


@pytest.mark.parametrize(("frontend_url", "frontend", "page", "config_js"), [
    ("https://app.example.com/", 'config_js = "config.js"', "https://app.example.com/",
     "https://app.example.com/config.js"),
    ("https://app.example.com/", 'page = "app/index.html"\nconfig_js = "config.js"',
     "https://app.example.com/app/index.html", "https://app.example.com/app/config.js"),
    ("https://app.example.com/site/", 'page = "index.html"\nconfig_js = "/static/config.js"',
     "https://app.example.com/site/index.html", "https://app.example.com/static/config.js"),
    ("https://app.example.com/", 'config_js = ""', "https://app.example.com/", None),
])
def test_page_and_config_js_addresses(tmp_path: Path, frontend_url: str, frontend: str, page: str,
                                      config_js: str | None) -> None:
    env = _env(tmp_path, frontend_url, frontend)
    assert page_url(env) == page
    assert config_js_url(env) == config_js


def test_no_config_js_without_a_frontend(tmp_path: Path) -> None:
    (tmp_path / "deploygate.toml").write_text('[environments.x]\nbase_url = "http://127.0.0.1:1"\n')
    env = load_project(tmp_path / "deploygate.toml").environment("x")
    assert config_js_url(env) is None
