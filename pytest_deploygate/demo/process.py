"""What every reference-deployment server process does: announce its port through a ready file,
and exit on SIGTERM or as soon as the process that started it is gone (no orphans)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any


def announce(ready_file: str, **info: Any) -> None:
    """Write ``info`` (with this pid) to ``ready_file`` atomically."""
    path = Path(ready_file)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), **info}))
    tmp.replace(path)


def exit_with_parent(parent_pid: int) -> None:
    """Exit at once on SIGTERM/SIGINT, and when ``parent_pid`` stops existing."""

    def stop(signum: int, frame: object) -> None:
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def wait_forever() -> None:
    while True:
        time.sleep(3600)
