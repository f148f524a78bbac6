"""One environment's emulated AWS account: a moto server on a free loopback port.

``python -m pytest_deploygate.demo.awsserver --account 222222222222 --ready-file F --parent-pid P [--fd N]``
(``--fd``: serve on that listening socket, made by the launcher, instead of a new one on a free port)

``preload(backends)`` runs in the fork server (``forkserver.py``) before it forks the moto servers: what each
of them would otherwise build anew on its first request of a service — the backend's request routes (a Flask
app per service), botocore's service model that moto parses requests with, the REST routes of REST services
(Lambda), the RSA key every Cognito user pool signs with — is built once there, and the forked servers share
it. The server itself is moto's: its dispatcher application and request handler, served threaded over HTTP.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

from .process import announce, exit_with_parent, wait_forever

#: moto backend name -> botocore service name, where they differ
BOTOCORE_NAMES = {"awslambda": "lambda", "cognitoidp": "cognito-idp"}
#: the backends' Flask apps built by ``preload`` (in the fork server), by backend name
_APPS: dict[str, Any] = {}


def preload(backends: tuple[str, ...]) -> None:
    """Import and build what a moto server needs for ``backends``; no thread is started and no socket opened.

    An unknown backend fails (ImportError); the warm-up past the imports is an optimisation only: a moto
    version without one of the pieces it uses serves the same, building it on the first request."""
    from moto.backends import get_backend
    from moto.moto_server.werkzeug_app import create_backend_app

    with _one_botocore_loader():
        for name in backends:
            get_backend(name)  # type: ignore[call-overload]
            _APPS[name] = create_backend_app(name)  # type: ignore[arg-type]  # the service's URL map
    _warm_models(tuple(BOTOCORE_NAMES.get(name, name) for name in backends))
    if "cognitoidp" in backends:
        _share_pool_key()


def _warm_models(services: tuple[str, ...]) -> None:
    """moto's parsed botocore model of each service and, for a REST service, its routes (Lambda's ~70 ms):
    cached per process by moto, built on a server's first request of the service otherwise. moto creates a
    data loader for each model, which scans botocore's data directory anew (~20 ms): here one loader serves
    them all (the same files are read)."""
    try:
        import moto.core.utils as moto_utils
        from moto.core.loaders import create_loader
        from moto.core.routing import get_service_router
    except ImportError:  # another moto: built on first use
        return
    original = moto_utils.create_loader
    shared = create_loader()
    moto_utils.create_loader = lambda: shared  # type: ignore[assignment]
    try:
        for service in services:
            try:
                model = moto_utils.get_service_model(service)
                if model.protocol.startswith("rest-"):
                    get_service_router(service)._get_router(model.protocol)
            except Exception:  # not a service moto parses this way: built on first use
                continue
    finally:
        moto_utils.create_loader = original  # type: ignore[assignment]


def _share_pool_key() -> None:
    """moto gives every Cognito user pool the same RSA key (its ``cognitoidp/resources/jwks-private.json``) and
    imports it anew for each pool, recovering the key's primes in pure Python: 0.1-0.27 CPU-s per pool, the
    dearest call of a launch. The key is imported here once; an import of that same key (and only of it)
    returns this object. The pools' keys, tokens and JWKS are the same as moto's own."""
    try:
        from joserfc import jwk
        from moto.utilities.utils import load_resource

        moto_key = load_resource("cognitoidp/resources/jwks-private.json")
        key = jwk.RSAKey.import_key(moto_key)
        import_key = jwk.RSAKey.import_key
    except Exception:  # another moto or joserfc: each pool imports its key
        return

    def shared_import_key(value: Any, *args: Any, **kwargs: Any) -> Any:
        if value == moto_key and not args and not kwargs:
            return key
        return import_key(value, *args, **kwargs)

    jwk.RSAKey.import_key = shared_import_key  # type: ignore[method-assign,assignment]


@contextlib.contextmanager
def _one_botocore_loader() -> Iterator[None]:
    """While moto's backends import, every new botocore session shares one data loader: moto's EC2 models
    (imported by its SSM backend) build three sessions at import, each parsing botocore's endpoint data
    anew (~0.1 CPU-s each). The data read is the same; only this process's imports see the shared loader."""
    import botocore.loaders
    import botocore.session

    original = getattr(botocore.session, "create_loader", None)
    if original is None:  # another botocore: import as it comes
        yield
        return
    shared = botocore.loaders.create_loader()
    botocore.session.create_loader = lambda *args, **kwargs: shared  # type: ignore[attr-defined]
    try:
        yield
    finally:
        botocore.session.create_loader = original  # type: ignore[attr-defined]


def _backend_app(service: Any) -> Any:
    """The Flask app of ``service``: built by ``preload`` if it ran in this process, else now (moto's own)."""
    app = _APPS.get(service)
    if app is None:
        from moto.moto_server.werkzeug_app import create_backend_app

        app = create_backend_app(service)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--account", required=True)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--fd", type=int, default=None)
    args = parser.parse_args(argv)
    exit_with_parent(args.parent_pid)
    # moto reads the account id of every request from this variable: one account per process.
    os.environ["MOTO_ACCOUNT_ID"] = args.account
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler
    from werkzeug.serving import make_server

    # what moto's ThreadedMotoServer does, with the apps preload built
    server = make_server("127.0.0.1", 0, DomainDispatcherApplication(_backend_app), threaded=True,
                         request_handler=MotoRequestHandler, fd=args.fd)
    if args.fd is not None:
        os.close(args.fd)  # the server serves a duplicate of it
    threading.Thread(target=server.serve_forever, name="moto-server", daemon=True).start()
    port = server.server_address[1]
    announce(args.ready_file, port=port, url=f"http://127.0.0.1:{port}", account=args.account)
    wait_forever()


if __name__ == "__main__":
    main()
