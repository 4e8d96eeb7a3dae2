"""One ledger row as a typed record: the only place that knows how a verdict is written as TSV fields and read
back. The search builds a ``Row`` once; the controller writes it; everything that reads the ledger (state,
history, reruns, the summary) reads ``Row`` values, never raw strings.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_autofl.core.candidate import ProposalCost
from pytest_autofl.core.contract import canonical_json
from pytest_autofl.core.verdict import CRASH, INVALID, KEEP, LITERATURE, ROW_STATUSES, SCREENED
from pytest_autofl.ledger.columns import COLUMNS, NUMERIC_COLUMNS


class RowFormatError(ValueError):
    """A field of a ledger row does not parse as its column's type."""


def _opt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


# One JSON value at an offset: json.loads without its per-call overhead (four JSON columns per row).
_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_NO_SCORE = (CRASH, INVALID, LITERATURE, SCREENED)  # rows without a contract score
_JSON_COLUMNS = {"params": dict, "seed_scores": dict, "confirm": dict, "cites": list, "curves": dict}


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
            return [n if s not in _NO_SCORE else None for n, s in zip(number["score"], statuses, strict=True)]
        if name == "runtime_seconds":
            return [v or 0.0 for v in number[name]]
        if name == "n_params":
            return [None if v is None else int(v) for v in number[name]]
        if name == "artifacts":
            return [tuple(a for a in t.split(";") if a) for t in self.text(name)]
        if name == "cites":
            return [tuple(str(c) for c in v or ()) for v in js[name]]
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


