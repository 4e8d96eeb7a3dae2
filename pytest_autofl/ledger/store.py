"""The ledger ``results.tsv``: one row per candidate, append-only, atomic and locked.

The columns and their types are ``row.Row``'s; this module only stores them. Each append takes a ``filelock``,
checks the file it appends to (header, field counts, a torn last line from a killed writer), writes the whole
row with one ``os.write`` and fsyncs before it returns. A malformed ledger is an error that names the line; it
is never rewritten. The one exception is a ledger of an earlier release (the same columns without the newest
ones): on its next append it is upgraded once, atomically, with the new columns empty and the original kept
beside it as ``results.tsv.earlier-<time>``.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from pytest_autofl.core.errors import LedgerError
from pytest_autofl.core.verdict import ROW_STATUSES
from pytest_autofl.ledger import chain
from pytest_autofl.ledger.columns import AUTOFL_RESEARCH_COLUMNS, COLUMNS, LAYOUTS
from pytest_autofl.ledger.row import Row, RowFormatError

_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {v[1]: k for k, v in _ESCAPES.items()}
LOCK_TIMEOUT_SECONDS = 60.0


def escape(value: Any) -> str:
    """Fields never contain a raw tab or line break, so one row is always exactly one line."""
    text = "" if value is None else str(value)
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _UNESCAPES.get(m.group(1), m.group(0)), text)


def format_row(values: Mapping[str, Any]) -> str:
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise LedgerError(f"unknown ledger column(s): {sorted(unknown)}")
    buffer = io.StringIO()
    csv.writer(buffer, delimiter="\t", lineterminator="\n").writerow([escape(values.get(c)) for c in COLUMNS])
    return buffer.getvalue()


def header_line() -> str:
    return "\t".join(COLUMNS) + "\n"


def _parse(path: Path, text: str) -> tuple[list[dict[str, str]], int, tuple[str, ...]]:
    """Rows of a complete file, the byte offset where a torn (unterminated) last line starts (or -1), and the
    file's columns (``COLUMNS``, or one of the ``LAYOUTS`` of an earlier release: its rows get the new columns
    empty)."""
    torn_at = -1
    if text and not text.endswith("\n"):
        torn_at = text.rfind("\n") + 1
        text = text[:torn_at]
    # Split on "\n" only: str.splitlines also breaks on form feeds and other separators a field may hold.
    lines = text[:-1].split("\n") if text else []
    if not lines:
        return [], torn_at, COLUMNS
    layout = next((cols for cols in LAYOUTS if lines[0].split("\t") == list(cols)), None)
    if layout is None:
        found = lines[0].split("\t")
        hint = (
            " (this looks like an NVFlare Auto-FL ledger; pytest-autofl keeps its own, use another --autofl-ledger)"
            if tuple(found) == AUTOFL_RESEARCH_COLUMNS
            else ""
        )
        raise LedgerError(
            f"{path}:1: not a pytest-autofl ledger header; expected {len(COLUMNS)} columns starting "
            f"{' '.join(COLUMNS[:3])} ..., found {len(found)}: {' '.join(found[:4])} ...{hint}"
        )
    rows = []
    for number, fields in enumerate(csv.reader(lines[1:], delimiter="\t"), start=2):
        if len(fields) != len(layout):
            raise LedgerError(
                f"{path}:{number}: malformed row: {len(fields)} fields, expected {len(layout)}. "
                "The ledger was not modified; fix or move that line by hand."
            )
        row = dict.fromkeys(COLUMNS, "")
        row.update({c: unescape(v) for c, v in zip(layout, fields, strict=True)})
        rows.append(row)
    return rows, torn_at, layout


def read_fields(path: Path) -> list[dict[str, str]]:
    """All complete rows as text fields (a torn last line from a killed writer is ignored); [] if the file
    does not exist."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerError(f"{path}: cannot read the ledger: {exc}") from None
    return _parse(path, text)[0]


def _row_problem(fields: Mapping[str, str]) -> str | None:
    if fields["status"] not in ROW_STATUSES:
        return f"unknown status {fields['status']!r}"
    try:
        Row.parse(fields)
    except RowFormatError as exc:
        return str(exc)
    return None


def read_rows(path: Path) -> list[Row]:
    """All complete rows, typed; a row whose fields do not parse is a LedgerError naming its line."""
    rows = []
    for number, fields in enumerate(read_fields(path), start=2):
        if problem := _row_problem(fields):
            raise LedgerError(
                f"{path}:{number}: {problem}. The ledger was not modified; fix that line by hand."
            )
        rows.append(Row.parse(fields))
    return rows


