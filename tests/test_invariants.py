from __future__ import annotations

from pytest_autofl.core.invariants import RunFacts, fairness_violations, site_step_budget

SIZES = {"site-1": 496, "site-2": 583}


def audit(rounds=2, steps=10, tensors=6, sites=("site-1", "site-2")):
    return [{"round": r, "site": s, "steps": steps, "tensors": tensors} for r in range(rounds) for s in sites]


def fair(seed=0, **kw):
    return RunFacts(seed, audit(**kw), 8970)


def violations(contract, runs, extra_runs=(), **overrides):
    kwargs = dict(
        shard_problems=[],
        contract_sha_now="c" * 64,
        contract_sha_at_start="c" * 64,
        shard_sizes=SIZES,
    )
    kwargs.update(overrides)
    return fairness_violations(contract, runs, extra_runs, **kwargs)


def test_a_fair_run_has_no_violation(smoke_contract):
    assert violations(smoke_contract, [fair(0), fair(1)]) == []
    assert (
        violations(smoke_contract, [fair(0), fair(1)], [fair(0), fair(1000)]) == []
    )  # repeat + confirmation


def test_step_budget_is_epochs_over_the_shard_capped(smoke_contract):
    assert site_step_budget(smoke_contract, SIZES) == {"site-1": 16, "site-2": 19}


def test_each_invariant_is_named(smoke_contract):
    ok = fair(1)

    def one(runs, extra_runs=(), **kw):
        (v,) = violations(smoke_contract, runs, extra_runs, **kw)
        return v

    assert one([fair(0)]).startswith("same seeds: ran [0]")  # fewer than min_seeds
    assert one([fair(1), fair(0)]).startswith("same seeds")  # out of order
    assert one([fair(0), ok], [fair(7)]).startswith("same seeds: extra runs on seeds [7]")
    assert one([fair(0), ok], shard_problems=["site-1.npz: its contents changed"]).startswith("same data")
    assert one([fair(0), ok], contract_sha_now="d" * 64).startswith("contract unchanged")
    assert one([fair(0, rounds=1), ok]).startswith("rounds completed (seed 0)")
    assert one([fair(0, sites=("site-1",)), ok]).startswith("rounds completed (seed 0)")
    assert one([RunFacts(0, audit(), 10**6), ok]).startswith("parameter count (seed 0)")
    assert violations(smoke_contract, [fair(0, steps=17), ok]) == [
        "local steps (seed 0, round 0, site-1): reported 17, budget 16",
        "local steps (seed 0, round 1, site-1): reported 17, budget 16",
    ]
    empty = violations(smoke_contract, [fair(0, tensors=0), ok])
    assert empty and all(v.startswith("non-empty update") for v in empty)
    extra = violations(smoke_contract, [fair(0), ok], [fair(1000, steps=99)])  # extra runs are checked too
    assert len(extra) == 4 and all(v.startswith("local steps (seed 1000") for v in extra)


def started(seed, score=0.1, digest=None):
    return RunFacts(seed, audit(), 8970, {"score": score, "chance": 0.1, "digest": digest or f"d{seed}"})


def test_training_starts_untrained_and_from_the_harness_seed(smoke_contract):
    assert violations(smoke_contract, [started(0), started(1)], [started(0, digest="d0")]) == []  # a repeat
    (embedded,) = violations(smoke_contract, [started(0, score=0.93), started(1)])
    assert embedded.startswith("untrained start (seed 0): the initial model scores 0.930 before any training")
    (ignored,) = violations(smoke_contract, [started(0, digest="same"), started(1, digest="same")])
    assert ignored.startswith("seed used (seeds [0, 1]): the initial models of different seeds are identical")
    # the surface's own model.py (knobs, client or server changes) is the user's code: its random start may
    # rank well (AUROC on separable data), so only a changed model.py is held to the untrained start
    assert violations(smoke_contract, [started(0, score=0.93), started(1)], model_changed=False) == []


def test_a_lower_is_better_metric_is_held_to_its_own_direction(smoke_contract):
    from dataclasses import replace

    metric = {"name": "log_loss", "split": "validation", "direction": "min"}
    log_loss = replace(smoke_contract, raw={**smoke_contract.raw, "metric": metric})

    def start(seed, score):
        return RunFacts(seed, audit(), 8970, {"score": score, "chance": 2.3, "digest": f"d{seed}"})

    assert violations(log_loss, [start(0, 2.2), start(1, 2.4)]) == []
    (embedded,) = violations(log_loss, [start(0, 0.4), start(1, 2.3)])
    assert (
        embedded.startswith("untrained start (seed 0): the initial model scores 0.400")
        and "past 1.150" in embedded
    )


