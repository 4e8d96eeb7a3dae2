"""Appending to the ledger: one row at a time, locked, whole or not at all, durable before it returns.

Each append takes a ``filelock``, checks what it appends to (header, field counts, a torn last line from a
killed writer, the chain), writes the whole row with one ``os.write`` and fsyncs. A write that fails midway
(a full disk, a file-size limit) is cut back to the file's size before it: the earlier rows stay byte for byte.
A ``LedgerWriter`` remembers the file's tail after each append, so its next append reads and checks only what
was added since (by anyone): the cost of an append does not grow with the ledger. The whole file is read again
whenever the tail is not as it was left (another file, a shorter one, a changed last row). A ledger of an
earlier release is upgraded once, atomically, on its next append (new columns empty; the original kept beside
it as ``results.tsv.earlier-<time>``).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from pytest_autofl.core.errors import LedgerError
from pytest_autofl.ledger import chain
from pytest_autofl.ledger.columns import COLUMNS
from pytest_autofl.ledger.row import Row
from pytest_autofl.ledger.store import format_row, header_line, parse, read_fields

LOCK_TIMEOUT_SECONDS = 60.0
LOCK_POLL_SECONDS = (
    0.002  # an append holds the lock for milliseconds: waiters should not sleep 50 ms (the default)
)


@dataclass
class Tail:
    """What a writer knew of the file after its last append: its inode and size, the last line, how many rows
    and the chain after them (``chained``: some row carries one)."""

    inode: int = -1
    size: int = 0
    last_line: bytes = b""
    count: int = 0
    tip: str = ""
    chained: bool = False


@dataclass(frozen=True)
class Seal:
    """The harness key and where the ledger's head is kept: what chains rows and checks the chain."""

    key: bytes
    head: Path

    @classmethod
    def of(cls, workdir: Path, ledger_path: Path) -> Seal:
        key = chain.harness_key(workdir)
        assert key is not None
        return cls(key, chain.head_path(workdir, ledger_path))

    @classmethod
    def checked(cls, workdir: Path, ledger_path: Path) -> Seal:
        """The seal, after verifying the whole ledger with it: LedgerError naming the first problem."""
        seal = cls.of(workdir, ledger_path)
        if problems := seal.verify(ledger_path):
            raise LedgerError(
                f"{problems[0]}; the ledger was not modified (`pytest --autofl-check` lists all)"
            )
        return seal

    def tip(self, rows: list[dict[str, str]], previous: str = "") -> str:
        """The chain value after ``rows`` (computed, so rows that predate chaining are covered too)."""
        for fields in rows:
            previous = chain.link(self.key, previous, fields, COLUMNS)
        return previous

    def problems(self, path: Path, rows: list[dict[str, str]], known: Tail | None = None) -> list[str]:
        """Where the chain breaks (with its line), and rows cut from the end since the harness last wrote.
        With ``known``, ``rows`` are those after it, checked from where its chain stood."""
        out = []
        start = known or Tail()
        found = chain.broken(self.key, rows, COLUMNS, start.tip, start.chained)
        if found is not None:
            out.append(f"{path}:{start.count + found[0] + 2}: {found[1]}")
        if known is None and (cut := chain.cut(self.head, rows)) is not None:
            out.append(f"{path}: {cut}")
        return out

    def verify(self, path: Path) -> list[str]:
        return self.problems(path, read_fields(path))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(path: Path, text: str, suffix: str) -> None:
    """``path`` becomes ``text`` atomically (a temporary file beside it, fsynced, renamed; removed on error)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{suffix}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _write_new(stem: Path, data: bytes) -> Path:
    """``data`` in a new file named ``stem`` (``stem-2``, ``stem-3``, ... if taken by other bytes): a set-aside
    never replaces another, and the same bytes set aside again (a writer killed between setting a torn tail
    aside and cutting it off, the next one finding it) stay one file."""
    for n in itertools.count(1):
        target = stem if n == 1 else stem.with_name(f"{stem.name}-{n}")
        try:
            with open(target, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            return target
        except FileExistsError:
            if target.read_bytes() == data:
                return target
    raise AssertionError("unreachable")


def _set_aside_torn_tail(path: Path, torn: bytes, keep: int) -> None:
    """Move a torn last line (a writer killed mid-append) to a file beside the ledger, named by where it
    starts and what it holds (found again after a writer died before cutting it off, it is the same file),
    then cut it off."""
    name = f"{path.name}.torn-at-{keep}-{hashlib.sha256(torn).hexdigest()[:12]}"
    _write_new(path.with_name(name), torn)
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())


def _upgrade(path: Path, text: str) -> None:
    """Rewrite a ledger of an earlier release with the new columns (empty) at the end of every line; the
    original is kept beside it. Atomic: readers see the old file or the new one, never a mix."""
    _write_new(path.with_name(f"{path.name}.earlier-{time.strftime('%Y%m%dT%H%M%S')}"), path.read_bytes())
    lines = text.split("\n")[:-1]
    added = len(COLUMNS) - len(lines[0].split("\t"))
    upgraded = [header_line().rstrip("\n")] + [line + "\t" * added for line in lines[1:]]
    _replace(path, "\n".join(upgraded) + "\n", "upgrade")


def _write_whole(path: Path, line: bytes) -> int:
    """Append ``line`` with one write and fsync; on any failure cut the file back to its size before, so no
    part of the row stays. Returns the file's new size."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        before = os.fstat(fd).st_size
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write: {written} of {len(line)} bytes")
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, before)
            os.fsync(fd)
            raise
        return before + len(line)
    finally:
        os.close(fd)


