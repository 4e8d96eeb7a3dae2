"""The ledger ``results.tsv`` as a file: its format (one line per row, tab-separated, escaped) and its readers.

The columns and their types are ``row.Row``'s; ``writer`` appends. Reading never changes the file: a malformed
ledger is an error that names the line (many bad rows: the first few and the count). A torn last line (a
writer killed mid-append) is not a row. Ledgers of an earlier release (the same columns without the newest)
read as if the new columns were empty.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gc
import io
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_autofl.core.errors import LedgerError
from pytest_autofl.ledger.columns import AUTOFL_RESEARCH_COLUMNS, COLUMNS, LAYOUTS
from pytest_autofl.ledger.row import Row, parse_rows
from pytest_autofl.ledger.typed_columns import TypedColumns

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


def _field(text: str) -> str:
    """One field as ``format_row`` wrote it: csv-quoted when it holds a double quote, escapes undone."""
    if len(text) > 1 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1].replace('""', '"')
    return unescape(text) if "\\" in text else text


@dataclass(frozen=True)
class Table:
    """A ledger's complete rows, column by column: how the typed readers take them (a 10,000-row ledger reads
    in about the time ``pandas.read_csv`` takes)."""

    columns: dict[str, list[str]]
    count: int

    def rows(self) -> list[dict[str, str]]:
        """Row by row, as text fields."""
        return [
            dict(zip(COLUMNS, values, strict=True)) for values in zip(*self.columns.values(), strict=True)
        ]


def parse(path: Path, text: str, skipped: int = 0) -> tuple[Table, int, tuple[str, ...]]:
    """The rows of a file's text, the index where a torn (unterminated) last line starts (or -1), and the
    file's columns (``COLUMNS``, or one of the ``LAYOUTS`` of an earlier release: its rows get the new columns
    empty). ``skipped``: rows of the file left out of ``text`` after its header (line numbers count them)."""
    torn_at = -1
    if text and not text.endswith("\n"):
        torn_at = text.rfind("\n") + 1
        text = text[:torn_at]
    # Split on "\n" only: str.splitlines also breaks on form feeds and other separators a field may hold.
    lines = text[:-1].split("\n") if text else []
    if not lines:
        return Table({c: [] for c in COLUMNS}, 0), torn_at, COLUMNS
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
    width = len(layout)
    split = [line.split("\t") for line in lines[1:]]  # a field never holds a raw tab: split is exact
    for number, fields in enumerate(split, start=2 + skipped):
        if len(fields) != width:
            raise LedgerError(
                f"{path}:{number}: malformed row: {len(fields)} fields, expected {width}. "
                "The ledger was not modified; fix or move that line by hand."
            )
    count = len(split)
    given: dict[str, list[str]] = {}
    if split:
        given = dict(zip(layout, map(list, zip(*split, strict=True)), strict=True))
    for name, values in given.items():  # only the few columns that hold a quote or an escape, field by field
        joined = "\n".join(values)
        if '"' in joined or "\\" in joined:
            given[name] = [_field(f) if '"' in f or "\\" in f else f for f in values]
    columns = {c: given.get(c) or [""] * count for c in COLUMNS}
    return Table(columns, count), torn_at, layout


@contextlib.contextmanager
def bulk() -> Iterator[None]:
    """No cyclic garbage collection while a large ledger becomes objects (a quarter of the time otherwise:
    the collector walks every new row; none of them forms a cycle)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _in_bulk(fn: Callable[[Path], Any]) -> Callable[[Path], Any]:
    @functools.wraps(fn)
    def wrapper(path: Path) -> Any:
        with bulk():
            return fn(path)

    return wrapper


def read_table(path: Path) -> Table:
    """All complete rows, column by column (a torn last line from a killed writer is ignored); no rows if the
    file does not exist."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerError(f"{path}: cannot read the ledger: {exc}") from None
    return parse(path, text)[0]


def read_fields(path: Path) -> list[dict[str, str]]:
    """All complete rows as text fields; [] if the file does not exist."""
    return read_table(path).rows()


@_in_bulk
def read_rows(path: Path) -> list[Row]:
    """All complete rows, typed; a row whose fields do not parse is a LedgerError naming its line."""
    table = read_table(path)
    typed, problems = parse_rows(table.columns, table.count)
    if problems:
        index = min(problems)
        raise LedgerError(
            f"{path}:{index + 2}: {problems[index]}. The ledger was not modified; fix that line by hand."
            + (
                f" ({len(problems)} rows do not parse; `pytest --autofl-check` lists them)"
                if len(problems) > 1
                else ""
            )
        )
    return [row for row in typed if row is not None]


@_in_bulk
def validate(path: Path) -> list[str]:
    """Problems that make the ledger untrustworthy (for ``--autofl-check``); [] if it is well-formed."""
    try:
        table = read_table(path)
    except LedgerError as exc:
        return [str(exc)]
    return problems_of(path, table)


def problems_of(path: Path, table: Table, typed: TypedColumns | None = None) -> list[str]:
    """What is wrong with rows read from ``path``: fields that do not parse, duplicate row ids."""
    found = dict((typed or TypedColumns(table.columns, table.count)).problems)
    seen: set[str] = set()
    for index, row_id in enumerate(table.columns["row_id"]):
        if row_id in seen:
            found.setdefault(index, f"duplicate row_id {row_id!r}")
        seen.add(row_id)
    return [f"{path}:{index + 2}: {found[index]}" for index in sorted(found)]


def summary(problems: list[str], first: int = 5) -> str:
    """The first few problems and how many more: a ledger with thousands of bad rows is one readable message."""
    more = len(problems) - first
    return "; ".join(problems[:first]) + (f"; ... and {more} more" if more > 0 else "")
