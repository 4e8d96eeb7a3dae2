"""An unattended campaign on real FLARE: a built-in search with faulty code changes mixed in (every third
candidate) is SIGKILLed, its whole process tree at once, at a random moment, and the same command run again
finishes it: every row once, the rows before the kill untouched, every seed run finished before the kill reused,
the faulty candidates crash rows naming the fault, nothing left running. ``benchmarks/unattended.py`` runs the
40-candidate version and prints its figures."""

from __future__ import annotations

import random
import time

import campaign
import pytest

from pytest_autofl.report.summary import verdicts_line

pytestmark = pytest.mark.e2e

SIZE = 4  # the baseline, a built-in candidate, a faulty one (memory), a built-in one


def test_a_campaign_killed_at_a_random_moment_finishes_on_the_same_command(tmp_path):
    seed = random.randrange(1 << 30)  # printed on failure: the moment of the kill can be replayed
    root = campaign.project(tmp_path / "project")
    run = campaign.kill_and_rerun(root, SIZE, random.Random(seed), tmp_path / "first.log")
    assert run.returncode in (0, 1) and "INTERNALERROR" not in run.said, (seed, run.said[-3000:])
    assert len(run.rows) == SIZE and len({r.candidate_id for r in run.rows}) == SIZE, (seed, run.said[-3000:])
    assert [r.row_id for r in run.rows[: len(run.rows_before)]] == [r.row_id for r in run.rows_before]
    assert run.pending, seed  # the kill left finished work behind: the loop below checks something
    assert verdicts_line(run.rows[len(run.rows_before) :]) in run.said  # the summary is right
    for directory in run.pending:  # finished before the kill, not lost: taken over by the rerun
        assert f"reusing the finished run in {directory}" in run.said, (seed, directory)
    for row in run.rows:
        if row.proposer == "saboteur":
            fault = row.source.removeprefix("fault:")
            assert row.status == "crash" and campaign.FAULTS[fault][2] in row.reason, (fault, row.reason)
    time.sleep(1)
    assert campaign.processes_under(root) == [], seed