def _since(path: Path, known: Tail) -> tuple[str, int] | None:
    """The text added after what ``known`` saw and its byte offset; None if the file must be read whole."""
    stat = os.stat(path)
    if known.inode != stat.st_ino or stat.st_size < known.size:
        return None
    start = known.size - len(known.last_line)
    with open(path, "rb") as fh:
        fh.seek(start)
        chunk = fh.read()
    if not known.last_line or not chunk.startswith(known.last_line):
        return None
    return chunk[len(known.last_line) :].decode("utf-8"), known.size


def _append(path: Path, fields: dict[str, str], seal: Seal | None, tail: Tail) -> None:
    """The locked part of an append; ``tail`` is what is known of the file, updated to what it is after."""
    if not path.exists() or path.stat().st_size == 0:
        _replace(path, header_line(), "tmp")
    since = _since(path, tail) if tail.inode >= 0 else None
    known = tail if since is not None else None
    text, offset = since or (path.read_bytes().decode("utf-8"), 0)
    header, skipped = (header_line(), known.count) if known else ("", 0)
    table, torn_at, layout = parse(path, header + text, skipped)  # a malformed ledger raises: nothing written
    rows = table.rows()
    if seal is not None:
        if problems := seal.problems(path, rows, known):
            raise LedgerError(
                f"{problems[0]}. Nothing was appended; `pytest --autofl-check` lists every problem."
            )
        fields["chain"] = chain.link(seal.key, seal.tip(rows, known.tip if known else ""), fields, COLUMNS)
    if torn_at >= 0:
        kept = (header + text)[len(header) : torn_at]
        _set_aside_torn_tail(
            path, (header + text)[torn_at:].encode("utf-8"), offset + len(kept.encode("utf-8"))
        )
        text = text[: torn_at - len(header)]
    if layout != COLUMNS:
        _upgrade(path, text)
    line = format_row(fields).encode("utf-8")
    size = _write_whole(path, line)
    count = skipped + len(rows) + 1
    if seal is not None:
        chain.save_head(seal.head, count, fields["chain"])
    tail.inode, tail.size, tail.last_line, tail.count = os.stat(path).st_ino, size, line, count
    tail.tip = fields["chain"] if seal is not None else ""
    tail.chained = seal is not None or (known.chained if known else any(r["chain"] for r in rows))


def append_fields(
    path: Path, values: Mapping[str, Any], seal: Seal | None = None, tail: Tail | None = None
) -> dict[str, str]:
    """Append one row given as text fields (missing columns empty), durably; returns the fields written.
    ``tail``: what this writer knew of the file after its last append (updated): only what follows is read."""
    fields = dict.fromkeys(COLUMNS, "")
    fields.update({k: "" if v is None else str(v) for k, v in values.items()})  # unknown columns: format_row
    path.parent.mkdir(parents=True, exist_ok=True)
    known = tail if tail is not None else Tail()
    lock = FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_SECONDS)
    with lock.acquire(poll_interval=LOCK_POLL_SECONDS):
        try:
            _append(path, fields, seal, known)
        except OSError as exc:
            known.inode = -1  # whatever happened, the next append reads the whole file again
            raise LedgerError(
                f"{path}: cannot append a row ({exc.strerror or exc}); nothing was appended and the rows "
                "before are intact. Is the disk full?"
            ) from None
        except BaseException:
            known.inode = -1
            raise
    return fields


def append_row(path: Path, row: Row, seal: Seal | None = None, tail: Tail | None = None) -> Row:
    """Append one verdict row durably (chained when ``seal`` is given); returns the row as written."""
    return Row.parse(append_fields(path, row.fields(), seal, tail))


class LedgerWriter:
    """The one writer of a session's verdict rows: appends each (chained, when sealed) and remembers which."""

    def __init__(self, path: Path, seal: Seal | None = None):
        self.path, self.seal = path, seal
        self.row_ids: list[str] = []
        self.tail = Tail()

    def write(self, row: Row) -> None:
        append_row(self.path, row, self.seal, self.tail)
        self.row_ids.append(row.row_id)
