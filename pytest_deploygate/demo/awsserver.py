"""One environment's emulated AWS account: a moto server on a free loopback port.

``python -m pytest_deploygate.demo.awsserver --account 222222222222 --ready-file F --parent-pid P``
"""

from __future__ import annotations

import argparse
import os

from .process import announce, exit_with_parent, wait_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--account", required=True)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(argv)
    exit_with_parent(args.parent_pid)
    # moto reads the account id of every request from this variable: one account per process.
    os.environ["MOTO_ACCOUNT_ID"] = args.account
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer("127.0.0.1", 0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    announce(args.ready_file, port=port, url=f"http://127.0.0.1:{port}", account=args.account)
    wait_forever()


if __name__ == "__main__":
    main()
