"""A candidate: a bounded change (knob values, for now) with a stable id derived from its content."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .contract import canonical_json, sha256_of


@dataclass(frozen=True)
class Candidate:
    """``params`` is the complete, validated knob set; ``id`` depends on nothing else."""

    params: dict[str, Any]
    family: str
    description: str
    source: str = "builtin"
    changed: tuple[str, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """What makes two candidates the same experiment (the family label is only for people)."""
        return params_key(self.params)

    @property
    def id(self) -> str:
        return f"{self.family}-{self.key[:10]}"

    @property
    def params_json(self) -> str:
        return canonical_json(self.params)


def params_key(params: dict[str, Any]) -> str:
    return sha256_of({"params": params})


def family_of(params: dict[str, Any], reference: dict[str, Any]) -> str:
    """A short method-family label: the aggregator, +prox when the proximal term is on, +arch for a model change."""
    name = str(params.get("aggregator", "custom"))
    if float(params.get("fedprox_mu", 0) or 0) > 0:
        name += "+prox"
    if params.get("arch") != reference.get("arch"):
        name += f"+{params.get('arch')}"
    return name


def changed_knobs(params: dict[str, Any], reference: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(k for k in params if params.get(k) != reference.get(k)))


def describe(params: dict[str, Any], reference: dict[str, Any]) -> str:
    diff = changed_knobs(params, reference)
    if not diff:
        return "baseline (schema defaults)"
    return ", ".join(
        f"{k}={params[k]:.4g}" if isinstance(params[k], float) else f"{k}={params[k]}" for k in diff
    )
