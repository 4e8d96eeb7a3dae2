"""One ledger row as a typed record: the only place that knows how a verdict is written as TSV fields and read
back. The search builds a ``Row`` once; the controller writes it; everything that reads the ledger (state,
history, reruns, the summary) reads ``Row`` values, never raw strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_autofl.core.candidate import ProposalCost
from pytest_autofl.core.contract import canonical_json
from pytest_autofl.core.verdict import CRASH, INVALID, KEEP, LITERATURE, SCREENED
from pytest_autofl.ledger.columns import COLUMNS


class RowFormatError(ValueError):
    """A field of a ledger row does not parse as its column's type."""


def _opt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _float(fields: Mapping[str, str], name: str) -> float | None:
    text = fields.get(name, "")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise RowFormatError(f"column {name} = {text!r} is not a number") from None


def _json(fields: Mapping[str, str], name: str, default: Any) -> Any:
    text = fields.get(name, "")
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        raise RowFormatError(f"column {name} = {text[:60]!r} is not JSON") from None


def _cost(fields: Mapping[str, str]) -> ProposalCost | None:
    if not fields.get("llm_calls"):
        return None
    numbers = [_float(fields, f"llm_{n}") or 0.0 for n in ("calls", "tokens_in", "tokens_out", "seconds")]
    return ProposalCost(int(numbers[0]), int(numbers[1]), int(numbers[2]), numbers[3])


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

    @property
    def clean(self) -> bool:
        """A row with a score: neither crash nor invalid (nor a literature event, nor dropped by the screen)."""
        return self.status not in (CRASH, INVALID, LITERATURE, SCREENED)

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
        }
        assert tuple(values) == COLUMNS
        return values

    @classmethod
    def parse(cls, fields: Mapping[str, str]) -> Row:
        """A row from its TSV fields; raises RowFormatError naming the column that does not parse."""
        status = fields["status"]
        clean = status not in (CRASH, INVALID, LITERATURE, SCREENED)
        n_params = _float(fields, "n_params")
        seed_scores = _json(fields, "seed_scores", {})
        params = _json(fields, "params", {})
        if not isinstance(seed_scores, dict) or not isinstance(params, dict):
            raise RowFormatError("columns params and seed_scores must be JSON objects")
        try:
            scores = {int(k): float(v) for k, v in seed_scores.items()}
        except (TypeError, ValueError):
            raise RowFormatError(
                f"column seed_scores = {fields['seed_scores'][:60]!r} is not seed: score"
            ) from None
        return cls(
            status=status,
            candidate_id=fields["candidate_id"],
            params=params,
            description=fields["description"],
            target=fields["target"],
            budget=fields["budget"],
            score=_float(fields, "score") if clean else None,
            runtime_seconds=_float(fields, "runtime_seconds") or 0.0,
            artifacts=tuple(a for a in fields["artifacts"].split(";") if a),
            seed_scores=scores,
            reason=fields["reason"],
            contract_sha=fields["contract_sha"],
            split_sha=fields["split_sha"],
            benchmark=fields["benchmark"],
            env=fields["env"],
            delta=_float(fields, "delta"),
            ci_low=_float(fields, "ci_low"),
            ci_high=_float(fields, "ci_high"),
            noise=_float(fields, "noise"),
            threshold=_float(fields, "threshold"),
            incumbent_id=fields["incumbent_id"],
            n_params=None if n_params is None else int(n_params),
            comm_bytes=_float(fields, "comm_bytes"),
            cost_ratio=_float(fields, "cost_ratio"),
            seconds_per_run=_float(fields, "seconds_per_run"),
            confirm=_json(fields, "confirm", None),
            surface_sha=fields["surface_sha"],
            patch_sha=fields["patch_sha"],
            proposer=fields.get("proposer", ""),
            source=fields.get("source", ""),
            cites=tuple(str(c) for c in _json(fields, "cites", [])),
            commit=fields["commit"],
            nvflare_version=fields["nvflare_version"],
            torch_version=fields["torch_version"],
            timestamp_utc=fields["timestamp_utc"],
            row_id=fields["row_id"],
            sandbox=fields.get("sandbox", ""),
            chain=fields.get("chain", ""),
            cpu_seconds=_float(fields, "cpu_seconds"),
            cost=_cost(fields),
            event=fields.get("event", ""),
            screen_score=_float(fields, "screen_score"),
            screen_incumbent=_float(fields, "screen_incumbent"),
        )
