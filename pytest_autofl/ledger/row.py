"""One ledger row as a typed record: the only place that knows how a verdict is written as TSV fields and read
back. The search builds a ``Row`` once; the controller writes it; everything that reads the ledger (state,
history, reruns, the summary) reads ``Row`` values, never raw strings.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_autofl.core.candidate import ProposalCost
from pytest_autofl.core.contract import canonical_json
from pytest_autofl.core.verdict import KEEP, LITERATURE
from pytest_autofl.ledger.columns import COLUMNS
from pytest_autofl.ledger.typed_columns import NO_SCORE, TypedColumns


class RowFormatError(ValueError):
    """A field of a ledger row does not parse as its column's type."""


def _opt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


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
    retry_reasons: tuple[
        str, ...
    ] = ()  # why each seed run the machine broke ran again (``retries``: how many)
    recovered: int | None = None  # messaging errors FLARE recovered from in its seed runs (not failures)
    infra: str = ""  # the fingerprint of the infrastructure settings it ran on (``run.infrastructure``)

    @property
    def clean(self) -> bool:
        """A row with a score: neither crash nor invalid (nor a literature event, nor dropped by the screen)."""
        return self.status not in NO_SCORE

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
            **self._infrastructure_fields(),
        }
        assert tuple(values) == COLUMNS
        return values

    def _infrastructure_fields(self) -> dict[str, str]:
        """What the machine did to its runs: retries (counted in a row that ran), recoveries, the settings."""
        return {
            "retries": str(len(self.retry_reasons)) if self.infra else "",
            "retry_reasons": json.dumps(list(self.retry_reasons)) if self.retry_reasons else "",
            "recovered": "" if self.recovered is None else str(self.recovered),
            "infra": self.infra,
        }

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
