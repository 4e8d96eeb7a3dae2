"""The search loop (calibration, sequential seeds, confirmation, verdicts, ledger, resume) with a scripted
runner in place of NVFlare: the same session code, milliseconds per candidate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripted import Scripted

from pytest_autofl.ledger import store as ledger
from pytest_autofl.report.summary import machine_line
from pytest_autofl.search.rerun import find_row, run_again


def step(session, slot):
    cand = session.next_candidate()
    verdict = session.record(session.run(cand, slot))
    return cand, verdict


def test_baseline_calibrates_then_verdicts_follow_the_noise_floor(make_session, tmp_path):
    s = make_session()
    Scripted.effects = {"fedprox_mu=0.01": -0.05, "fedprox_mu=0.1": 0.08}
    base, v = step(s, 1)
    assert v.status == "keep" and "noise floor: sd" in v.reason
    assert [c[1:] for c in Scripted.calls] == [
        (0, ""),
        (1, ""),
        (2, ""),
        (3, ""),
        (4, ""),
        (5, ""),
        (0, "-repeat"),
    ]
    assert s.calibration.noise.deterministic and s.calibration.noise.noise > 0.02
    assert s.calibration.threshold() == pytest.approx(max(0.005, 0.5 * s.calibration.noise.noise))

    Scripted.calls.clear()
    loser, v = step(s, 2)
    assert v.status == "discard" and len(Scripted.calls) == 3  # a clear loser stops at min_seeds

    Scripted.calls.clear()
    winner, v = step(s, 3)
    assert v.status == "keep" and "confirmed on fresh seeds [1000, 1001, 1002]" in v.reason
    # every selection seed (the future incumbent needs them all), then fresh seeds for it and the incumbent
    assert [(c[0], c[1]) for c in Scripted.calls][:6] == [("fedprox_mu=0.1", s_) for s_ in range(6)]
    assert [c[1] for c in Scripted.calls[6:]] == [1000, 1000, 1001, 1001, 1002, 1002]
    assert s.incumbent.candidate_id == winner.id

    rows = ledger.read_fields(tmp_path / "results.tsv")
    assert [r["status"] for r in rows] == ["keep", "discard", "keep"]
    assert rows[1]["n_seeds"] == "3" and float(rows[1]["ci_high"]) < 0
    assert rows[2]["n_seeds"] == "6" and float(rows[2]["ci_low"]) > float(rows[2]["threshold"])
    assert json.loads(rows[2]["confirm"])["seeds"] == [1000, 1001, 1002]
    assert float(rows[2]["noise"]) == pytest.approx(s.calibration.noise.noise, abs=1e-6)
    assert rows[2]["cost_ratio"] == "1.000" and int(rows[2]["comm_bytes"]) == 4 * 2 * 20 * 8970


def test_a_keep_that_fails_confirmation_is_discarded(make_session, monkeypatch):
    s = make_session()
    step(s, 1)
    original = Scripted.run

    def lucky_only_on_selection_seeds(self, seed, tag="", evaluate=True):
        run = original(self, seed, tag, evaluate)
        if self.candidate.description == "fedprox_mu=0.01" and seed < 1000 and run.score is not None:
            run.score += 0.08
        return run

    monkeypatch.setattr(Scripted, "run", lucky_only_on_selection_seeds)
    cand, v = step(s, 2)
    assert v.status == "discard" and v.reason.startswith(
        "failed confirmation on fresh seeds [1000, 1001, 1002]"
    )
    assert s.incumbent.candidate_id == s.baseline.candidate_id


def test_crashes_and_a_second_session_continue_the_campaign(make_session, tmp_path):
    first = make_session()
    step(first, 1)
    Scripted.crash = {"fedprox_mu=0.01"}
    cand, v = step(first, 2)
    assert v.status == "crash" and "scripted crash" in v.reason
    second = make_session()
    assert (
        second.calibration.noise is not None and second.baseline.candidate_id == first.baseline.candidate_id
    )
    Scripted.calls.clear()
    nxt = second.next_candidate()
    assert nxt.description == "fedprox_mu=0.1"  # tried knob sets are never proposed again
    assert Scripted.calls == []  # the cached noise floor is reused: no calibration runs


def test_missing_noise_cache_recalibrates_without_a_row(make_session, tmp_path):
    first = make_session()
    step(first, 1)
    for path in (tmp_path / ".autofl" / "noise").iterdir():
        path.unlink()
    second = make_session()
    assert second.calibration.noise is None
    Scripted.calls.clear()
    step(second, 1)
    assert [c[2] for c in Scripted.calls[:7]] == [""] * 6 + ["-repeat"]
    assert second.calibration.noise is not None
    assert len(ledger.read_fields(tmp_path / "results.tsv")) == 2
    assert Path(second.calibration.path).is_file()


def test_an_exact_rerun_reproduces_or_names_the_seeds_that_do_not(make_session, tmp_path):
    s = make_session()
    base, _ = step(s, 1)
    row = find_row(s, base.id)
    assert find_row(s, row.row_id) == row
    again = run_again(s, row)
    assert again.mismatches == [] and again.violations == [] and sorted(again.seed_scores) == list(range(6))
    Scripted.effects = {"baseline (schema defaults)": 0.01}  # the code "changed" since the row was written
    drift = run_again(s, row)
    assert len(drift.mismatches) == 6 and drift.mismatches[0].startswith("seed 0: ")
    assert "> tolerance 1e-06" in drift.mismatches[0]


def test_rerun_refuses_unknown_crashed_and_foreign_rows(make_session, tmp_path, repo):
    from pytest_autofl.core.errors import AutoFLError

    s = make_session()
    step(s, 1)
    Scripted.crash = {"fedprox_mu=0.01"}
    crashed, _ = step(s, 2)
    with pytest.raises(AutoFLError, match="no ledger row with candidate_id or row_id 'nope'"):
        find_row(s, "nope")
    with pytest.raises(AutoFLError, match="is crash: there is no score to reproduce"):
        find_row(s, crashed.id)
    smoke = make_session(benchmark="digits-smoke")  # the same ledger, another contract
    with pytest.raises(AutoFLError, match="ran under benchmark 'digits' .*pass --autofl-benchmark digits"):
        find_row(smoke, s.baseline.candidate_id)


def test_a_run_that_changes_a_shard_is_invalid_and_the_next_one_runs_on_the_data_set(make_session, tmp_path):
    import numpy as np

    s = make_session()
    s.record(s.run(s.next_candidate(), 1))
    original = Scripted.run

    def relabel_a_shard(self, seed, tag="", evaluate=True):
        path = s.shards().directory / "site-1.npz"
        with np.load(path) as shard:
            arrays = {k: shard[k] for k in shard.files}
        np.savez(path, **{**arrays, "y": np.zeros_like(arrays["y"])})
        return original(self, seed, tag, evaluate)

    Scripted.run = relabel_a_shard
    try:
        cand = s.next_candidate()
        verdict = s.record(s.run(cand, 2))
    finally:
        Scripted.run = original
    assert verdict.status == "invalid" and "same data: " in verdict.reason and "site-1.npz" in verdict.reason
    assert s.shards().problems() == []  # repaired before anything else runs
    assert s.record(s.run(s.next_candidate(), 3)).status in ("discard", "keep", "narrow")


def test_a_code_change_runs_its_zero_update_control_beside_its_first_seeds(make_session):
    s = make_session()
    step(s, 1)

    def patched(description):
        cand = s.factory.make({})
        return type(cand)(
            **{**cand.__dict__, "files": (("strategies.py", "x = 1\n"),), "description": description}
        )

    Scripted.calls.clear()
    Scripted.injected = {"moves the model"}
    honest = s.record(s.run(patched("leaves it"), 2))
    assert ("leaves it", 0, "-control") in Scripted.calls and honest.status != "invalid"
    knobs = s.record(s.run(s.factory.make({"lr": 0.1}), 3))
    assert not any(c[2] == "-control" for c in Scripted.calls if c[0] != "leaves it")  # no code change
    assert knobs.status != "invalid"
    injected = s.record(s.run(patched("moves the model"), 4))
    assert (
        injected.status == "invalid"
        and "zero-update control (seed 0): the server's model moved" in injected.reason
    )


def test_a_code_change_incumbent_is_confirmed_against_as_the_code_it_is(make_session):
    """Confirming a later keep reruns the incumbent on fresh seeds: its patch too, read back from its trial
    (and checked against the row's patch_sha), not its knobs on the plain surface."""
    s = make_session()
    step(s, 1)
    base = s.factory.make({})
    patch = type(base)(
        **{**base.__dict__, "files": (("strategies.py", "x = 1\n"),), "description": "patched"}
    )
    Scripted.effects = {"patched": 0.3, "aggregator=fedavgm": 0.6}
    assert s.record(s.run(patch, 2)).status == "keep"
    Scripted.patched.clear()
    assert s.record(s.run(s.factory.make({"aggregator": "fedavgm"}), 3)).status == "keep"
    confirm = [seed for sha, seed in Scripted.patched if sha == patch.patch_sha]
    assert confirm and all(seed >= 1000 for seed in confirm)  # the incumbent's reruns ran its patch


def test_the_machines_retries_and_recoveries_go_in_the_row_not_in_the_verdict(make_session, monkeypatch):
    """A seed run the machine broke and FLARE's recovered messaging errors are recorded in the row (retries,
    their reasons, recovered, the infrastructure's fingerprint); the verdict is the one an undisturbed run gets."""
    from pytest_autofl.run import infrastructure

    s = make_session()
    step(s, 1)
    original = Scripted.run

    def disturbed(self, seed, tag="", evaluate=True):
        run = original(self, seed, tag, evaluate)
        if self.candidate.description == "fedprox_mu=0.1" and seed == 1:
            run.retries = [f"seed {seed}: simulator exited with code 1: OSError: no 2 free ports left"]
            run.recovered = ["site-1: ... programming error: received TIMEOUT from server"] * 2
        return run

    Scripted.effects = {"fedprox_mu=0.1": 0.08}
    monkeypatch.setattr(Scripted, "run", disturbed)
    step(s, 2)
    _, v = step(s, 3)
    rows = ledger.read_rows(s.ledger_path)
    disturbed_row, quiet = rows[-1], rows[0]
    assert disturbed_row.candidate_id.startswith("fedavg+prox") and v.status == "keep"
    assert disturbed_row.retry_reasons == (
        "seed 1: simulator exited with code 1: OSError: no 2 free ports left",
    )
    assert disturbed_row.recovered == 2 and quiet.recovered == 0 and quiet.retry_reasons == ()
    assert {r.infra for r in rows} == {infrastructure.fingerprint()}
    fields = disturbed_row.fields()
    assert fields["retries"] == "1" and json.loads(fields["retry_reasons"]) == list(
        disturbed_row.retry_reasons
    )
    assert machine_line(rows).startswith("machine: 1 seed run(s) re-run after an infrastructure failure, 2 ")
    assert machine_line(rows[:1]) is None  # nothing happened: no line
