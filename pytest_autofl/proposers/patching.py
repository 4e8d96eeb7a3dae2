"""Strict unified-diff application for candidate patches (fuzz 0: every context and removed line must match).

A hunk that does not apply is an error naming the file, the hunk and its line, with the nearest matching lines
in the file, never a silent skip or a half-applied patch: the whole patch applies to in-memory texts, or nothing
does. Binary patches, renames, mode changes, file creation and deletion are refused.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_REFUSED = (
    "GIT binary patch",
    "Binary files ",
    "rename from ",
    "rename to ",
    "new file mode",
    "deleted file mode",
    "old mode ",
    "new mode ",
    "similarity index ",
)


class PatchError(ValueError):
    """The patch is malformed, unsafe, or does not apply."""


@dataclass
class Hunk:
    old_start: int
    lines: list[str] = field(default_factory=list)  # each starts with " ", "-" or "+"

    @property
    def old(self) -> list[str]:
        return [ln[1:] for ln in self.lines if ln[:1] in (" ", "-")]

    @property
    def new(self) -> list[str]:
        return [ln[1:] for ln in self.lines if ln[:1] in (" ", "+")]


def _file_name(path: str) -> str:
    """The surface file a header names: ``a/strategies.py`` or ``a/surfaces/strategies.py`` -> ``strategies.py``.
    Absolute paths and ``..`` are refused outright, whatever file they point at."""
    path = path.split("\t", 1)[0].strip()
    if path == "/dev/null":
        return path
    path = path[2:] if path.startswith(("a/", "b/")) else path
    parts = path.replace("\\", "/").split("/")
    if path.startswith(("/", "~")) or ".." in parts or not parts[-1]:
        raise PatchError(f"refused: unsafe path {path!r} in the patch (no absolute paths, no '..')")
    return parts[-1]


def parse(diff: str) -> dict[str, list[Hunk]]:
    """File name (as written in the diff, a/ b/ stripped) -> hunks."""
    for marker in _REFUSED:
        if marker in diff:
            raise PatchError(
                f"refused: the patch contains {marker.strip()!r} (only text edits of existing files)"
            )
    files: dict[str, list[Hunk]] = {}
    current: list[Hunk] | None = None
    lines = diff.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- "):
            if i + 1 >= len(lines) or not lines[i + 1].startswith("+++ "):
                raise PatchError(f"malformed diff: line {i + 1} '--- ...' is not followed by '+++ ...'")
            old, new = _file_name(line[4:]), _file_name(lines[i + 1][4:])
            if "/dev/null" in (old, new):
                raise PatchError("refused: the patch creates or deletes a file (only edits of surface files)")
            if old != new:
                raise PatchError(f"refused: the patch renames {old!r} to {new!r}")
            current = files.setdefault(new, [])
            i += 2
            continue
        match = _HUNK.match(line)
        if match:
            if current is None:
                raise PatchError(f"malformed diff: hunk at line {i + 1} before any '--- / +++' file header")
            hunk = Hunk(int(match.group(1)))
            old_len = int(match.group(2) or 1)
            new_len = int(match.group(4) or 1)
            i += 1
            while i < len(lines) and (len(hunk.old) < old_len or len(hunk.new) < new_len):
                body = lines[i]
                if body.startswith("\\"):  # "\\ No newline at end of file"
                    i += 1
                    continue
                if body[:1] not in (" ", "-", "+") and body != "":
                    raise PatchError(f"malformed diff: line {i + 1} in a hunk starts with {body[:1]!r}")
                hunk.lines.append(body if body else " ")
                i += 1
            if len(hunk.old) != old_len or len(hunk.new) != new_len:
                raise PatchError(f"malformed diff: the hunk '{line}' is shorter than its header says")
            current.append(hunk)
            continue
        i += 1
    if not files or not any(files.values()):
        raise PatchError("malformed diff: no '--- / +++' file with an '@@' hunk found")
    return files


def _nearest(text_lines: list[str], wanted: list[str]) -> str:
    if not wanted or not text_lines:
        return "(the file is empty)"
    window = len(wanted)
    best, best_at = -1.0, 0
    for start in range(max(1, len(text_lines) - window + 1)):
        ratio = difflib.SequenceMatcher(
            None, "\n".join(text_lines[start : start + window]), "\n".join(wanted)
        ).ratio()
        if ratio > best:
            best, best_at = ratio, start
    shown = "\n".join(
        f"    {best_at + k + 1:>5}: {ln}" for k, ln in enumerate(text_lines[best_at : best_at + window])
    )
    return f"nearest matching lines ({best:.0%} similar), from line {best_at + 1}:\n{shown}"


def apply(texts: dict[str, str], diff: str) -> dict[str, str]:
    """New texts of the files the diff touches; raises PatchError (nothing applied) on any problem."""
    out: dict[str, str] = {}
    for name, hunks in parse(diff).items():
        if name not in texts:
            raise PatchError(f"the patch edits {name!r}, which is not a surface file a candidate may change")
        lines = texts[name].splitlines()
        trailing_newline = texts[name].endswith("\n")
        offset = 0
        for number, hunk in enumerate(hunks, start=1):
            at = hunk.old_start - 1 + offset if hunk.old else hunk.old_start + offset
            old = hunk.old
            if lines[at : at + len(old)] != old:
                found = [k for k in range(len(lines) - len(old) + 1) if lines[k : k + len(old)] == old]
                if len(found) != 1:
                    why = (
                        "its context is not in the file"
                        if not found
                        else f"its context occurs {len(found)} times"
                    )
                    expected = "\n".join(f"    {ln}" for ln in old)
                    raise PatchError(
                        f"hunk {number} of {name} (at line {hunk.old_start}) does not apply: {why}.\n"
                        f"  expected:\n{expected}\n  {_nearest(lines, old)}"
                    )
                at = found[0]
            lines[at : at + len(old)] = hunk.new
            offset = at + len(hunk.new) - (hunk.old_start - 1 + len(old))
        out[name] = "\n".join(lines) + ("\n" if trailing_newline else "")
    return out
