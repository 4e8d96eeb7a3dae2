"""Seed runs side by side: order, concurrency cap, serial-identical verdicts, and nothing left running when a
batch is interrupted."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from scripted import Scripted
from test_processes import HANGING_TREE
from test_session import step

from pytest_autofl.ledger import store as ledger
from pytest_autofl.run.parallel import run_batch
from pytest_autofl.run.processes import STOP, python_env, run_tree
from pytest_autofl.run.seedrun import SeedRun


class Sleepy:
    """Sleeps, counts how many runs overlap, and optionally fails one seed."""

    def __init__(self, fail_seed: int | None = None):
        self.lock, self.active, self.peak, self.fail_seed = threading.Lock(), 0, 0, fail_seed

    def run(self, seed: int, tag: str = "", evaluate: bool = True) -> SeedRun:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(0.2)
            if seed == self.fail_seed:
                raise RuntimeError(f"seed {seed} broke")
            return SeedRun(seed=seed, directory=Path(f"seed-{seed}{tag}"), score=seed / 10)
        finally:
            with self.lock:
                self.active -= 1

    def evaluate(self, runs: list[SeedRun]) -> None:
        self.evaluated = [r.seed for r in runs]


def test_results_come_back_in_job_order_with_at_most_parallel_at_once():
    runner = Sleepy()
    runs = run_batch([(runner, s, "") for s in range(7)] + [(runner, 0, "-repeat")], parallel=3)
    assert [(r.seed, r.directory.name) for r in runs] == [(s, f"seed-{s}") for s in range(7)] + [
        (0, "seed-0-repeat")
    ]
    assert runner.peak == 3
    assert runner.evaluated == [0, 1, 2, 3, 4, 5, 6, 0]  # one evaluation call for the whole batch


def test_parallel_one_is_serial():
    runner = Sleepy()
    run_batch([(runner, s, "") for s in range(3)], parallel=1)
    assert runner.peak == 1


def _leftovers() -> list[psutil.Process]:
    return [
        p for p in psutil.process_iter(["cmdline"]) if "time.sleep(600)" in " ".join(p.info["cmdline"] or [])
    ]


class Hanging:
    """A real process tree per run (child + grandchild in a new session), like a hung simulation."""

    def __init__(self, tmp_path: Path, fail_seed: int):
        self.tmp_path, self.fail_seed = tmp_path, fail_seed

    def run(self, seed: int, tag: str = "", evaluate: bool = True) -> SeedRun:
        if seed == self.fail_seed:
            time.sleep(1.0)  # let the others start their trees
            raise RuntimeError("one run broke")
        run_tree(
            [sys.executable, "-c", HANGING_TREE],
            cwd=self.tmp_path,
            env=python_env([]),
            log_path=self.tmp_path / f"log-{seed}.txt",
            timeout=300,
        )
        return SeedRun(seed=seed, directory=self.tmp_path)

    def evaluate(self, runs: list[SeedRun]) -> None:
        pass


@pytest.mark.subprocess
def test_a_failing_run_stops_every_tree_in_the_batch(tmp_path):
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="one run broke"):
        run_batch([(Hanging(tmp_path, fail_seed=2), s, "") for s in range(3)], parallel=3)
    assert time.monotonic() - started < 30  # not the 300 s cap: the others were stopped
    time.sleep(0.5)
    assert _leftovers() == []
    assert not STOP.is_set()  # served and cleared: what runs after (the final report's evaluator) may run


@pytest.mark.subprocess
def test_stop_interrupts_a_tree_running_in_another_thread(tmp_path):
    outcome: list[BaseException] = []

    def target() -> None:
        try:
            run_tree(
                [sys.executable, "-c", HANGING_TREE],
                cwd=tmp_path,
                env=python_env([]),
                log_path=tmp_path / "log.txt",
                timeout=300,
            )
        except BaseException as exc:  # noqa: BLE001 - the test inspects what the thread saw
            outcome.append(exc)

    STOP.clear()
    thread = threading.Thread(target=target)
    thread.start()
    time.sleep(1.5)
    STOP.set()
    thread.join(30)
    STOP.clear()
    assert not thread.is_alive() and isinstance(outcome[0], KeyboardInterrupt)
    time.sleep(0.5)
    assert _leftovers() == []


def _campaign(make_session, parallel: int) -> list[dict[str, str]]:
    Scripted.calls, Scripted.crash = [], set()
    Scripted.effects = {
        "fedprox_mu=0.01": -0.05,
        "fedprox_mu=0.1": 0.08,
        "aggregator=fedavgm, server_momentum=0.6": 0.08,
    }
    # FedAvgM: a gain that is inconclusive after 3 seeds, so its remaining seeds run ahead of the looks
    Scripted.seed_effects = {
        "aggregator=fedavgm, server_momentum=0.6": dict(enumerate([0.09, -0.03, 0.06, 0.05, 0.04, 0.07]))
    }
    session = make_session(parallel=parallel)
    for slot in range(1, 6):
        step(session, slot)
    return ledger.read_fields(session.ledger_path)


def test_side_by_side_seeds_give_the_serial_verdicts(make_session, tmp_path):
    serial = _campaign(make_session, 1)
    serial_calls = set(Scripted.calls)
    (tmp_path / "results.tsv").rename(tmp_path / "serial.tsv")
    for path in (tmp_path / ".autofl").rglob("*"):
        if path.is_file() and path.parent.name in ("noise", "finished"):
            path.unlink()
    parallel = _campaign(make_session, 4)
    assert set(Scripted.calls) >= serial_calls  # every serial run, plus seeds started ahead of need
    assert len(Scripted.calls) == len(set(Scripted.calls))  # none twice: a keep reuses seeds run ahead
    keys = (
        "candidate_id",
        "status",
        "seeds",
        "seed_scores",
        "delta",
        "ci_low",
        "ci_high",
        "confirm",
        "reason",
    )
    assert [{k: r[k] for k in keys} for r in parallel] == [{k: r[k] for k in keys} for r in serial]
    fedavgm = next(r for r in serial if r["description"] == "aggregator=fedavgm, server_momentum=0.6")
    assert (
        int(fedavgm["n_seeds"]) > 3
    )  # inconclusive at 3 seeds: the tail ran, side by side in the second run
    assert [r["status"] for r in serial].count("keep") >= 2
