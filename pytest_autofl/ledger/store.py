"""The ledger ``results.tsv``: one row per candidate, append-only, atomic and locked.

The first eight columns are NVFlare Auto-FL's research ledger (``commit score runtime_seconds budget status
target description artifacts``) so its tools read ours; the rest make every row reproducible. Each append
takes a ``filelock``, checks the file it appends to (header, field counts, a torn last line from a killed
writer), writes the whole row with one ``os.write`` and fsyncs before it returns. A malformed ledger is an
error that names the line; it is never rewritten.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock

from pytest_autofl.core.errors import LedgerError
from pytest_autofl.core.verdict import STATUSES

AUTOFL_RESEARCH_COLUMNS = (
    "commit",
    "score",
    "runtime_seconds",
    "budget",
    "status",
    "target",
    "description",
    "artifacts",
)
COLUMNS = AUTOFL_RESEARCH_COLUMNS + (
    "candidate_id",
    "params",
    "seeds",
    "seed_scores",
    "delta",
    "ci_low",
    "ci_high",
    "n_seeds",
    "noise",
    "threshold",
    "incumbent_id",
    "reason",
    "n_params",
    "comm_bytes",
    "cost_ratio",
    "seconds_per_run",
    "confirm",
    "contract_sha",
    "split_sha",
    "surface_sha",
    "patch_sha",
    "benchmark",
    "env",
    "nvflare_version",
    "torch_version",
    "timestamp_utc",
    "row_id",
)
NUMERIC_COLUMNS = (
    "score",
    "runtime_seconds",
    "delta",
    "ci_low",
    "ci_high",
    "n_seeds",
    "noise",
    "threshold",
    "n_params",
    "comm_bytes",
    "cost_ratio",
    "seconds_per_run",
)
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


def _parse(path: Path, text: str) -> tuple[list[dict[str, str]], int]:
    """Rows of a complete file, and the byte offset where a torn (unterminated) last line starts, or -1."""
    torn_at = -1
    if text and not text.endswith("\n"):
        torn_at = text.rfind("\n") + 1
        text = text[:torn_at]
    # Split on "\n" only: str.splitlines also breaks on form feeds and other separators a field may hold.
    lines = text[:-1].split("\n") if text else []
    if not lines:
        return [], torn_at
    if lines[0].split("\t") != list(COLUMNS):
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
        if len(fields) != len(COLUMNS):
            raise LedgerError(
                f"{path}:{number}: malformed row: {len(fields)} fields, expected {len(COLUMNS)}. "
                "The ledger was not modified; fix or move that line by hand."
            )
        rows.append({c: unescape(v) for c, v in zip(COLUMNS, fields, strict=True)})
    return rows, torn_at


def read_rows(path: Path) -> list[dict[str, str]]:
    """All complete rows (a torn last line from a killed writer is ignored); [] if the file does not exist."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerError(f"{path}: cannot read the ledger: {exc}") from None
    return _parse(path, text)[0]


def validate(path: Path) -> list[str]:
    """Problems that make the ledger untrustworthy (for ``--autofl-check``); [] if it is well-formed."""
    try:
        rows = read_rows(path)
    except LedgerError as exc:
        return [str(exc)]
    problems = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=2):
        if row["status"] not in STATUSES:
            problems.append(f"{path}:{number}: unknown status {row['status']!r}")
        for column in NUMERIC_COLUMNS:
            if row[column]:
                try:
                    float(row[column])
                except ValueError:
                    problems.append(f"{path}:{number}: column {column} = {row[column]!r} is not a number")
        if row["row_id"] in seen:
            problems.append(f"{path}:{number}: duplicate row_id {row['row_id']!r}")
        seen.add(row["row_id"])
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


def append_row(path: Path, values: Mapping[str, Any]) -> None:
    """Append one row durably. Returns only after the row is on disk."""
    line = format_row(values).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_SECONDS):
        if not path.exists() or path.stat().st_size == 0:
            _create(path)
        text = path.read_bytes().decode("utf-8")
        _, torn_at = _parse(path, text)  # raises on a malformed ledger: nothing is written
        if torn_at >= 0:
            _set_aside_torn_tail(path, text, torn_at)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise LedgerError(f"{path}: short write ({written} of {len(line)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)
