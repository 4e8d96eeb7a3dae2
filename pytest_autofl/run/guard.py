"""``python -m pytest_autofl.run.guard PARENT_PID -- ARGV...``: run ARGV and, if PARENT_PID dies first (pytest or
an xdist worker killed with SIGKILL, a crash), kill every process ARGV started, then exit.

``processes.run_tree`` starts every tree through this guard. The tree's normal end, its wall-clock cap and
Ctrl-C are handled by ``run_tree`` in the parent; the guard only covers the case where that parent is gone.
NVFlare's simulator starts its workers in new sessions, so descendants are tracked by walking the tree.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil

POLL_SECONDS = 0.5


def _ignore(signum: int, frame: object) -> None:
    """SIGINT is for the tree (NVFlare cleans up on it); the guard waits for its child to exit. A handler,
    not SIG_IGN, so the child does not inherit the ignore."""


def main() -> int:
    parent, argv = int(sys.argv[1]), sys.argv[3:]
    signal.signal(signal.SIGINT, _ignore)
    child = subprocess.Popen(argv, close_fds=False)  # what the harness passed on (a meter's pipe) goes on
    root = psutil.Process(child.pid)
    seen: dict[int, psutil.Process] = {child.pid: root}
    while child.poll() is None:
        with contextlib.suppress(psutil.Error):
            for proc in root.children(recursive=True):
                seen.setdefault(proc.pid, proc)
        if os.getppid() != parent:  # reparented: whoever ran us is dead
            for proc in seen.values():
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(list(seen.values()), timeout=5)
            return 137
        time.sleep(POLL_SECONDS)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
