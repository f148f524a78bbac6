"""A local OSV-compatible vulnerability service (``POST /v1/query``, ``GET /v1/vulns/{id}``) serving real
advisories (PYSEC-2018-28 for requests < 2.20.0, PYSEC-2019-217 for jinja2 < 2.10.1; and those of the pip
23.2.1 and setuptools 65.5.0 a fresh venv bundles, for the project's self-audit: PYSEC-2023-228,
GHSA-4xh5-x5gv-qwph, PYSEC-2022-43012, GHSA-cx63-2mw6-8hw5, GHSA-5rjg-fvgr-3xxf), so the dependency audit
runs offline with pip-audit's own ``--osv-url``.

``python -m pytest_deploygate.demo.osv --ready-file F --parent-pid P [--advisories FILE]``
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .process import announce, exit_with_parent

ADVISORIES = Path(__file__).with_name("advisories.json")


def affects(vuln: dict[str, Any], name: str, version: str) -> bool:
    try:
        v = Version(version)
    except InvalidVersion:
        return False
    for affected in vuln.get("affected", []):
        pkg = affected.get("package", {})
        if pkg.get("ecosystem") != "PyPI" or canonicalize_name(pkg.get("name", "")) != canonicalize_name(name):
            continue
        if version in affected.get("versions", []):
            return True
        for rng in affected.get("ranges", []):
            if rng.get("type") != "ECOSYSTEM":
                continue
            inside = False
            for event in rng.get("events", []):
                if "introduced" in event:
                    inside = event["introduced"] == "0" or v >= Version(event["introduced"])
                elif "fixed" in event and inside and v >= Version(event["fixed"]):
                    inside = False
            if inside:
                return True
    return False


def make_handler(vulns: list[dict[str, Any]]) -> type[BaseHTTPRequestHandler]:
    by_id = {v["id"]: v for v in vulns}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/query":
                self._send(404, {"message": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                query = json.loads(self.rfile.read(length) or b"{}")
                name, version = query["package"]["name"], query["version"]
            except (ValueError, KeyError, TypeError):
                self._send(400, {"message": "expected {package: {name, ecosystem}, version}"})
                return
            found = [v for v in vulns if affects(v, name, version)]
            self._send(200, {"vulns": found} if found else {})

        def do_GET(self) -> None:
            prefix = "/v1/vulns/"
            if self.path.startswith(prefix) and self.path[len(prefix):] in by_id:
                self._send(200, by_id[self.path[len(prefix):]])
            else:
                self._send(404, {"message": "not found"})

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--advisories", default=str(ADVISORIES))
    args = parser.parse_args(argv)
    exit_with_parent(args.parent_pid)
    vulns = json.loads(Path(args.advisories).read_text())
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(vulns))
    server.daemon_threads = True
    port = server.server_address[1]
    announce(args.ready_file, port=port, url=f"http://127.0.0.1:{port}/v1/query")
    server.serve_forever()


if __name__ == "__main__":
    main()