def validate(path: Path) -> list[str]:
    """Problems that make the ledger untrustworthy (for ``--autofl-check``); [] if it is well-formed."""
    try:
        rows = read_fields(path)
    except LedgerError as exc:
        return [str(exc)]
    problems = []
    seen: set[str] = set()
    for number, fields in enumerate(rows, start=2):
        if problem := _row_problem(fields):
            problems.append(f"{path}:{number}: {problem}")
        if fields["row_id"] in seen:
            problems.append(f"{path}:{number}: duplicate row_id {fields['row_id']!r}")
        seen.add(fields["row_id"])
    return problems


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create(path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(header_line())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _set_aside_torn_tail(path: Path, text: str, torn_at: int) -> None:
    aside = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    aside.write_text(text[torn_at:], encoding="utf-8")
    with open(path, "r+b") as fh:
        fh.truncate(len(text[:torn_at].encode("utf-8")))
        fh.flush()
        os.fsync(fh.fileno())


def _upgrade(path: Path, text: str) -> None:
    """Rewrite a ledger of an earlier release with the new columns (empty) at the end of every line; the
    original is kept beside it. Atomic: readers see the old file or the new one, never a mix."""
    shutil.copy2(path, path.with_name(f"{path.name}.earlier-{time.strftime('%Y%m%dT%H%M%S')}"))
    lines = text.split("\n")[:-1]
    added = len(COLUMNS) - len(lines[0].split("\t"))
    upgraded = [header_line().rstrip("\n")] + [line + "\t" * added for line in lines[1:]]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.upgrade")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(upgraded) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def append_row(path: Path, row: Row, seal: Seal | None = None) -> Row:
    """Append one verdict row durably (chained when ``seal`` is given); returns the row as written."""
    return Row.parse(append_fields(path, row.fields(), seal))


def _chained(path: Path, rows: list[dict[str, str]], values: dict[str, str], seal: Seal) -> None:
    """Set ``values["chain"]``, after checking that the whole ledger is still what the harness wrote (a few
    microseconds per row: the file is read for every append anyway)."""
    problems = seal.problems(path, rows)
    if problems:
        raise LedgerError(
            f"{problems[0]}. Nothing was appended; `pytest --autofl-check` lists every problem."
        )
    values["chain"] = chain.link(seal.key, seal.tip(rows), values, COLUMNS)


def append_fields(path: Path, values: Mapping[str, Any], seal: Seal | None = None) -> dict[str, str]:
    """Append one row given as text fields (missing columns empty), durably; returns the fields written."""
    fields = dict.fromkeys(COLUMNS, "")
    fields.update({k: "" if v is None else str(v) for k, v in values.items()})  # unknown columns: format_row
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_SECONDS):
        if not path.exists() or path.stat().st_size == 0:
            _create(path)
        text = path.read_bytes().decode("utf-8")
        rows, torn_at, layout = _parse(path, text)  # raises on a malformed ledger: nothing is written
        if seal is not None:
            _chained(path, rows, fields, seal)
        line = format_row(fields).encode("utf-8")
        if torn_at >= 0:
            _set_aside_torn_tail(path, text, torn_at)
            text = text[:torn_at]
        if layout != COLUMNS:
            _upgrade(path, text)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise LedgerError(f"{path}: short write ({written} of {len(line)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)
        if seal is not None:
            chain.save_head(seal.head, len(rows) + 1, fields["chain"])
    return fields


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

    def tip(self, rows: list[dict[str, str]]) -> str:
        """The chain value after ``rows`` (computed, so rows that predate chaining are covered too)."""
        previous = ""
        for fields in rows:
            previous = chain.link(self.key, previous, fields, COLUMNS)
        return previous

    def problems(self, path: Path, rows: list[dict[str, str]]) -> list[str]:
        """Where the chain breaks (with its line), and rows cut from the end since the harness last wrote."""
        out = []
        if (found := chain.broken(self.key, rows, COLUMNS)) is not None:
            out.append(f"{path}:{found[0] + 2}: {found[1]}")
        if (cut := chain.cut(self.head, rows)) is not None:
            out.append(f"{path}: {cut}")
        return out

    def verify(self, path: Path) -> list[str]:
        return self.problems(path, read_fields(path))


class LedgerWriter:
    """The one writer of a session's verdict rows: appends each (chained, when sealed) and remembers which."""

    def __init__(self, path: Path, seal: Seal | None = None):
        self.path, self.seal = path, seal
        self.row_ids: list[str] = []

    def write(self, row: Row) -> None:
        append_row(self.path, row, self.seal)
        self.row_ids.append(row.row_id)
