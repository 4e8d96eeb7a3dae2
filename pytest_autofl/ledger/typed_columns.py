"""A ledger's typed columns, converted column by column (``row.parse_rows`` builds the rows from them)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_autofl.core.candidate import ProposalCost
from pytest_autofl.core.verdict import CRASH, INVALID, LITERATURE, ROW_STATUSES, SCREENED
from pytest_autofl.ledger.columns import NUMERIC_COLUMNS

# One JSON value at an offset: json.loads without its per-call overhead (four JSON columns per row).
_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
NO_SCORE = (CRASH, INVALID, LITERATURE, SCREENED)  # rows without a contract score
_JSON_COLUMNS = {
    "params": dict,
    "seed_scores": dict,
    "confirm": dict,
    "cites": list,
    "curves": dict,
    "retry_reasons": list,
}


def _number(text: str) -> float | None:
    return float(text) if text else None


def _json_value(text: str) -> Any:
    if not text:
        return None
    value, end = _SCAN(text, 0)
    if end != len(text):
        raise ValueError("extra data")
    return value


class TypedColumns:
    """The typed columns of many rows, each converted in one pass (a 10,000-row ledger in a fraction of a
    second): ``numbers`` (None where empty), ``json``, and ``problems``, the first problem of each row that
    does not parse, by index."""

    def __init__(self, table: Mapping[str, Sequence[str]], count: int):
        self.table, self.count = table, count
        self.problems: dict[int, str] = {}
        for index, status in enumerate(self.text("status")):
            if status not in ROW_STATUSES:
                self.problems[index] = f"unknown status {status!r}"
        self.numbers = {name: self._numbers(name) for name in NUMERIC_COLUMNS}
        self.json = {name: self._convert(name, _json_value, "is not JSON") for name in _JSON_COLUMNS}
        for name, kind in _JSON_COLUMNS.items():
            values = self.json[name]
            for index in [i for i, v in enumerate(values) if v is not None and type(v) is not kind]:
                self.problems.setdefault(index, f"column {name} must be a JSON {kind.__name__}")
        for index, scores in enumerate(self.json["seed_scores"]):
            try:
                self.json["seed_scores"][index] = {int(k): float(v) for k, v in (scores or {}).items()}
            except (TypeError, ValueError, AttributeError):
                text = self.text("seed_scores")[index]
                self.problems.setdefault(index, f"column seed_scores = {text[:60]!r} is not seed: score")
        for index, curves in enumerate(self.json["curves"]):
            try:
                self.json["curves"][index] = {
                    int(k): tuple(None if v is None else float(v) for v in c) for k, c in curves.items()
                }
            except (TypeError, ValueError, AttributeError):
                if curves is not None:
                    text = self.text("curves")[index]
                    self.problems.setdefault(index, f"column curves = {text[:60]!r} is not seed: [scores]")

    def _numbers(self, name: str) -> list[float | None]:
        texts = self.text(name)
        if not any(texts):
            return [None] * self.count
        try:  # inline, no call per value: most of the columns of a row are numbers
            return [float(text) if text else None for text in texts]
        except ValueError:
            return self._convert(name, _number, "is not a number")

    def _convert(self, name: str, convert: Callable[[str], Any], what: str) -> list[Any]:
        texts = self.text(name)
        try:
            return [convert(text) for text in texts]
        except (ValueError, StopIteration):  # find every row that does not parse, one by one
            out: list[Any] = []
            for index, text in enumerate(texts):
                try:
                    out.append(convert(text))
                except (ValueError, StopIteration):
                    out.append(None)
                    self.problems.setdefault(index, f"column {name} = {text[:60]!r} {what}")
            return out

    def column(self, name: str) -> Sequence[Any]:
        """The values of the Row field ``name`` for every row."""
        number, js = self.numbers, self.json
        if name in ("params", "confirm", "seed_scores", "curves"):
            return [v or {} for v in js[name]] if name == "params" else js[name]
        if name == "score":
            statuses = self.text("status")
            return [n if s not in NO_SCORE else None for n, s in zip(number["score"], statuses, strict=True)]
        if name == "runtime_seconds":
            return [v or 0.0 for v in number[name]]
        if name == "n_params":
            return [None if v is None else int(v) for v in number[name]]
        if name == "artifacts":
            return [tuple(a for a in t.split(";") if a) for t in self.text(name)]
        if name in ("cites", "retry_reasons"):
            return [tuple(str(c) for c in v or ()) for v in js[name]]
        if name == "recovered":
            return [None if v is None else int(v) for v in number[name]]
        if name == "cost":
            llm = [number[f"llm_{n}"] for n in ("calls", "tokens_in", "tokens_out", "seconds")]
            return [
                None
                if calls is None
                else ProposalCost(int(calls), int(t_in or 0), int(t_out or 0), sec or 0.0)
                for calls, t_in, t_out, sec in zip(*llm, strict=True)
            ]
        return number[name] if name in number else self.text(name)

    def text(self, name: str) -> Sequence[str]:
        return self.table.get(name) or [""] * self.count
