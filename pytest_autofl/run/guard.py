"""``python -m pytest_autofl.run.guard PARENT_PID [NAME=LIMIT ...] -- ARGV...``: run ARGV and, if PARENT_PID dies
first (pytest or an xdist worker killed with SIGKILL, a crash), kill every process ARGV started, then exit.

``processes.run_tree`` starts every tree through this guard, which first sets the tree's resource limits
(``AS=bytes``: a process' address space, ``FSIZE=bytes``: a file's size; the kernel's backstop for what
``run_tree`` measures). The tree's normal end, its wall-clock cap, its limits and Ctrl-C are handled by
``run_tree`` in the parent; the guard only covers the case where that parent is gone.
NVFlare's simulator starts its workers in new sessions, so descendants are tracked by walking the tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import subprocess
import sys

import psutil

POLL_SECONDS = 0.5


def _ignore(signum: int, frame: object) -> None:
    """SIGINT is for the tree (NVFlare cleans up on it); the guard waits for its child to exit. A handler,
    not SIG_IGN, so the child does not inherit the ignore."""


def _subreaper() -> None:
    """Orphaned descendants are reparented to the guard, not to init: nothing the tree forks escapes the walk
    that stops it (Linux ``PR_SET_CHILD_SUBREAPER``; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)


def main() -> int:
    split = sys.argv.index("--")
    parent, argv = int(sys.argv[1]), sys.argv[split + 1 :]
    for limit in sys.argv[2:split]:  # NAME=value: a hard limit for every process of the tree
        name, value = limit.split("=")
        resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (int(value), int(value)))
    signal.signal(signal.SIGINT, _ignore)
    _subreaper()
    child = subprocess.Popen(argv, close_fds=False)  # what the harness passed on (a meter's pipe) goes on
    me = psutil.Process()
    while True:
        try:
            child.wait(timeout=POLL_SECONDS)  # returns the moment it exits
            break
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:  # reparented: whoever ran us is dead
                _kill_all(me)
                return 137
    _kill_all(me)  # what the tree left behind (orphans are ours: subreaper)
    return child.returncode


def _kill_all(me: psutil.Process) -> None:
    """SIGKILL every descendant, again until none is left (one may fork while we walk)."""
    for _ in range(50):
        rest: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            rest = me.children(recursive=True)
        if not rest:
            return
        for proc in rest:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(rest, timeout=5)


if __name__ == "__main__":
    sys.exit(main())
