from __future__ import annotations

from pytest_autofl.run.resume import ResumingRunner
from pytest_autofl.run.seedrun import SeedRun


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
        for run in runs:
            run.score = 0.5 + run.seed


def test_runs_scored_later_in_a_batch_are_indexed_once_scored(tmp_path):
    runner = ResumingRunner(Inner(tmp_path / "t1"), tmp_path / "finished", "k" * 64, tmp_path / "t1", print)
    first, repeat = runner.run(2, evaluate=False), runner.run(2, "-repeat", evaluate=False)
    assert first.score is None and not (tmp_path / "finished").exists()  # nothing unscored is indexed
    runner.evaluate([first, repeat])
    second = Inner(tmp_path / "t2")
    again = ResumingRunner(second, tmp_path / "finished", "k" * 64, tmp_path / "t2", print)
    assert again.run(2).score == 2.5 and again.run(2, "-repeat").score == 2.5 and second.calls == []


def test_finished_runs_are_reused_with_their_artifacts_and_failures_are_not(tmp_path):
    lines = []
    first = Inner(tmp_path / "t1", fail={1})
    runner = ResumingRunner(first, tmp_path / "finished", "k" * 64, tmp_path / "t1", lines.append)
    assert runner.run(0).score == 0.5 and runner.run(1).error == "boom"
    second = Inner(tmp_path / "t2")
    again = ResumingRunner(second, tmp_path / "finished", "k" * 64, tmp_path / "t2", lines.append)
    reused = again.run(0)
    assert second.calls == [] and reused.score == 0.5 and reused.runtime_seconds == 12.5
    assert reused.directory == tmp_path / "t2" / "seed-0" and (reused.log_path).read_text() == "log 0"
    assert reused.audit == [{"round": 0, "site": "site-1", "steps": 3}] and reused.n_params == 10
    assert any("seed 0: reusing the finished run" in line for line in lines)
    assert again.run(1).score == 1.5 and second.calls == [(1, "")]  # a failed run is never reused
    other = ResumingRunner(
        Inner(tmp_path / "t3"), tmp_path / "finished", "x" * 64, tmp_path / "t3", lines.append
    )
    assert other.run(0).directory == tmp_path / "t3" / "seed-0"  # another key, another experiment
