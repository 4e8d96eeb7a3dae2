from __future__ import annotations

import json

from pytest_autofl.run.resume import ResumingRunner
from pytest_autofl.run.seedrun import SeedRun

SECRET = b"harness key for the tests"


class Inner:
    def __init__(self, trial_dir, fail=()):
        self.trial_dir, self.fail, self.calls = trial_dir, set(fail), []

    def run(self, seed, tag="", evaluate=True):
        self.calls.append((seed, tag))
        directory = self.trial_dir / f"seed-{seed}{tag}"
        directory.mkdir(parents=True)
        (directory / "run.log").write_text(f"log {seed}")
        if seed in self.fail:
            return SeedRun(seed, directory, error="boom")
        run = SeedRun(seed, directory, 12.5, None, [{"round": 0, "site": "site-1", "steps": 3}], None, 10)
        if evaluate:
            self.evaluate([run])
        return run

    def evaluate(self, runs):
        for run in runs:  # as the evaluator does: the score and the size, from the final model
            run.score, run.n_params = 0.5 + run.seed, 10


def test_runs_scored_later_in_a_batch_are_indexed_once_scored(tmp_path):
    runner = ResumingRunner(
        Inner(tmp_path / "t1"), tmp_path / "finished", "k" * 64, tmp_path / "t1", print, SECRET
    )
    first, repeat = runner.run(2, evaluate=False), runner.run(2, "-repeat", evaluate=False)
    assert first.score is None and not (tmp_path / "finished").exists()  # nothing unscored is indexed
    runner.evaluate([first, repeat])
    second = Inner(tmp_path / "t2")
    again = ResumingRunner(second, tmp_path / "finished", "k" * 64, tmp_path / "t2", print, SECRET)
    assert again.run(2).score == 2.5 and again.run(2, "-repeat").score == 2.5 and second.calls == []


def test_finished_runs_are_reused_with_their_artifacts_and_failures_are_not(tmp_path):
    lines = []
    first = Inner(tmp_path / "t1", fail={1})
    runner = ResumingRunner(first, tmp_path / "finished", "k" * 64, tmp_path / "t1", lines.append, SECRET)
    assert runner.run(0).score == 0.5 and runner.run(1).error == "boom"
    second = Inner(tmp_path / "t2")
    again = ResumingRunner(second, tmp_path / "finished", "k" * 64, tmp_path / "t2", lines.append, SECRET)
    reused = again.run(0)
    assert second.calls == [] and reused.score == 0.5 and reused.runtime_seconds == 12.5
    assert reused.directory == tmp_path / "t2" / "seed-0" and (reused.log_path).read_text() == "log 0"
    assert reused.audit == [{"round": 0, "site": "site-1", "steps": 3}] and reused.n_params == 10
    assert any("seed 0: reusing the finished run" in line for line in lines)
    assert again.run(1).score == 1.5 and second.calls == [(1, "")]  # a failed run is never reused
    other = ResumingRunner(
        Inner(tmp_path / "t3"), tmp_path / "finished", "x" * 64, tmp_path / "t3", lines.append, SECRET
    )
    assert other.run(0).directory == tmp_path / "t3" / "seed-0"  # another key, another experiment


def test_an_entry_not_signed_by_the_harness_is_ignored_and_a_reused_run_is_scored_again(tmp_path):
    runner = ResumingRunner(
        Inner(tmp_path / "t1"), tmp_path / "finished", "k" * 64, tmp_path / "t1", print, SECRET
    )
    runner.run(0)
    (entry,) = (tmp_path / "finished").glob("*.json")
    signed = json.loads(entry.read_text())
    signed["facts"]["score"] = 0.99  # a forged score: the evaluator's, not the entry's, counts
    entry.write_text(json.dumps(signed))
    lines: list[str] = []
    second = Inner(tmp_path / "t2")
    again = ResumingRunner(second, tmp_path / "finished", "k" * 64, tmp_path / "t2", lines.append, SECRET)
    assert again.run(0).score == 0.5 and second.calls == [(0, "")]  # ran again
    assert any("is not signed by this harness" in line for line in lines)
    third = Inner(tmp_path / "t3")
    other_key = ResumingRunner(third, tmp_path / "finished", "k" * 64, tmp_path / "t3", print, b"another key")
    assert other_key.run(0).score == 0.5 and third.calls == [(0, "")]


def test_an_entry_from_another_version_of_the_harness_is_run_again(tmp_path):
    from pytest_autofl.run.resume import _mac

    runner = ResumingRunner(
        Inner(tmp_path / "t1"), tmp_path / "finished", "k" * 64, tmp_path / "t1", print, SECRET
    )
    runner.run(0)
    (entry,) = (tmp_path / "finished").glob("*.json")
    facts = json.loads(entry.read_text())["facts"] | {
        "cpu_seconds": 3.5
    }  # a field this SeedRun no longer has
    entry.write_text(json.dumps({"facts": facts, "mac": _mac(SECRET, facts)}))
    second = Inner(tmp_path / "t2")
    again = ResumingRunner(second, tmp_path / "finished", "k" * 64, tmp_path / "t2", print, SECRET)
    assert again.run(0).score == 0.5 and second.calls == [(0, "")]