@dataclass(frozen=True)
class Row:
    """A verdict row. ``score`` is None for crash and invalid rows (written as ``0.000000``, as NVFlare's
    Auto-FL ledger does); ``seeds`` and ``n_seeds`` are derived from ``seed_scores``."""

    status: str
    candidate_id: str
    params: dict[str, Any]
    description: str
    target: str
    budget: str
    score: float | None
    runtime_seconds: float
    artifacts: tuple[str, ...]
    seed_scores: dict[int, float]
    reason: str
    contract_sha: str
    split_sha: str
    benchmark: str
    env: str
    delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    noise: float | None = None
    threshold: float | None = None
    incumbent_id: str = ""
    n_params: int | None = None
    comm_bytes: float | None = None
    cost_ratio: float | None = None
    seconds_per_run: float | None = None
    confirm: dict[str, Any] | None = None  # {"seeds": [...], "candidate": {seed: score}, "incumbent": {...}}
    surface_sha: str = ""
    patch_sha: str = ""
    proposer: str = ""
    source: str = ""
    cites: tuple[str, ...] = ()
    commit: str = ""
    nvflare_version: str = ""
    torch_version: str = ""
    timestamp_utc: str = ""
    row_id: str = ""
    sandbox: str = ""  # bwrap, off, or none (wanted, and none could be made: code changes were refused)
    chain: str = ""  # the ledger's tamper-evidence link, set by the store when the row is appended
    cpu_seconds: float | None = None  # CPU seconds per seed run, as the harness' meter measured them
    cost: ProposalCost | None = None  # what proposing it cost (an LLM proposer): columns llm_*
    event: str = ""  # the literature review (``lit-0001``) this row is, or was proposed by
    screen_score: float | None = None  # its score on the contract's screen (one seed, fewer rounds)
    screen_incumbent: float | None = None  # the incumbent's on the same screen: what it was held to
    curves: dict[int, tuple[float | None, ...]] | None = None  # validation per round, by seed (curves only)

    @property
    def clean(self) -> bool:
        """A row with a score: neither crash nor invalid (nor a literature event, nor dropped by the screen)."""
        return self.status not in _NO_SCORE

    @property
    def is_literature(self) -> bool:
        return self.status == LITERATURE

    @property
    def is_keep(self) -> bool:
        return self.status == KEEP

    @property
    def trial_dir(self) -> str:
        return self.artifacts[0] if self.artifacts else ""

    @property
    def confirm_seeds(self) -> tuple[int, ...]:
        return tuple(int(s) for s in (self.confirm or {}).get("seeds", []))

    def _score_field(self) -> str:
        """Crash and invalid rows carry 0.000000 (as NVFlare's Auto-FL ledger does); a literature row none."""
        if self.is_literature:
            return ""
        return f"{self.score:.6f}" if self.score is not None and self.clean else "0.000000"

    def fields(self) -> dict[str, str]:
        """The row as TSV fields, one per column."""
        values = {
            "commit": self.commit,
            "score": self._score_field(),
            "runtime_seconds": f"{self.runtime_seconds:.1f}",
            "budget": self.budget,
            "status": self.status,
            "target": self.target,
            "description": self.description,
            "artifacts": ";".join(self.artifacts),
            "candidate_id": self.candidate_id,
            "params": canonical_json(self.params),
            "seeds": json.dumps(sorted(self.seed_scores)),
            "seed_scores": json.dumps({str(k): v for k, v in sorted(self.seed_scores.items())}),
            "delta": _opt(self.delta, "+.6f"),
            "ci_low": _opt(self.ci_low, "+.6f"),
            "ci_high": _opt(self.ci_high, "+.6f"),
            "n_seeds": str(len(self.seed_scores)),
            "noise": _opt(self.noise, ".6f"),
            "threshold": _opt(self.threshold, ".6f"),
            "incumbent_id": self.incumbent_id,
            "reason": self.reason,
            "n_params": "" if self.n_params is None else str(self.n_params),
            "comm_bytes": _opt(self.comm_bytes, ".0f"),
            "cost_ratio": _opt(self.cost_ratio, ".3f"),
            "seconds_per_run": _opt(self.seconds_per_run, ".1f"),
            "confirm": json.dumps(self.confirm) if self.confirm else "",
            "contract_sha": self.contract_sha,
            "split_sha": self.split_sha,
            "surface_sha": self.surface_sha,
            "patch_sha": self.patch_sha,
            "benchmark": self.benchmark,
            "env": self.env,
            "nvflare_version": self.nvflare_version,
            "torch_version": self.torch_version,
            "timestamp_utc": self.timestamp_utc,
            "row_id": self.row_id,
            "proposer": self.proposer,
            "source": self.source,
            "cites": json.dumps(list(self.cites)) if self.cites else "",
            "sandbox": self.sandbox,
            "chain": self.chain,
            "cpu_seconds": _opt(self.cpu_seconds, ".2f"),
            "llm_calls": "" if self.cost is None else str(self.cost.calls),
            "llm_tokens_in": "" if self.cost is None else str(self.cost.tokens_in),
            "llm_tokens_out": "" if self.cost is None else str(self.cost.tokens_out),
            "llm_seconds": "" if self.cost is None else f"{self.cost.seconds:.2f}",
            "event": self.event,
            "screen_score": _opt(self.screen_score, ".6f"),
            "screen_incumbent": _opt(self.screen_incumbent, ".6f"),
            "curves": json.dumps({str(k): list(v) for k, v in sorted(self.curves.items())})
            if self.curves
            else "",
        }
        assert tuple(values) == COLUMNS
        return values

    @classmethod
    def parse(cls, fields: Mapping[str, str]) -> Row:
        """A row from its TSV fields; raises RowFormatError naming what does not parse."""
        (row,), problems = parse_rows({name: [text] for name, text in fields.items()}, 1)
        if row is None:
            raise RowFormatError(problems[0])
        return row


_FIELDS = tuple(f.name for f in dataclasses.fields(Row))


def _built(values: tuple[Any, ...]) -> Row:
    """A Row from its field values, without the frozen dataclass' ``__init__`` (one ``object.__setattr__`` per
    field: 5x slower, most of a large ledger's read time); equal to ``Row(*values)``."""
    row = object.__new__(Row)
    row.__dict__.update(zip(_FIELDS, values, strict=True))
    return row


def parse_rows(table: Mapping[str, Sequence[str]], count: int) -> tuple[list[Row | None], dict[int, str]]:
    """Typed rows from ``count`` rows of TSV fields given column by column (None where a row does not
    parse), and the problem of each such row, by index: every row is read, so all problems come in one pass."""
    columns = TypedColumns(table, count)
    values = zip(*(columns.column(name) for name in _FIELDS), strict=True)
    typed: list[Row | None] = [_built(v) for v in values]
    for index in columns.problems:
        typed[index] = None
    return typed, columns.problems
