"""Method cards (``skills/literature/cards/*.yaml``): a published method with its citation, the challenge it
addresses, and its implementation on this surface as knob values and SEARCH/REPLACE edits, in three runs:
``faithful`` (as published), ``variant`` (a nearby setting) and ``ablation`` (one component removed).

Edits may hold ``$name`` placeholders that each run fills from its ``values``. A card's candidates are built
through the candidate-file path (schema, strict patch, AST rules), so a card is never trusted more than a file.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from pytest_autofl.core.candidate import Candidate, CandidateFactory
from pytest_autofl.core.errors import AutoFLError, SchemaError
from pytest_autofl.proposers.candidate_file import candidate_from_mapping
from pytest_autofl.proposers.edits import EditError, apply_edits, unified_diff

RUNS = ("faithful", "variant", "ablation")
RUN_MEANING = {
    "faithful": "the method as published",
    "variant": "a nearby setting of the same method",
    "ablation": "the method with one component removed, to tell where its gain comes from",
}
PRIORS = ("gain", "evidence", "simplicity", "runtime_cost")  # each 1-5, the card author's stated judgement
REQUIRED = (
    "id",
    "method",
    "title",
    "authors",
    "venue",
    "year",
    "challenges",
    "family",
    "mechanism",
    "effect",
    "risks",
    "compute",
    "priors",
    "runs",
)
OPTIONAL = ("arxiv", "doi", "edits")
_ARXIV = re.compile(r"^\d{4}\.\d{4,5}$")


class CardError(AutoFLError):
    """A card file is malformed, or one of its runs does not make a valid candidate."""


@dataclass(frozen=True)
class Card:
    id: str
    method: str
    title: str
    authors: tuple[str, ...]
    venue: str
    year: int
    arxiv: str
    doi: str
    challenges: tuple[str, ...]
    family: str  # the built-in family it extends or replaces (novelty and known-null look it up)
    mechanism: str
    effect: str
    risks: str
    compute: float  # clients' compute relative to the baseline's
    priors: dict[str, int]
    edits: tuple[dict[str, str], ...]
    runs: dict[str, dict[str, Any]]
    path: Path

    @property
    def citation(self) -> str:
        surname = self.authors[0].split()[-1]
        where = f"arXiv:{self.arxiv}" if self.arxiv else f"doi:{self.doi}"
        return f"{surname} et al. {self.year}, {self.method} ({self.venue}), {where}"

    def brief(self, run: str) -> str:
        """The card for a model asked to implement its ``run``: the method, and this card's own implementation
        as a reference (the model may adapt it)."""
        edits = json.dumps(list(self.edits), indent=1)
        return (
            f"Implement the {run} run ({RUN_MEANING[run]}) of {self.method}: {self.title} ({self.citation}).\n"
            f"Mechanism: {self.mechanism}\nExpected effect: {self.effect}\nRisks: {self.risks}\n"
            f"The card's reference implementation: edits {edits}\nwith $placeholders per run "
            f"{json.dumps(self.runs)}.\n"
            "You may instead implement another card of the library, or a method of your own with a real citation "
            "(title, authors, venue, year, arXiv id or DOI). Cite what you implement in 'cites'."
        )

    def identifiers(self) -> set[str]:
        """What a citation may name to resolve to this card: its arXiv id, DOI, method name or id."""
        return {i.lower() for i in (self.arxiv, self.doi, self.method, self.id) if i}

    def mapping(self, run: str, surface: dict[str, str]) -> dict[str, Any]:
        """The candidate-file mapping of one run; CardError if its edits do not apply."""
        spec = self.runs[run]
        try:
            edits = (
                [
                    {k: string.Template(v).substitute(spec.get("values", {})) for k, v in e.items()}
                    for e in self.edits
                ]
                if spec.get("edits", True)
                else []
            )
            diff = unified_diff(surface, apply_edits(edits, surface))
        except (KeyError, ValueError, EditError) as exc:
            raise CardError(f"{self.path}: run {run}: {exc}") from None
        out: dict[str, Any] = {
            "description": f"{self.method} {run}: {spec.get('note', '')}".strip().rstrip(":"),
            "knobs": dict(spec.get("knobs") or {}),
            "cites": [self.citation],
        }
        return out | ({"patch": diff} if diff else {})

    def candidate(
        self, run: str, factory: CandidateFactory, surface_dir: Path, surface: dict[str, str], event: str
    ) -> Candidate:
        try:
            cand = candidate_from_mapping(
                self.mapping(run, surface),
                self.path,
                factory,
                surface_dir,
                "literature",
                f"card:{self.id}/{run}",
            )
        except SchemaError as exc:
            raise CardError(f"{exc} (run {run})") from None
        return replace(cand, event=event, family=f"{self.id}-{run}")


def _card(raw: Any, path: Path) -> Card:
    if not isinstance(raw, dict):
        raise CardError(f"{path}: a card is a mapping with {list(REQUIRED)}")
    if missing := [k for k in REQUIRED if raw.get(k) in (None, "", [], {})]:
        raise CardError(f"{path}: missing field(s) {missing}")
    if unknown := sorted(set(raw) - set(REQUIRED) - set(OPTIONAL)):
        raise CardError(f"{path}: unknown field(s) {unknown}")
    arxiv, doi = str(raw.get("arxiv") or ""), str(raw.get("doi") or "")
    if not arxiv and not doi:
        raise CardError(f"{path}: a card cites its paper by 'arxiv' or 'doi'")
    if arxiv and not _ARXIV.match(arxiv):
        raise CardError(f"{path}: arxiv {arxiv!r} is not an arXiv id like 2003.00295")
    if doi and not doi.startswith("10."):
        raise CardError(f"{path}: doi {doi!r} must start with 10.")
    if not isinstance(raw["year"], int) or not 1990 <= raw["year"] <= 2100:
        raise CardError(f"{path}: year must be a year, got {raw['year']!r}")
    priors = raw["priors"]
    if (
        not isinstance(priors, dict)
        or sorted(priors) != sorted(PRIORS)
        or not all(isinstance(v, int) and 1 <= v <= 5 for v in priors.values())
    ):
        raise CardError(f"{path}: priors must give {list(PRIORS)}, each an integer 1-5")
    runs = raw["runs"]
    if (
        not isinstance(runs, dict)
        or sorted(runs) != sorted(RUNS)
        or not all(isinstance(r, dict) for r in runs.values())
    ):
        raise CardError(f"{path}: runs must be {list(RUNS)}, each a mapping of knobs, values, note")
    if not isinstance(raw.get("edits") or [], list):
        raise CardError(f"{path}: edits must be a list of {{file, search, replace}}")
    if not isinstance(raw["compute"], (int, float)) or raw["compute"] <= 0:
        raise CardError(f"{path}: compute must be a positive factor of the baseline's client compute")
    return Card(
        id=str(raw["id"]),
        method=str(raw["method"]),
        title=str(raw["title"]),
        authors=tuple(str(a) for a in raw["authors"]),
        venue=str(raw["venue"]),
        year=raw["year"],
        arxiv=arxiv,
        doi=doi,
        challenges=tuple(str(c) for c in raw["challenges"]),
        family=str(raw["family"]),
        mechanism=str(raw["mechanism"]).strip(),
        effect=str(raw["effect"]).strip(),
        risks=str(raw["risks"]).strip(),
        compute=float(raw["compute"]),
        priors=dict(priors),
        edits=tuple(raw.get("edits") or ()),
        runs=runs,
        path=path,
    )


def load_cards(directory: Path) -> list[Card]:
    """Every card in ``directory`` (none if it does not exist), sorted by id; CardError names the bad file."""
    if not directory.is_dir():
        return []
    cards = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CardError(f"{path}: cannot read the card: {exc}") from None
        cards.append(_card(raw, path))
    ids = [c.id for c in cards]
    if dupes := sorted({i for i in ids if ids.count(i) > 1}):
        raise CardError(f"{directory}: card id(s) {dupes} used more than once")
    return sorted(cards, key=lambda c: c.id)


def library_text(cards: list[Card]) -> str:
    """The library for a model's prompt: a line per card, what it addresses and how to cite it."""
    return "\n".join(
        f"- {c.id}: {c.method}, {c.citation}; addresses {', '.join(c.challenges)}; {c.mechanism.split('. ')[0]}"
        for c in cards
    )


def verified(candidate: Candidate, cards: list[Card]) -> Candidate:
    """The candidate with each citation that names no card (arXiv id, DOI or method) marked unverified."""
    if not candidate.cites:
        return candidate
    names = set().union(*(c.identifiers() for c in cards)) if cards else set()
    cites = tuple(
        c if any(n in c.lower() for n in names) or c.endswith("(unverified)") else f"{c} (unverified)"
        for c in candidate.cites
    )
    old, new = "; ".join(candidate.cites), "; ".join(cites)
    return replace(
        candidate, cites=cites, description=candidate.description.replace(f"[src: {old}]", f"[src: {new}]")
    )


def card_problems(
    cards: list[Card], factory: CandidateFactory, surface_dir: Path, surface: dict[str, str]
) -> list[str]:
    """Every run of every card built as a candidate: the problems found (``--autofl-check``)."""
    problems = []
    for card in cards:
        for run in RUNS:
            try:
                card.candidate(run, factory, surface_dir, surface, "check")
            except AutoFLError as exc:
                problems.append(str(exc))
    return problems
