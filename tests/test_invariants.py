from __future__ import annotations

from pytest_autofl.invariants import RunFacts, check, site_step_budget

SIZES = {"site-1": 496, "site-2": 583}


def audit(rounds=2, steps=10, tensors=6, sites=("site-1", "site-2")):
    return [{"round": r, "site": s, "steps": steps, "tensors": tensors} for r in range(rounds) for s in sites]


def violations(contract, runs, **overrides):
    kwargs = dict(
        split_sha_seen="a" * 64,
        expected_split_sha="a" * 64,
        contract_sha_now="c" * 64,
        contract_sha_at_start="c" * 64,
        shard_sizes=SIZES,
    )
    kwargs.update(overrides)
    return check(contract, runs, **kwargs)


def test_a_fair_run_has_no_violation(smoke_contract):
    assert violations(smoke_contract, [RunFacts(0, audit(), 8970)]) == []


def test_step_budget_is_epochs_over_the_shard_capped(smoke_contract):
    assert site_step_budget(smoke_contract, SIZES) == {"site-1": 16, "site-2": 19}


def test_each_invariant_is_named(smoke_contract):
    def one(runs, **kw):
        (v,) = violations(smoke_contract, runs, **kw)
        return v

    assert one([RunFacts(1, audit(), 10)]).startswith("same seeds")
    assert one([RunFacts(0, audit(), 10)], split_sha_seen="b" * 64).startswith("same split")
    assert one([RunFacts(0, audit(), 10)], contract_sha_now="d" * 64).startswith("contract unchanged")
    assert one([RunFacts(0, audit(rounds=1), 10)]).startswith("rounds completed")
    assert one([RunFacts(0, audit(sites=("site-1",)), 10)]).startswith("rounds completed")
    assert one([RunFacts(0, audit(), 10**6)]).startswith("parameter count")
    steps = violations(smoke_contract, [RunFacts(0, audit(steps=17), 10)])
    assert steps == [
        "local steps (seed 0, round 0, site-1): reported 17, budget 16",
        "local steps (seed 0, round 1, site-1): reported 17, budget 16",
    ]
    empty = violations(smoke_contract, [RunFacts(0, audit(tensors=0), 10)])
    assert empty and all(v.startswith("non-empty update") for v in empty)
