"""``--autofl-proposer optuna``: Optuna's samplers (TPE, CMA-ES, GP, random, QMC) over the mutation schema's
knobs, through Optuna's ask/tell.

The study lives in memory and is filled from the campaign's history: every knob-only row of the active
contract becomes a finished trial (its mean selection score; a crash or invalid row a failed trial), whoever
proposed it — this session, an earlier one, another xdist worker, a candidate file — so a campaign resumes and
mixes proposers. Optuna only proposes: the verdict rules decide keep / narrow / discard. Code changes are not
points of the knob space and are left out; so are rows whose knobs the (narrowed) schema no longer allows.
Conditional knobs (the schema's ``applies``) are suggested only where they matter, as define-by-run does.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from pytest_autofl.core.candidate import Candidate, candidate_key
from pytest_autofl.core.schema import Knob, Schema
from pytest_autofl.core.verdict import CRASH, DISCARD, INVALID, KEEP, NARROW, SCREENED
from pytest_autofl.ledger.row import Row
from pytest_autofl.proposers.base import CampaignView, ProposerSetup

SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "cmaes": lambda seed: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
    "gp": lambda seed: optuna.samplers.GPSampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "qmc": lambda seed: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
}
SCORED = (KEEP, NARROW, DISCARD)  # told their mean selection score; crash and invalid are failed trials
MAX_ASKS = 50  # a sampler that keeps proposing tried knob sets gets this many chances


def distribution(knob: Knob) -> BaseDistribution:
    """The schema's knob as an Optuna distribution (types, bounds, log scale, choices)."""
    if knob.type == "choice":
        return CategoricalDistribution(knob.choices)
    if knob.type == "bool":
        return CategoricalDistribution((False, True))
    assert knob.low is not None and knob.high is not None
    log = knob.log and knob.low > 0
    if knob.type == "int":
        return IntDistribution(int(knob.low), int(knob.high), log=log)
    return FloatDistribution(float(knob.low), float(knob.high), log=log)


def space(schema: Schema, params: dict[str, Any]) -> dict[str, BaseDistribution]:
    """The free knobs that matter for ``params`` (unconditional ones first), with their distributions."""
    free = set(schema.free_knobs())
    knobs = sorted(schema.knobs.values(), key=lambda k: bool(k.applies))
    return {k.name: distribution(k) for k in knobs if k.name in free and k.matters_for(params)}


class OptunaProposer:
    """Registered as ``optuna``; ``ProposerOptions.sampler`` picks the sampler, ``seed`` its seed (default: from
    the contract hash, so a campaign proposes the same way again)."""

    def __init__(self, setup: ProposerSetup):
        options = setup.options
        if options.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {options.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        self.schema, self.factory, self.name = setup.schema, setup.factory, options.sampler
        seed = options.seed if options.seed is not None else int(setup.contract.sha[:8], 16)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study = optuna.create_study(
                direction="maximize" if setup.contract.higher_is_better else "minimize",
                sampler=SAMPLERS[options.sampler](seed),
            )
        self._known: set[str] = set()  # candidate keys of the rows already in the study
        self._asked: dict[str, int] = {}  # candidate key -> number of the trial this proposer asked for it

    def propose(self, view: CampaignView) -> Candidate:
        self._sync(view.history)
        tried = view.tried()
        scored = {candidate_key(r.params, r.patch_sha): r for r in view.history}
        for _ in range(MAX_ASKS):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                trial = self.study.ask()
                params = self._suggest(trial)
            candidate = self.factory.make(params, proposer="optuna", source=f"optuna:{self.name}")
            if candidate.key not in tried:
                self._asked[candidate.key] = trial.number
                return candidate
            self._finish(trial.number, scored.get(candidate.key))  # a repeat: it learns the known result
        raise RuntimeError(f"the {self.name} sampler proposed only tried knob sets in {MAX_ASKS} asks")

    def _suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Define-by-run: the unconditional knobs first, then those that matter for what was drawn."""
        params: dict[str, Any] = {}
        free = set(self.schema.free_knobs())
        for knob in sorted(self.schema.knobs.values(), key=lambda k: bool(k.applies)):
            if knob.name not in free or not knob.matters_for({**self.schema.defaults(), **params}):
                continue
            dist = distribution(knob)
            if isinstance(dist, CategoricalDistribution):
                params[knob.name] = trial.suggest_categorical(knob.name, dist.choices)
            elif isinstance(dist, IntDistribution):
                params[knob.name] = trial.suggest_int(knob.name, dist.low, dist.high, log=dist.log)
            else:
                assert isinstance(dist, FloatDistribution)
                params[knob.name] = trial.suggest_float(knob.name, dist.low, dist.high, log=dist.log)
        return params

    def tell(self, view: CampaignView, row: Row) -> None:
        self._sync([*view.history, row])

    def _sync(self, rows: Any) -> None:
        """Every knob-only row not yet in the study: told to the trial this proposer asked for it, else added
        as a finished trial of its own."""
        for row in rows:
            key = candidate_key(row.params, row.patch_sha)
            if key in self._known or row.patch_sha or row.status not in (*SCORED, SCREENED, CRASH, INVALID):
                continue
            self._known.add(key)
            if key in self._asked:
                self._finish(self._asked[key], row)
                continue
            dists = space(self.schema, row.params)
            params = {name: row.params[name] for name in dists if name in row.params}
            failed = row.status in (CRASH, INVALID) or row.score is None
            try:
                self.study.add_trial(
                    optuna.trial.create_trial(
                        state=_state(row) if failed else TrialState.COMPLETE,
                        value=None if failed else row.score,
                        params=params,
                        distributions={name: dists[name] for name in params},
                    )
                )
            except ValueError:  # outside the (narrowed) schema: not a point of this search space
                continue

    def _finish(self, number: int, row: Row | None) -> None:
        if row is not None and row.status in SCORED and row.score is not None:
            self.study.tell(number, row.score)
        else:
            self.study.tell(number, state=_state(row))


def _state(row: Row | None) -> TrialState:
    """A row without a contract score: dropped by the screen (pruned: a poor region), or failed."""
    return TrialState.PRUNED if row is not None and row.status == SCREENED else TrialState.FAIL
