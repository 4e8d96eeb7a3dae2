"""A model's answer, validated into a candidate or rejected with the precise error for a repair turn.

The answer is one JSON object (plain, or inside a ```json fence when the server cannot force JSON)::

    {"hypothesis": "one line", "knobs": {"aggregator": "fedavgm", ...},
     "edits": [{"file": "strategies.py", "search": "exact text", "replace": "new text"}],
     "cites": ["Hsu et al. 2019, arXiv:1909.06335"]}

Each edit's ``search`` must occur exactly once in the file as it stands after the edits before it. The
harness applies the edits, builds the unified diff itself and sends it through the same strict path as a
candidate file's ``patch:`` (schema, paths, fuzz-0 application, AST rules): model text is only ever data here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_autofl.core.candidate import Candidate, CandidateFactory
from pytest_autofl.core.errors import SchemaError
from pytest_autofl.proposers.candidate_file import candidate_from_mapping
from pytest_autofl.proposers.edits import EditError, apply_edits, unified_diff

KEYS = {"hypothesis", "knobs", "edits", "cites"}
_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)


class AnswerError(ValueError):
    """What is wrong with an answer, worded for the model's repair turn."""


def parse(text: str) -> dict[str, Any]:
    """The answer's JSON object: the whole text, a fenced block, or the outermost braces."""
    candidates = [text.strip(), *(m.group(1) for m in _FENCE.finditer(text))]
    if "{" in text and "}" in text:
        candidates.append(text[text.index("{") : text.rindex("}") + 1])
    for chunk in candidates:
        try:
            value = json.loads(chunk)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise AnswerError(
        "the answer is not one JSON object; answer with exactly one JSON object and nothing else"
    )


def to_candidate(
    answer: dict[str, Any], factory: CandidateFactory, surface_dir: Path, surface: Mapping[str, str]
) -> Candidate:
    """The candidate an answer describes, through the candidate-file path; AnswerError says what is wrong."""
    unknown = sorted(set(answer) - KEYS)
    if unknown:
        raise AnswerError(f"unknown key(s) {unknown}; the answer has {sorted(KEYS)}")
    hypothesis = answer.get("hypothesis")
    if not isinstance(hypothesis, str) or not hypothesis.strip():
        raise AnswerError("'hypothesis' must be one line saying what the candidate tests and why")
    try:
        diff = unified_diff(surface, apply_edits(answer.get("edits") or [], surface))
    except EditError as exc:
        raise AnswerError(str(exc)) from None
    mapping = {"description": hypothesis.strip().splitlines()[0][:200], "knobs": answer.get("knobs") or {}}
    mapping.update({"patch": diff} if diff else {})
    mapping.update({"cites": answer["cites"]} if answer.get("cites") else {})
    try:
        return candidate_from_mapping(mapping, Path("answer"), factory, surface_dir, "llm", "llm")
    except SchemaError as exc:
        raise AnswerError(str(exc).removeprefix("answer: ")) from None
