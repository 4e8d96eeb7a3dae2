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

from pytest_autofl.core.contract import Limits
from pytest_autofl.run.commands import guarded, interpreter_path

POLL_SECONDS = 0.25
GRACE_SECONDS = 5.0

# Set when the run must stop (Ctrl-C, SIGTERM) while trees run in worker threads, which never see the signal:
# every ``run_tree`` loop checks it, stops its tree and raises KeyboardInterrupt in its own thread.
STOP = threading.Event()


MiB = 1 << 20
MEMORY_EVERY_SECONDS, DISK_EVERY_SECONDS = 1.0, 2.0  # reading every process' smaps, walking a directory
ADDRESS_SPACE_HEADROOM_MB = 4096  # what torch and glibc reserve per process without using it


@dataclass(frozen=True)
class TreeResult:
    returncode: int | None
    timed_out: bool
    seconds: float
    killed: int  # processes still alive when the run ended or timed out, then stopped by us
    exceeded: str | None = None  # the resource limit it went past, and by how much (then stopped)


def exit_text(code: int) -> str:
    """An exit status in words, a signal named: -9 or 137 (128 + 9, as the guard and shells report it) is
    "code 137 (killed by SIGKILL)"."""
    number = -code if code < 0 else code - 128 if code > 128 else 0
    try:
        killed = f" (killed by {signal.Signals(number).name})" if number else ""
    except ValueError:
        killed = ""
    return f"code {code}{killed}"


def rlimits(limits: Limits) -> dict[str, int]:
    """The kernel's per-process backstop of a tree's limits (set by the guard): a runaway process fails its
    allocation or its write at once instead of waiting for the next measurement."""
    return {"AS": (limits.memory_mb + ADDRESS_SPACE_HEADROOM_MB) * MiB, "FSIZE": limits.disk_mb * MiB}


def _size(directory: Path) -> int:
    total, stack = 0, [directory]
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    else:
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
    return total


@dataclass
class Watch:
    """A running tree measured against its limits: processes at every poll, memory (proportional set size:
    pages a prefork zygote shares count once) every second, the disk under ``directory`` every two seconds."""

    limits: Limits
    directory: Path | None = None
    _memory_at: float = 0.0
    _disk_at: float = 0.0

    def exceeded(self, alive: list[psutil.Process], now: float) -> str | None:
        if len(alive) > self.limits.processes:
            return f"process limit exceeded: {len(alive)} processes (limit {self.limits.processes})"
        if now >= self._memory_at:
            self._memory_at = now + MEMORY_EVERY_SECONDS
            used = 0
            for proc in alive:
                with contextlib.suppress(psutil.Error):
                    used += proc.memory_full_info().pss
            if used > self.limits.memory_mb * MiB:
                return f"memory limit exceeded: {used / MiB:.0f} MiB in {len(alive)} processes (limit {self.limits.memory_mb} MiB)"
        if self.directory is not None and now >= self._disk_at:
            self._disk_at = now + DISK_EVERY_SECONDS
            if (used := _size(self.directory)) > self.limits.disk_mb * MiB:
                return f"disk limit exceeded: {used / MiB:.0f} MiB in {self.directory} (limit {self.limits.disk_mb} MiB)"
        return None


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


def _descendants(root: psutil.Process, seen: dict[int, psutil.Process]) -> None:
    with contextlib.suppress(psutil.Error):
        for child in root.children(recursive=True):
            seen.setdefault(child.pid, child)


def kill_tree(seen: dict[int, psutil.Process], root: psutil.Process, grace: float = GRACE_SECONDS) -> int:
    """SIGINT every live recorded process, wait ``grace`` seconds, then SIGKILL what is left, walking the tree
    again until nothing new turns up (a process forked since the last walk: the guard is a subreaper, so
    orphans stay under it); ``root`` (the guard) last. Returns how many were alive."""
    _descendants(root, seen)
    alive = _alive(seen)
    if not alive:
        return 0
    _signal_all(alive, signal.SIGINT)
    psutil.wait_procs(alive, timeout=grace)
    stopped = {p.pid for p in alive}
    for _ in range(50):
        _descendants(root, seen)
        rest = [p for p in _alive(seen) if p.pid != root.pid]
        if not rest:
            break
        stopped |= {p.pid for p in rest}
        _signal_all(rest, signal.SIGKILL)
        psutil.wait_procs(rest, timeout=grace)
    _signal_all(_alive({root.pid: root}), signal.SIGKILL)
    psutil.wait_procs([root], timeout=grace)
    return len(stopped)


def _next_poll(proc: subprocess.Popen[bytes]) -> None:
    """Wait until the next poll, or the moment the tree's root exits; KeyboardInterrupt once stopped."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=POLL_SECONDS)
    if STOP.is_set():
        raise KeyboardInterrupt("stopped: the run was interrupted")


def run_tree(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    timeout: float,
    on_line: Callable[[str], None] | None = None,
    pass_fds: Sequence[int] = (),
    watch: Watch | None = None,
) -> TreeResult:
    """Run ``argv`` with stdout+stderr to ``log_path``; call ``on_line`` for each new log line while it runs.
    ``pass_fds`` go to the tree's root (a meter's pipe), closed here. ``watch``: the limits it is stopped at."""
    start = time.monotonic()
    seen: dict[int, psutil.Process] = {}
    with open(log_path, "wb") as log, open(log_path, "rb") as reader:
        proc = subprocess.Popen(
            # The guard kills the tree if this process dies without cleaning up (SIGKILL, a crashed worker).
            guarded(os.getpid(), argv, rlimits(watch.limits) if watch else None),
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
        timed_out, exceeded = False, None
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
                if watch and (exceeded := watch.exceeded(_alive(seen), time.monotonic())):
                    break
                _next_poll(proc)
        finally:
            # Reached on success, on timeout and on KeyboardInterrupt alike: nothing may outlive the run.
            killed = kill_tree(seen, root)
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    code = None if timed_out or exceeded else proc.returncode
    return TreeResult(code, timed_out, time.monotonic() - start, killed, exceeded)


def python_env(extra_paths: Sequence[Path], **overrides: str) -> dict[str, str]:
    """The child's environment: ours, with ``extra_paths`` first on PYTHONPATH, this interpreter first on
    ``PATH`` (what a client's trainer command runs) and ``overrides`` applied."""
    env = dict(os.environ)
    env["PATH"] = interpreter_path(env.get("PATH", ""))
    paths = [str(p) for p in extra_paths] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(overrides)
    return env
