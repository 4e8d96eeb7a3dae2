"""``program.md``: the research lead's file. A YAML front matter sets caps and narrows the mutation schema (never
widens it); the prose below goes to a model-backed proposer word for word.

    ---
    benchmark: digits-skew        # the contract this program is about
    proposer: builtin             # who proposes, unless --autofl-proposer says otherwise
    max_iterations: 20            # caps: a session runs at most this many candidates
    max_llm_calls: 100
    max_llm_tokens: 500000
    plateau: {after: 8}           # scored candidates without a new keep before a literature review
    knobs:                        # the knobs this campaign may move; the others stay at their defaults
      aggregator: {choices: [fedavg, fedavgm]}
      server_momentum: {low: 0.0, high: 0.9}
      lr: {}                      # the schema's whole range
    files: [strategies.py]        # surface files a code change may touch
    ---
    Research intent, hypotheses, what is off limits ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.core.schema import Knob, Schema

KEYS = (
    "benchmark",
    "proposer",
    "max_iterations",
    "max_llm_calls",
    "max_llm_tokens",
    "plateau",
    "knobs",
    "files",
)
DEFAULT_PLATEAU_AFTER = 8


class ProgramError(AutoFLError):
    """program.md is malformed, or its front matter would widen the contract or the schema."""


@dataclass(frozen=True)
class Program:
    prose: str = ""
    benchmark: str | None = None
    proposer: str | None = None
    max_iterations: int | None = None
    max_llm_calls: int | None = None
    max_llm_tokens: int | None = None
    plateau_after: int = DEFAULT_PLATEAU_AFTER
    knobs: Mapping[str, Mapping[str, Any]] | None = None  # None: every knob, whole range
    files: tuple[str, ...] | None = None  # None: every surface file of the schema
    path: Path | None = None

    def where(self, field: str) -> str:
        return f"{self.path or 'program.md'}: {field}"

    def narrow(self, schema: Schema) -> Schema:
        """The schema this program allows: the listed knobs within the listed bounds (the others fixed at their
        defaults), the listed files. Raises ProgramError naming the field that would widen it."""
        files = schema.files
        if self.files is not None:
            if extra := sorted(set(self.files) - set(schema.files)):
                raise ProgramError(
                    f"{self.where('files')} {extra} are not surface files the schema allows ({list(schema.files)})"
                )
            files = tuple(f for f in schema.files if f in self.files)
        if self.knobs is None:
            return replace(schema, files=files)
        if unknown := sorted(set(self.knobs) - set(schema.knobs)):
            raise ProgramError(f"{self.where('knobs')} {unknown} are not knobs of the mutation schema")
        knobs = {
            name: _narrowed(knob, self.knobs[name], self.where(f"knobs.{name}"))
            if name in self.knobs
            else _fixed(knob)
            for name, knob in schema.knobs.items()
        }
        return replace(schema, knobs=knobs, files=files)


NO_PROGRAM = Program()


def _fixed(knob: Knob) -> Knob:
    if knob.type == "choice":
        return replace(knob, choices=(knob.default,))
    if knob.type == "bool":
        return replace(knob, type="choice", choices=(knob.default,))
    return replace(knob, low=float(knob.default), high=float(knob.default), log=False)


def _narrowed(knob: Knob, spec: Mapping[str, Any], where: str) -> Knob:
    if unknown := sorted(set(spec) - {"low", "high", "choices"}):
        raise ProgramError(f"{where}: unknown key(s) {unknown}; a knob narrows by low/high or choices")
    if "choices" in spec:
        choices = spec["choices"]
        if knob.type != "choice" or not isinstance(choices, list) or not choices:
            raise ProgramError(f"{where}.choices: only a choice knob takes a non-empty list of choices")
        if extra := [c for c in choices if c not in knob.choices]:
            raise ProgramError(f"{where}.choices: {extra} widen the schema's choices {list(knob.choices)}")
        if knob.default not in choices:
            raise ProgramError(
                f"{where}.choices: must keep the default {knob.default!r} (the baseline runs it)"
            )
        return replace(knob, choices=tuple(c for c in knob.choices if c in choices))
    if not {"low", "high"} & set(spec):
        return knob
    if knob.type not in ("float", "int"):
        raise ProgramError(f"{where}: low/high apply to numeric knobs only")
    assert knob.low is not None and knob.high is not None
    low, high = spec.get("low", knob.low), spec.get("high", knob.high)
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProgramError(f"{where}.{name}: must be a number, got {value!r}")
    if low < knob.low or high > knob.high:
        raise ProgramError(
            f"{where}: [{low:g}, {high:g}] widens the schema's bounds [{knob.low:g}, {knob.high:g}]"
        )
    if not low <= knob.default <= high:
        raise ProgramError(
            f"{where}: [{low:g}, {high:g}] must keep the default {knob.default!r} (the baseline runs it)"
        )
    return replace(knob, low=float(low), high=float(high))


def split(text: str) -> tuple[str, str]:
    """(front matter, prose) of a program.md; no front matter: ('', the whole text)."""
    if text.startswith("---\n") or text.startswith("---\r\n"):
        end = text.find("\n---", 3)
        if end != -1:
            rest = text[end + 4 :]
            return text[text.index("\n") + 1 : end + 1], rest.split("\n", 1)[1] if "\n" in rest else ""
    return "", text


def _count(raw: Mapping[str, Any], key: str, where: str, minimum: int = 1) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProgramError(f"{where}: {key} must be an integer >= {minimum}, got {value!r}")
    return value


def parse(text: str, path: Path | None = None) -> Program:
    front, prose = split(text)
    where = str(path or "program.md")
    try:
        raw = yaml.safe_load(front) if front.strip() else {}
    except yaml.YAMLError as exc:
        raise ProgramError(f"{where}: the front matter is not YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ProgramError(f"{where}: the front matter must be a mapping of {list(KEYS)}")
    if unknown := sorted(set(raw) - set(KEYS)):
        raise ProgramError(f"{where}: unknown front-matter key(s) {unknown}; allowed: {list(KEYS)}")
    for key in ("benchmark", "proposer"):
        if raw.get(key) is not None and not (isinstance(raw[key], str) and raw[key]):
            raise ProgramError(f"{where}: {key} must be a name, got {raw[key]!r}")
    plateau = raw.get("plateau") or {}
    if not isinstance(plateau, dict) or set(plateau) - {"after"}:
        raise ProgramError(
            f"{where}: plateau must be a mapping with 'after' (scored candidates without a keep)"
        )
    knobs = raw.get("knobs")
    if knobs is not None and (
        not isinstance(knobs, dict) or not all(isinstance(v, dict) or v is None for v in knobs.values())
    ):
        raise ProgramError(f"{where}: knobs must map knob names to {{low, high}} or {{choices}} (or nothing)")
    files = raw.get("files")
    if files is not None and (not isinstance(files, list) or not all(isinstance(f, str) for f in files)):
        raise ProgramError(f"{where}: files must be a list of surface file names")
    return Program(
        prose=prose,
        benchmark=raw.get("benchmark"),
        proposer=raw.get("proposer"),
        max_iterations=_count(raw, "max_iterations", where),
        max_llm_calls=_count(raw, "max_llm_calls", where),
        max_llm_tokens=_count(raw, "max_llm_tokens", where),
        plateau_after=_count(plateau, "after", f"{where}: plateau") or DEFAULT_PLATEAU_AFTER,
        knobs=None if knobs is None else {str(k): dict(v or {}) for k, v in knobs.items()},
        files=None if files is None else tuple(files),
        path=path,
    )


def load(path: Path) -> Program:
    """The program at ``path``; a missing file is an empty program (no caps, nothing narrowed)."""
    if not path.is_file():
        return Program(path=None)
    try:
        return parse(path.read_text(), path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ProgramError(f"{path}: cannot read the program: {exc}") from None


def starter(benchmark: str, schema: Schema, profile: str) -> str:
    """A commented starter program.md for ``benchmark`` (``python -m pytest_autofl init``)."""
    knob_lines = "\n".join(
        f"#   {name}: {{}}    # {knob.type}"
        + (
            f" {list(knob.choices)}"
            if knob.choices
            else f" [{knob.low:g}, {knob.high:g}]"
            if knob.low is not None
            else ""
        )
        + f" - {knob.doc}"
        for name, knob in schema.knobs.items()
    )
    return f"""---
# pytest-autofl research program. The front matter narrows what the campaign may do; it never widens the
# benchmark contract or the mutation schema (a widening is an error naming the field).
benchmark: {benchmark}
proposer: builtin            # or llm (OPENAI_BASE_URL, OPENAI_API_KEY, --autofl-llm-model)
max_iterations: 20           # a session runs at most this many candidates (--autofl-iterations asks for them)
max_llm_calls: 100           # llm proposer: calls per session, repair turns included
max_llm_tokens: 500000       # llm proposer: tokens per session
plateau:
  after: {DEFAULT_PLATEAU_AFTER}                   # scored candidates without a new keep -> a literature review
# knobs:                     # uncomment to restrict the search; unlisted knobs stay at their defaults
{knob_lines}
# files: {list(schema.files)}   # surface files a code change may touch
---
# Research program: {benchmark}

## Intent
What should this campaign find out? (This prose goes to the llm proposer word for word.)

## Task
{profile.strip()}

## Hypotheses
- ...

## Off limits
- Changing the data, the split, the budget or the metric (the contract fixes them; the harness enforces it).
"""