def test_the_measured_compute_is_held_to_its_twin_task_by_task_and_a_silenced_meter_is_named(smoke_contract):
    from pytest_autofl.core.invariants import compute_violations

    twin = {"site-1": [0.020, 0.007, 0.007, 0.007], "site-2": [0.022, 0.008, 0.008, 0.008]}

    def metered(seed, start, first, later, twins=twin):  # windows: the start-up, then three tasks
        own = {site: [start, first, later, later] for site in twin}
        return RunFacts(seed, audit(), 8970, task_seconds=own, twin_seconds=twins, metered=True)

    cap = smoke_contract.max_cpu_ratio
    honest = [metered(0, 0.024, 0.0085, 0.0085), metered(1, 0.019, 0.0070, 0.0070)]
    assert compute_violations(smoke_contract, honest, twinned=True) == []
    (later,) = compute_violations(
        smoke_contract, [metered(0, 0.021, 0.0075, 0.0150), metered(1, 0.021, 0.0075, 0.0160)], twinned=True
    )
    # the median of the 8 later tasks' ratios (1.88 to 2.29)
    assert later.startswith(
        "measured compute: 2.07x the unchanged surface's CPU per later task, the median of 8"
    )
    assert f"cap {cap:g}x" in later
    # a machine busier in some moments than others: each task against its twin, not one mean against another
    slow = {"site-1": [0.040, 0.014, 0.014, 0.014], "site-2": [0.044, 0.016, 0.016, 0.016]}
    assert compute_violations(smoke_contract, [metered(0, 0.042, 0.015, 0.015, slow)], twinned=True) == []
    # extra work only in the first task shows on its own: the script's start-up is measured apart
    (first,) = compute_violations(
        smoke_contract, [metered(0, 0.021, 0.0150, 0.0075), metered(1, 0.021, 0.0160, 0.0075)], twinned=True
    )
    assert first.startswith(
        "measured compute: 2.07x the unchanged surface's CPU per first task, the median of 4"
    )
    # and so does extra work in the start-up (before the script asks for its first task)
    (start,) = compute_violations(
        smoke_contract, [metered(0, 0.060, 0.0075, 0.0075), metered(1, 0.070, 0.0075, 0.0075)], twinned=True
    )
    assert start.startswith(
        "measured compute: 3.09x the unchanged surface's CPU per start-up (the script before it asks for a task)"
    )
    # knobs only: the surface is the user's code, measured and not capped
    assert compute_violations(smoke_contract, [metered(0, 0.9, 0.9, 0.9)], twinned=False) == []
    (missing,) = compute_violations(
        smoke_contract, [metered(0, 0.024, 0.0085, 0.0085, {"site-1": twin["site-1"]})], True
    )
    assert missing == (
        "measured compute (seed 0, site-2): 4 windows measured, the unchanged surface's twin beside it 0: "
        "nothing to hold them to"
    )
    (silent,) = compute_violations(
        smoke_contract, [RunFacts(0, audit(), 8970, metered=True), honest[1]], True
    )
    assert silent.startswith("measured compute (seed 0): the harness' CPU meter reported nothing")
    assert compute_violations(smoke_contract, [RunFacts(0, audit(), 8970)], True) == []  # not metered (prod)


def test_the_zero_update_control_must_leave_the_model_where_it_began():
    from pytest_autofl.core.invariants import control_violations

    start = {"score": 0.1, "chance": 0.1, "digest": "d0"}
    assert control_violations(RunFacts(0, [], 10, start, digest="d0")) == []
    (moved,) = control_violations(RunFacts(0, [], 10, start, digest="d1"))
    assert moved.startswith(
        "zero-update control (seed 0): the server's model moved although every client sent zeros"
    )
    (failed,) = control_violations(RunFacts(0, [], None, error="seed 0: boom"))
    assert "failed: seed 0: boom" in failed
    assert control_violations(RunFacts(0, [], 10, None))[0].endswith("its final model was not scored")
