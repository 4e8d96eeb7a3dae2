"""The progress a search shows while it runs: the live view's bookkeeping (a fake clock), its drawing, and the
plain lines everywhere else (a file, -p no:terminal, xdist), with per-round lines only under -v."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys

import pytest
from test_registries import CONFTEST

from pytest_autofl.core.progress import Round, labelled
from pytest_autofl.report.live import Board, LiveView

SCRIPTED = ["--autofl-iterations=2", "--autofl-env=scripted", "-p", "no:cacheprovider"]


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_the_board_draws_rounds_as_bars_and_measures_simulations_and_candidates():
    clock, seen = Clock(), []
    board = Board(total=4, now=clock)
    tell = labelled(seen.append, "[autofl 01] fedavg-1 (baseline)")
    tell("seed 0: validation accuracy 0.5")
    assert seen == ["[autofl 01] fedavg-1 (baseline) seed 0: validation accuracy 0.5"]
    for seed in ("0", "1"):
        tell(Round(seed, 0, 5, 2))
    assert (
        str(seen[-1])
        == "[autofl 01] fedavg-1 (baseline) seed 1: starting NVFlare SimEnv (2 clients x 5 rounds)"
    )
    for event in seen[1:]:
        board.round(event)
    assert board.status() == "done 0/4 | no incumbent yet | ETA after the first candidate"
    clock.t += 30
    for done in range(1, 6):
        board.round(Round("0", done, 5, label="[autofl 01] fedavg-1 (baseline)"))
    board.round(Round("1", 2, 5, label="[autofl 01] fedavg-1 (baseline)"))
    assert board.rows() == [
        ("[autofl 01] fedavg-1 (baseline)", 7, 10, "0:00:30", "seeds 0, 1 | seed 1: round 2/5")
    ]
    clock.t += 10
    board.candidate_finished("fedavg-1 0.6170")
    assert board.rows() == [] and board.candidate_seconds == [40.0] and board.simulation_seconds == [30.0]
    assert board.status() == "done 1/4 | incumbent fedavg-1 0.6170 | 30.0 s/simulation | ETA 0:02:00"
    board.round(Round("0", 0, 5, label="[autofl 02] fedprox-2 (fedprox_mu=0.01)"))
    clock.t += 15  # the running candidate's time comes off the estimate
    assert board.eta() == 105.0


def test_the_live_view_draws_the_board_and_prints_lines_above_it(monkeypatch):
    monkeypatch.setenv("COLUMNS", "150")  # a StringIO has no size: rich takes $COLUMNS
    board, out = Board(total=2), io.StringIO()
    view = LiveView(board, out)
    board.round(Round("0", 1, 2, label="[autofl 01] fedavg-1 (baseline)"))
    view.show()
    view.print("[autofl 01] fedavg-1 (baseline) seed 0: validation accuracy 0.5")
    view.hide()
    text = out.getvalue()
    assert "[autofl 01] fedavg-1 (baseline)" in text and "1/2 rounds" in text and "seed 0: round 1/2" in text
    assert "done 0/2 | no incumbent yet" in text
    assert "validation accuracy 0.5" in text


@pytest.fixture
def scripted(pytester, project, repo):
    pytester.makeconftest(CONFTEST.format(tests=str(repo / "tests")))
    return pytester


@pytest.mark.subprocess  # pytester runs pytest in a subprocess (seconds)
def test_plain_lines_when_output_is_not_a_terminal_rounds_only_with_verbose(scripted):
    quiet = scripted.runpytest(*SCRIPTED)
    assert quiet.ret == 0, quiet.stdout.str()[-2000:]
    quiet.stdout.fnmatch_lines(["[[]autofl 01[]] fedavg-*: KEEP - baseline*", "*autofl summary*"])
    assert "round 1/" not in quiet.stdout.str() and "starting NVFlare SimEnv" not in quiet.stdout.str()
    assert "\x1b[" not in quiet.stdout.str()  # no cursor codes in a file
    verbose = scripted.runpytest(*SCRIPTED, "-v")
    verbose.stdout.fnmatch_lines(
        [
            "[[]autofl 01[]] * seed 0: starting NVFlare SimEnv (2 clients x 2 rounds)",
            "[[]autofl 01[]] * seed 0: round 2/2",
        ]
    )


@pytest.mark.subprocess
def test_no_terminal_and_xdist_workers_get_plain_lines(scripted):
    silent = scripted.runpytest(*SCRIPTED, "-p", "no:terminal")
    assert silent.ret == 0 and "autofl" not in silent.stdout.str()
    workers = scripted.runpytest(*SCRIPTED, "-n", "2")
    assert workers.ret == 0, workers.stdout.str()[-2000:]
    workers.stderr.fnmatch_lines(["[[]gw?[]] [[]autofl *[]] *: * - *"])
    assert "round 1/" not in workers.stderr.str()


@pytest.mark.subprocess
def test_a_search_on_a_terminal_gets_the_live_view(scripted):
    """pytest on a pseudo-terminal: the board is drawn (rich's cursor codes), its status line moves on."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *SCRIPTED, "-p", "pytester"],
        cwd=scripted.path,
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed: pytest is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert proc.wait(timeout=120) == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert "done 0/2 | no incumbent yet" in screen
    assert "done 1/2 | incumbent fedavg-" in screen  # the second candidate runs against the first
    assert "\x1b[" in screen and re.search(r"\d+/\d+ rounds", screen)
    assert "KEEP - baseline" in screen and "autofl summary" in screen
