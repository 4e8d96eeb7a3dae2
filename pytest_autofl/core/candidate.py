"""A candidate: a bounded change (knob values, optionally replacement surface files) with a stable id derived
from its content."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pytest_autofl.core.contract import sha256_of
from pytest_autofl.core.schema import Schema


@dataclass(frozen=True)
class ProposalCost:
    """What proposing a candidate cost a model-backed proposer: calls, tokens in and out, seconds waited."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Candidate:
    """``params`` is the complete, validated knob set; ``files`` the replacement surface files (name, text),
    sorted; ``id`` depends on nothing else."""

    params: dict[str, Any]
    family: str
    description: str
    proposer: str = "builtin"  # the proposer that made it (registry name), or "file" for a candidate file
    source: str = ""  # where within the proposer, e.g. "calibration", "narrow", "file:prox.yaml"
    files: tuple[tuple[str, str], ...] = ()
    diff: str = ""  # the unified diff the files came from, kept for the artifacts (the files are what counts)
    cites: tuple[str, ...] = ()  # the method's citations, recorded in the ledger
    cost: ProposalCost | None = None  # a model-backed proposer's cost (ledger columns llm_*)
    transcript: str = ""  # its conversation as JSON, written to the trial as proposal.json
    event: str = ""  # the literature review that proposed it (``lit-0001``)

    @property
    def patch_sha(self) -> str:
        """Hash of the replacement files ("" for a knob-only candidate)."""
        if not self.files:
            return ""
        return sha256_of({name: hashlib.sha256(text.encode()).hexdigest() for name, text in self.files})

    @property
    def key(self) -> str:
        """What makes two candidates the same experiment (the family label is only for people)."""
        return candidate_key(self.params, self.patch_sha)

    @property
    def id(self) -> str:
        return f"{self.family}-{self.key[:10]}"


def candidate_key(params: dict[str, Any], patch_sha: str = "") -> str:
    if not patch_sha:
        return sha256_of({"params": params})
    return sha256_of({"params": params, "patch_sha": patch_sha})


def family_of(params: dict[str, Any], reference: dict[str, Any]) -> str:
    """A short method-family label: the aggregator, +prox when the proximal term is on, +arch for a model change."""
    name = str(params.get("aggregator", "custom"))
    if float(params.get("fedprox_mu", 0) or 0) > 0:
        name += "+prox"
    if params.get("arch") != reference.get("arch"):
        name += f"+{params.get('arch')}"
    return name


def family_of_id(candidate_id: str) -> str:
    """The method family is the candidate id without its content hash (``fedavgm+prox-1a2b3c4d5e``)."""
    head, _, tail = candidate_id.rpartition("-")
    return head if head and len(tail) == 10 else candidate_id


def changed_knobs(params: dict[str, Any], reference: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(k for k in params if params.get(k) != reference.get(k)))


def describe(params: dict[str, Any], reference: dict[str, Any]) -> str:
    diff = changed_knobs(params, reference)
    if not diff:
        return "baseline (schema defaults)"
    return ", ".join(
        f"{k}={params[k]:.4g}" if isinstance(params[k], float) else f"{k}={params[k]}" for k in diff
    )


class CandidateFactory:
    """Candidates from knob overrides: the schema's defaults completed and validated (a SchemaError names every
    problem), with the family label and description derived from the knobs that differ from the defaults."""

    def __init__(self, schema: Schema):
        self.schema = schema
        self.defaults = schema.defaults()

    def make(self, overrides: dict[str, Any], proposer: str = "builtin", source: str = "") -> Candidate:
        params = self.schema.complete(overrides)
        return Candidate(
            params=params,
            family=family_of(params, self.defaults),
            description=describe(params, self.defaults),
            proposer=proposer,
            source=source,
        )
