"""A local API Gateway: turns HTTP requests into proxy events for the service's handler.

``python -m pytest_deploygate.demo.apigw --ready-file F --parent-pid P`` (configured through the
service's environment variables, as a Lambda is).
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from .process import announce, exit_with_parent
from .service import Service


def make_handler(service: Service) -> type[BaseHTTPRequestHandler]:
    class ProxyHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body leave in two writes: with Nagle on, the body waits for the client's delayed ACK
        # (40 ms on Linux) on every keep-alive request after the first
        disable_nagle_algorithm = True

        def version_string(self) -> str:  # no server/framework version on the wire
            return "aipm-api"

        def _proxy(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace") if length else None
            query = dict(parse_qsl(split.query)) or None
            event = {
                "resource": "/{proxy+}",
                "path": split.path,
                "httpMethod": self.command,
                "headers": dict(self.headers.items()),
                "queryStringParameters": query,
                "pathParameters": {"proxy": split.path.lstrip("/")},
                "requestContext": {"stage": service.stage, "requestId": str(uuid.uuid4()),
                                   "httpMethod": self.command, "path": split.path},
                "body": body,
                "isBase64Encoded": False,
            }
            result = service.handler(event, None)
            payload = (result.get("body") or "").encode("utf-8")
            self.send_response(int(result.get("statusCode", 500)))
            for key, value in (result.get("headers") or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _proxy

        def log_message(self, format: str, *args: object) -> None:
            pass  # the access log would only fill the demo's log files under load

    return ProxyHandler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(argv)
    exit_with_parent(args.parent_pid)
    service = Service()
    service.warm_clients()
    service.start_ttl_sweeper(float(os.environ.get("DEMO_TTL_SWEEP_S", "5")))
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(service))
    server.daemon_threads = True
    port = server.server_address[1]
    announce(args.ready_file, port=port, url=f"http://127.0.0.1:{port}")
    print(json.dumps({"stage": service.stage, "port": port}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
