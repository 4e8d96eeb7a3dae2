"""Load for real, for the load test and ``benchmarks/under_load.py``: busy-loop processes beside a search, and
FLARE's own processes stopped with SIGSTOP (what a starved process looks like to its peers)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

STOP_SECONDS = 8.0  # longer than FLARE's default task-check and submission timeouts (5 s)


def _spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def busy(per_core: int = 3) -> Iterator[None]:
    """Busy-loop processes, ``per_core`` for each core, for as long as the block runs."""
    spinners = [
        multiprocessing.Process(target=_spin, daemon=True) for _ in range(per_core * (os.cpu_count() or 1))
    ]
    for p in spinners:
        p.start()
    try:
        yield
    finally:
        for p in spinners:
            p.kill()
            p.join()


class Stopper(threading.Thread):
    """Watches the seed runs under ``root``: stops the processes of ``targets`` in turn, each in the next seed
    run as soon as its site-1 has a task, for ``STOP_SECONDS``: by default the first run's site-1 worker (at its
    first task), then the second run's server (while its clients check in their results)."""

    def __init__(self, root: Path, targets: tuple[str, ...] = ("site-1", "server")):
        super().__init__(daemon=True)
        self.root, self.targets, self.done = root, list(targets), threading.Event()
        self.stopped: list[tuple[str, str, int]] = []  # (seed directory, whose process, pid)

    def _holders(self, log: Path) -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if any(f.path == str(log) for f in proc.open_files()):
                    found.append(proc)
        return found

    def _suspend(self, run: Path, whose: str, procs: list[psutil.Process]) -> bool:
        procs = procs or self._holders(run / "ws" / "trial" / whose / "log.txt")
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.suspend()
                self.stopped.append((run.name, whose, proc.pid))
        if procs:
            time.sleep(STOP_SECONDS)
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.resume()
        return bool(procs)

    def run(self) -> None:
        # The target's processes are found as soon as its log is open, not when site-1 has its task: on a loaded
        # machine the search through every process' open files takes longer than site-1's task, and the stop
        # would come after the moment it is meant to hit.
        targets, seen = self.targets, set()
        found: dict[Path, list[psutil.Process]] = {}
        while targets and not self.done.is_set():
            for log in self.root.rglob(f"seed-*/ws/trial/{targets[0]}/log.txt"):
                run = log.parents[3]
                if run not in seen and not found.get(run):
                    found[run] = self._holders(log)
            for log in self.root.rglob("seed-*/ws/trial/site-1/log.txt"):
                run = log.parents[3]
                if run in seen or "got task assignment" not in log.read_text(errors="replace"):
                    continue
                seen.add(run)
                if self._suspend(run, targets[0], found.pop(run, [])):
                    targets.pop(0)
                    found.clear()
                break
            time.sleep(0.1)
