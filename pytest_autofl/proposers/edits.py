"""SEARCH/REPLACE edits over the surface files (what a model answers and what a literature card carries): applied
exactly, each search text matching once, and turned into the unified diff that the strict patch path checks."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any


class EditError(ValueError):
    """An edit that is malformed, outside the surface, or whose search text does not match exactly once."""


def apply_edits(edits: Any, surface: Mapping[str, str]) -> dict[str, str]:
    """The edited files' new texts; every edit must match exactly once in the file as the edits before it
    left it."""
    if not isinstance(edits, list):
        raise EditError("'edits' must be a list of {file, search, replace} objects")
    texts: dict[str, str] = {}
    for number, edit in enumerate(edits, start=1):
        if not isinstance(edit, dict) or set(edit) != {"file", "search", "replace"}:
            raise EditError(f"edit {number} must be an object with exactly 'file', 'search' and 'replace'")
        name, search, new = edit["file"], edit["search"], edit["replace"]
        if not all(isinstance(v, str) for v in (name, search, new)):
            raise EditError(f"edit {number}: 'file', 'search' and 'replace' must be strings")
        if name not in surface:
            raise EditError(
                f"edit {number}: {name!r} is not a surface file a candidate may change ({sorted(surface)})"
            )
        text = texts.get(name, surface[name])
        found = text.count(search) if search else 0
        if found != 1:
            where = "does not occur" if found == 0 else f"occurs {found} times"
            raise EditError(
                f"edit {number}: the search text {where} in {name}; copy it exactly (whitespace included) "
                "from the current file, with enough lines to be unique"
            )
        texts[name] = text.replace(search, new, 1)
    return texts


def unified_diff(surface: Mapping[str, str], texts: Mapping[str, str]) -> str:
    return "".join(
        "".join(difflib.unified_diff(surface[n].splitlines(True), t.splitlines(True), f"a/{n}", f"b/{n}"))
        for n, t in sorted(texts.items())
        if t != surface[n]
    )
