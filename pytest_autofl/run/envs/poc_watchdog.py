"""``python -m pytest_autofl.run.envs.poc_watchdog PARENT_PID ROOT``: when PARENT_PID (pytest) is gone, stop
the POC deployment under ROOT that it left running."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from pytest_autofl.run.envs.poc import PocDeployment, kill_leftovers


def _watch(parent: int, root: Path) -> None:
    """The watchdog: when ``parent`` (pytest) is gone, stop the deployment it left running."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is pytest's to handle; it stops us after cleanup
    while os.getppid() == parent:
        time.sleep(1.0)
    with contextlib.suppress(Exception):
        PocDeployment(root, 0)._nvflare("stop")
    kill_leftovers(root, grace=15.0)


if __name__ == "__main__":
    _watch(int(sys.argv[1]), Path(sys.argv[2]))
