"""Run a command as a process tree with a wall-clock cap, and leave no process behind.

NVFlare's simulator starts its own sessions, so a process-group kill leaves orphans. We poll the tree with
psutil while it runs and remember every descendant ever seen; on expiry (or at the end) everything still alive
gets SIGINT (NVFlare cleans up on it), a grace period, then SIGKILL. Every tree runs under ``guard``, which
kills it if this process dies first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from pytest_autofl.run.commands import guarded

POLL_SECONDS = 0.25
GRACE_SECONDS = 5.0

# Set when the run must stop (Ctrl-C, SIGTERM) while trees run in worker threads, which never see the signal:
# every ``run_tree`` loop checks it, stops its tree and raises KeyboardInterrupt in its own thread.
STOP = threading.Event()


@dataclass(frozen=True)
class TreeResult:
    returncode: int | None
    timed_out: bool
    seconds: float
    killed: int  # processes still alive when the run ended or timed out, then stopped by us


def _alive(procs: dict[int, psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in procs.values():
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.Error:
            pass
    return out


def _signal_all(procs: list[psutil.Process], sig: int) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def kill_tree(seen: dict[int, psutil.Process], grace: float = GRACE_SECONDS) -> int:
    """SIGINT every live recorded process, wait ``grace`` seconds, SIGKILL the rest; return how many were alive."""
    alive = _alive(seen)
    if not alive:
        return 0
    _signal_all(alive, signal.SIGINT)
    _, still = psutil.wait_procs(alive, timeout=grace)
    _signal_all(still, signal.SIGKILL)
    psutil.wait_procs(still, timeout=grace)
    return len(alive)


def run_tree(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    timeout: float,
    on_line: Callable[[str], None] | None = None,
    pass_fds: Sequence[int] = (),
) -> TreeResult:
    """Run ``argv`` with stdout+stderr to ``log_path``; call ``on_line`` for each new log line while it runs.
    ``pass_fds`` are handed over to the tree's root (a meter's pipe): closed here once it has them."""
    start = time.monotonic()
    seen: dict[int, psutil.Process] = {}
    with open(log_path, "wb") as log, open(log_path, "rb") as reader:
        proc = subprocess.Popen(
            # The guard kills the tree if this process dies without cleaning up (SIGKILL, a crashed worker).
            guarded(os.getpid(), argv),
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
        for fd in pass_fds:
            os.close(fd)
        root = psutil.Process(proc.pid)
        seen[proc.pid] = root
        pending = b""
        timed_out = False
        try:
            while proc.poll() is None:
                try:
                    for child in root.children(recursive=True):
                        seen.setdefault(child.pid, child)
                except psutil.Error:
                    pass
                pending += reader.read()
                *lines, pending = pending.split(b"\n")
                if on_line:
                    for line in lines:
                        on_line(line.decode("utf-8", "replace"))
                if time.monotonic() - start > timeout:
                    timed_out = True
                    break
                if STOP.wait(POLL_SECONDS):
                    raise KeyboardInterrupt("stopped: the run was interrupted")
        finally:
            # Reached on success, on timeout and on KeyboardInterrupt alike: nothing may outlive the run.
            killed = kill_tree(seen)
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    return TreeResult(None if timed_out else proc.returncode, timed_out, time.monotonic() - start, killed)


def python_env(extra_paths: Sequence[Path], **overrides: str) -> dict[str, str]:
    """The child's environment: ours, with ``extra_paths`` first on PYTHONPATH and ``overrides`` applied."""
    env = dict(os.environ)
    paths = [str(p) for p in extra_paths] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(overrides)
    return env
