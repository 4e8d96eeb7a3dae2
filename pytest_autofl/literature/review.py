"""A literature review on a plateau: the symptoms the ledger shows, every card scored against them, the cards
that cannot or should not run dropped with the reason, and the batch of three linked runs of the best card.

Score (each input 1-5): ``2*gain + 2*contract_safety + simplicity + evidence + novelty - runtime_cost``.
- gain: the card's prior, +1 (at most 5) when a challenge it addresses is among the symptoms;
- contract_safety: 5, -1 for a code change, -1 when its clients compute over 1.5x the baseline's;
- simplicity, evidence, runtime_cost: the card's stated priors;
- novelty: 5 when the ledger has no row of the card's family, 4 when that family has a keep or narrow,
  2 when it only ever lost.
Dropped: a card already run (its faithful run is in the ledger), one whose compute exceeds the contract's
``max_cpu_ratio`` or at it (the measured-compute bound would void it), one the schema or the program does not allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_autofl.control.plateau import SCORED
from pytest_autofl.core.candidate import Candidate, CandidateFactory, family_of_id
from pytest_autofl.core.contract import Contract
from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.core.verdict import CRASH, KEEP, NARROW
from pytest_autofl.ledger.row import Row
from pytest_autofl.literature.cards import RUNS, Card

SOURCE = "literature:"  # a literature row's source column: literature:<card id>
SKEWED_ALPHA = 1.0  # a Dirichlet split at or below this is label skew
DRIFT_FAMILIES = ("fedavg+prox", "scaffold")
SERVER_FAMILIES = ("fedavgm", "fedadam")


@dataclass(frozen=True)
class Assessment:
    card: Card
    gain: int
    contract_safety: int
    novelty: int

    @property
    def total(self) -> int:
        p = self.card.priors
        return (
            2 * self.gain
            + 2 * self.contract_safety
            + p["simplicity"]
            + p["evidence"]
            + self.novelty
            - p["runtime_cost"]
        )

    def line(self) -> str:
        p = self.card.priors
        return (
            f"{self.card.id}: {self.total} = 2*{self.gain} + 2*{self.contract_safety} + {p['simplicity']} + "
            f"{p['evidence']} + {self.novelty} - {p['runtime_cost']}"
        )


@dataclass(frozen=True)
class Review:
    event: str
    symptoms: tuple[str, ...]
    ranked: tuple[Assessment, ...]  # the eligible cards, best first
    dropped: tuple[tuple[str, str], ...]  # (card id, why)
    batch: tuple[Candidate, ...] = field(default=())  # the best card's faithful, variant and ablation runs

    @property
    def card(self) -> Card:
        return self.ranked[0].card


def _families(rows: Sequence[Row]) -> dict[str, set[str]]:
    """Family -> the verdicts its rows got."""
    out: dict[str, set[str]] = {}
    for row in rows:
        if row.status in SCORED or row.status == CRASH:
            out.setdefault(family_of_id(row.candidate_id), set()).add(row.status)
    return out


def _of(family: str, names: tuple[str, ...]) -> bool:
    """``fedadam+patch`` and ``fedadam+mlp_wide`` are of the fedadam family."""
    return any(family == n or family.startswith(n + "+") for n in names)


def symptoms(rows: Sequence[Row], contract: Contract, since: int) -> tuple[str, ...]:
    """What the ledger (and the contract's split) shows: the challenges a card may address."""
    found = []
    split = contract.split
    if split.get("partition", "dirichlet") == "dirichlet" and float(split["dirichlet_alpha"]) <= SKEWED_ALPHA:
        found.append("label skew")
    families = _families(rows)
    lost = {f for f, verdicts in families.items() if not verdicts & {KEEP, NARROW}}
    if any(_of(f, DRIFT_FAMILIES) for f in lost):
        found.append("client drift")
    if any(_of(f, SERVER_FAMILIES) for f in lost):
        found.append("slow convergence")
    if sum(1 for r in rows[since:] if r.status == CRASH) >= 2:
        found.append("repeated crashes")
    return tuple(found)


def _novelty(card: Card, families: dict[str, set[str]]) -> int:
    related = [v for f, v in families.items() if f.split("+")[0] == card.family]
    if not related:
        return 5
    return 4 if any(v & {KEEP, NARROW} for v in related) else 2


def review(
    cards: Sequence[Card],
    rows: Sequence[Row],
    contract: Contract,
    factory: CandidateFactory,
    surface_dir: Path,
    surface: dict[str, str],
    since: int,
) -> Review:
    """Score every card; ``batch`` is empty when none is eligible."""
    event = f"lit-{1 + sum(1 for r in rows if r.is_literature):04d}"
    found = symptoms(rows, contract, since)
    families = _families(rows)
    tried = {r.source for r in rows}
    ranked, dropped = [], []
    for card in cards:
        if f"card:{card.id}/faithful" in tried:
            dropped.append((card.id, "already run"))
            continue
        if card.compute >= contract.max_cpu_ratio:  # at the cap, the meter would refuse it half the time
            dropped.append(
                (
                    card.id,
                    f"compute {card.compute:g}x: not below the contract's cap of {contract.max_cpu_ratio:g}x",
                )
            )
            continue
        try:
            batch = tuple(card.candidate(run, factory, surface_dir, surface, event) for run in RUNS)
        except AutoFLError as exc:
            dropped.append((card.id, f"not allowed here: {exc}"))
            continue
        gain = min(5, card.priors["gain"] + (1 if set(card.challenges) & set(found) else 0))
        safety = 5 - (1 if card.edits else 0) - (1 if card.compute > 1.5 else 0)
        ranked.append((Assessment(card, gain, safety, _novelty(card, families)), batch))
    ranked.sort(key=lambda pair: (-pair[0].total, pair[0].card.id))
    return Review(
        event,
        found,
        tuple(a for a, _ in ranked),
        tuple(dropped),
        ranked[0][1] if ranked else (),
    )


def worksheet(review: Review, plateau_reason: str) -> str:
    """The review as markdown: the trigger, the symptoms, every card's score, what was dropped and why."""
    lines = [f"# Literature review {review.event}", "", f"Trigger: {plateau_reason}.", ""]
    lines += [
        "## Symptoms (challenge cards)",
        *(f"- {s}" for s in review.symptoms or ("none beyond the plateau",)),
    ]
    lines += [
        "",
        "## Proposal cards, scored",
        "score = 2*gain + 2*contract_safety + simplicity + evidence + novelty - runtime_cost",
        "",
    ]
    for a in review.ranked:
        card = a.card
        lines += [
            f"- **{card.method}** ({card.citation}): {a.line()}",
            f"  - challenges: {', '.join(card.challenges)}; mechanism: {card.mechanism}",
            f"  - expected: {card.effect} Risks: {card.risks}",
        ]
    lines += ["", "## Dropped", *(f"- {cid}: {why}" for cid, why in review.dropped or (("none", ""),))]
    if review.batch:
        lines += ["", f"## Batch ({review.card.id})", *(f"- {c.id}: {c.description}" for c in review.batch)]
    return "\n".join(lines) + "\n"
