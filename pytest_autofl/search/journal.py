"""How the pytest-xdist workers of one search share it: an append-only journal of reservations (a proposed
candidate, confirmation seeds) and finished verdict rows, read and extended under a file lock.

Each worker proposes under the lock, from the ledger's earlier rows plus everything in the journal, so no two
workers ever run the same candidate, and every verdict is taken against the newest incumbent any worker has
found. The journal is scratch state for one run (``<workdir>/xdist/<testrunuid>.jsonl``); the ledger itself
is written by the xdist controller only, from the rows that ride on the test reports.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from filelock import FileLock

RESERVE, CONFIRM, ROW = "reserve", "confirm", "row"


class Journal:
    def __init__(self, path: Path, worker: str):
        self.path, self.worker = path, worker
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(path) + ".lock")

    @contextmanager
    def locked(self) -> Iterator[list[dict[str, Any]]]:
        """Hold the lock; yield every entry so far (appends made inside the block are not in the list)."""
        with self._lock:
            yield self._read()

    def _read(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def append(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Add one entry and return it; call it inside ``locked()``. One write per line, so a reader never
        sees half of one."""
        entry = {
            "kind": kind,
            "worker": self.worker,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            **fields,
        }
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(entry) + "\n").encode())
        finally:
            os.close(fd)
        return entry


def rows(entries: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The verdict rows every worker has recorded, in the order they were recorded."""
    return [e["row"] for e in entries if e["kind"] == ROW]


def _alive(entry: dict[str, Any]) -> bool:
    """A reservation of a worker that died without recording is released (its candidate may run again)."""
    return entry["host"] != socket.gethostname() or psutil.pid_exists(int(entry["pid"]))


def in_flight(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reservations of live workers that have no verdict row yet."""
    done = {(e["worker"], e["row"]["candidate_id"]) for e in entries if e["kind"] == ROW}
    return [e for e in entries if e["kind"] == RESERVE and (e["worker"], e["id"]) not in done and _alive(e)]


def confirm_seeds(entries: list[dict[str, Any]]) -> set[int]:
    """Fresh seeds already handed to a confirmation by any worker."""
    return {int(s) for e in entries if e["kind"] == CONFIRM for s in e["seeds"]}
