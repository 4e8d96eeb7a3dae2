"""The proposer family: what a proposer sees (a read-only view of the campaign) and the two calls it gets.

A proposer is asked for one candidate at a time with ``propose(view)`` and told each verdict row this process
recorded with ``tell(view, row)`` (Optuna's ask/tell; ``tell`` may do nothing). It runs outside every lock: the
search reserves the candidate afterwards and asks again if another xdist worker took the same one meanwhile.
Proposers import neither pytest nor the run room; they get everything through the view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pytest_autofl.control.program import NO_PROGRAM, Program
from pytest_autofl.core.candidate import Candidate, CandidateFactory, candidate_key
from pytest_autofl.core.contract import Contract
from pytest_autofl.core.registry import Registry
from pytest_autofl.core.schema import Schema
from pytest_autofl.ledger.row import Row


@dataclass(frozen=True)
class Running:
    """A candidate another xdist worker has reserved and not yet recorded."""

    candidate_id: str
    params: dict[str, Any]
    patch_sha: str = ""


@dataclass(frozen=True)
class Assignment:
    """What the harness asks of a proposer that implements literature cards (``implements_cards = True``): one
    run of a review's batch; ``brief`` says the review, the card and what the run means."""

    event: str  # the review's event id, which the candidate's row carries
    run: str  # faithful | variant | ablation
    brief: str


@dataclass(frozen=True)
class CampaignView:
    """The campaign as a proposer may see it: selection data only (no test score exists here)."""

    contract: Contract
    schema: Schema
    factory: CandidateFactory
    surface: Mapping[str, str]  # the surface files a candidate may change: name -> current text
    history: tuple[Row, ...]  # every verdict row under this contract, oldest first
    running: tuple[Running, ...] = ()
    assignment: Assignment | None = None  # a literature review's run to implement, for a proposer that can

    @property
    def incumbent(self) -> Row | None:
        """The latest keep (a keep beats the incumbent of its time)."""
        return next((r for r in reversed(self.history) if r.is_keep), None)

    @property
    def baseline(self) -> Row | None:
        return next((r for r in self.history if r.is_keep), None)

    def tried(self) -> set[str]:
        """Candidate keys already recorded or running: proposing one again wastes a trial."""
        return tried_keys([*self.history, *self.running])


def tried_keys(rows: Iterable[Row | Running]) -> set[str]:
    return {candidate_key(r.params, r.patch_sha) for r in rows}


class Proposer(Protocol):
    """A proposer with a true ``implements_cards`` attribute is handed a literature review's runs to implement
    (``view.assignment``); for any other the harness runs the cards' own implementations."""

    def propose(self, view: CampaignView) -> Candidate: ...

    def tell(self, view: CampaignView, row: Row) -> None: ...


@dataclass(frozen=True)
class LLMSettings:
    """The model-backed proposer's settings (the endpoint and key come from OPENAI_BASE_URL, OPENAI_API_KEY)."""

    model: str = ""
    timeout: float = 60.0  # seconds per call
    retries: int = 2  # the client's own retries (429, 5xx, connection errors), with backoff
    max_calls: int = 200  # per session, repair turns included
    max_tokens: int = 2_000_000  # per session, prompt + answer
    max_answer_tokens: int = 4096


SAMPLER_NAMES = ("tpe", "cmaes", "gp", "random", "qmc")  # Optuna's samplers the optuna proposer offers


@dataclass(frozen=True)
class ProposerOptions:
    """The session's options for whoever proposes: the LLM's settings, the research program (``program.md``:
    its prose for a model, its front matter for the search) and the literature loop's card library."""

    llm: LLMSettings = LLMSettings()
    program: Program = NO_PROGRAM
    cards_dir: Path | None = None
    library: str = ""  # the card library as a model sees it: a line per card (literature.cards.library_text)
    sampler: str = "tpe"  # the optuna proposer's sampler, one of SAMPLER_NAMES
    seed: int | None = None  # the proposer's random seed; None: from the contract hash


DEFAULT_OPTIONS = ProposerOptions()


@dataclass(frozen=True)
class ProposerSetup:
    """What a proposer is built from, once per session."""

    contract: Contract
    schema: Schema
    factory: CandidateFactory
    rootdir: Path
    workdir: Path
    surface_dir: Path | None = None
    options: ProposerOptions = DEFAULT_OPTIONS


ProposerFactory = Callable[[ProposerSetup], Proposer]
PROPOSERS: Registry[ProposerFactory] = Registry("proposer", "pytest_autofl.proposers")
