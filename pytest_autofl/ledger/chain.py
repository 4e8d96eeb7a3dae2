"""Tamper evidence for the ledger. Each row carries ``chain`` = HMAC-SHA256(harness key, the previous row's
chain + the row's other fields), so an edited, inserted, reordered or deleted row breaks every chain after it,
and a forged row cannot be chained without the key. The harness also keeps the ledger's head (how many rows it
last wrote and the last chain) beside the key, so rows cut from the end are found too.

The key (``<workdir>/harness.key``, created on first use, mode 0600) and the heads stay with the harness: no
candidate process is given them. Rows written before chaining existed have an empty ``chain``; the first
chained row covers them (its chain is computed over every earlier row).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

KEY_FILE = "harness.key"
HEADS_DIR = "ledger-heads"


def harness_key(workdir: Path, create: bool = True) -> bytes | None:
    """The harness key of this project's workdir; created if missing (unless ``create`` is off)."""
    path = workdir / KEY_FILE
    if not path.exists() and create:
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
                fh.flush()
                os.fsync(fh.fileno())
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def link(key: bytes, previous: str, fields: Mapping[str, str], columns: Sequence[str]) -> str:
    cut = columns.index("chain")  # columns added after it: chained as name=value when set, so that an
    body = "\t".join(fields.get(c, "") for c in columns[:cut])  # upgraded ledger's chain still holds
    body += "".join(f"\t{c}={fields[c]}" for c in columns[cut + 1 :] if fields.get(c))
    return hmac.new(key, f"{previous}\n{body}".encode(), hashlib.sha256).hexdigest()


def broken(
    key: bytes,
    rows: Sequence[Mapping[str, str]],
    columns: Sequence[str],
    previous: str = "",
    chained: bool = False,
) -> tuple[int, str] | None:
    """The first row (its 0-based index) whose chain does not verify, and why; None if the chain holds.
    ``previous`` and ``chained``: where the chain stood before ``rows`` (the rows of a file after a known part)."""
    for index, fields in enumerate(rows):
        expected = link(key, previous, fields, columns)
        if fields.get("chain"):
            if not hmac.compare_digest(fields["chain"], expected):
                return (
                    index,
                    "its chain does not verify: this row, or one before it, was edited, inserted, reordered or deleted, or was written under another harness key",
                )
            chained = True
        elif chained:
            return (
                index,
                "a row without a chain after chained rows: written by something other than the harness",
            )
        previous = expected
    return None


def head_path(workdir: Path, ledger: Path) -> Path:
    digest = hashlib.sha256(str(ledger.resolve()).encode()).hexdigest()[:16]
    return workdir / HEADS_DIR / f"{digest}.json"


def save_head(path: Path, rows: int, chain: str) -> None:
    """Best effort, after the row is in the ledger: a head left one row behind (a full disk) still guards every
    row before it, so a failed save must not turn an appended row into a reported failure."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"rows": rows, "chain": chain}))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def cut(path: Path, rows: Sequence[Mapping[str, str]]) -> str | None:
    """Why the ledger no longer holds the last row the harness wrote (rows cut from its end), or None. A ledger
    without rows (moved aside or emptied to start afresh) is a new ledger, not a cut one."""
    if not rows:
        return None
    try:
        head = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    count, chain = int(head["rows"]), str(head["chain"])
    if len(rows) < count or rows[count - 1].get("chain") != chain:
        return f"the harness last wrote row {count} (line {count + 1}); the ledger now has {len(rows)} row(s) and not that one: rows were deleted or replaced"
    return None
