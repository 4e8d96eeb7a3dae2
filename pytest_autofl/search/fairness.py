"""A finished trial's fairness check: the facts the harness measured about each run, held to the contract
(``core.invariants``), with the shards, the contract as it is now, and the compute measured beside its twins."""

from __future__ import annotations

from pytest_autofl.core.contract import Contract, load_contract
from pytest_autofl.core.invariants import RunFacts, fairness_violations
from pytest_autofl.core.surface_rules import MODEL
from pytest_autofl.data.split import Shards
from pytest_autofl.run.seedrun import SeedRun
from pytest_autofl.search.trial import TrialResult


def _facts(r: SeedRun) -> RunFacts:
    return RunFacts(
        r.seed, r.audit, r.n_params, r.initial, r.task_seconds, r.twin_seconds, r.metered, r.digest, r.error
    )


def trial_violations(result: TrialResult, contract: Contract, shards: Shards) -> list[str]:
    """Every fairness invariant the trial's runs break (none: an empty list)."""
    return fairness_violations(
        contract,
        [_facts(r) for r in result.runs],
        [_facts(r) for r in result.extra_runs if r.audit or r.score is not None],
        shard_problems=shards.problems(),
        contract_sha_now=load_contract(contract.directory.parent, contract.name).sha,
        contract_sha_at_start=contract.sha,
        shard_sizes={site: len(idx) for site, idx in shards.split.clients.items()},
        # the surface's own client takes the steps the contract allows; a code change is held to its twins
        twinned=bool(result.candidate.patch_sha),
        control=_facts(result.control) if result.control is not None else None,
        model_changed=any(name == MODEL for name, _ in result.candidate.files),
    )
