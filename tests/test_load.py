"""An honest candidate never crashes because the machine is busy (real NVFlare, digits-smoke).

The machine is made busy for real: busy-loop processes, three per core, and FLARE's own processes stopped with
SIGSTOP for longer than its default message timeouts (5 s) — a client at its first task, then the server while
a client checks in its result, which is how a loaded machine starves them. A real infrastructure failure (no
port left for the simulator) is made by filling the port pool the simulations reserve from.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from load import Stopper, busy

from pytest_autofl.ledger import store as ledger
from pytest_autofl.run import infrastructure, ports
from pytest_autofl.run.envs import ENVIRONMENTS, EnvironmentSetup
from pytest_autofl.search.campaign import Search

pytestmark = pytest.mark.e2e


def test_a_search_on_an_oversubscribed_machine_crashes_nothing_and_scores_as_an_idle_one(pytester, project):
    stopper = Stopper(project / ".autofl")
    stopper.start()
    with busy():
        loaded = pytester.runpytest("--autofl-iterations=2", "-p", "no:cacheprovider")
    stopper.done.set()
    assert [whose for _, whose, _ in stopper.stopped[:1]] == ["site-1"]
    assert "server" in {whose for _, whose, _ in stopper.stopped}, stopper.stopped
    assert loaded.ret == 0, loaded.stdout.str()[-3000:]
    rows = ledger.read_rows(project / "results.tsv")
    assert len(rows) == 2 and "crash" not in {r.status for r in rows}
    assert all(r.infra == infrastructure.fingerprint() and r.recovered is not None for r in rows)
    assert all(r.fields()["retries"] == str(len(r.retry_reasons)) for r in rows)
    for row in rows:  # the same seeds on the idle machine give the same scores, to the contract's tolerance
        idle = pytester.runpytest("--autofl-rerun", row.candidate_id, "-p", "no:cacheprovider")
        assert idle.ret == 0, idle.stdout.str()[-3000:]
        idle.stdout.fnmatch_lines(["*REPRODUCED*"])


def test_a_run_flare_recovered_from_is_a_success_with_its_errors_counted(repo, tmp_path, monkeypatch):
    """With FLARE's default 5 s message timeouts, a server stopped for 8 s while its clients check in their
    results makes FLARE log "received TIMEOUT from server" and push the results anyway: the round completes,
    and the run is a success with the errors counted, not a crash (as it was when any ERROR line was one)."""
    monkeypatch.setattr(infrastructure, "CLIENT_CONFIG", {})  # FLARE's defaults for the exported job
    search, factory = _sim(repo, tmp_path, print, surface=_slow_surface(repo, tmp_path))
    stopper = Stopper(tmp_path / "a", ("server",))
    stopper.start()
    run = _runner(search, factory, tmp_path / "a", print).run(0)
    stopper.done.set()
    assert [whose for _, whose, _ in stopper.stopped][:1] == ["server"]
    assert run.error is None and run.score is not None
    assert run.recovered and all("received TIMEOUT from server" in line for line in run.recovered), (
        run.recovered
    )


def test_a_run_the_machine_broke_runs_again_fresh_and_scores_as_an_undisturbed_one(
    repo, tmp_path, monkeypatch
):
    """No port left for the simulator (every port of the pool reserved by another process: this test): the
    run fails before any candidate code runs, is run again once the ports are free, and scores exactly as a run
    that was never disturbed; the failed attempt's log is kept."""
    # The port reservations of this test's runs only; a short path, as the prefork socket lives there too
    # (AF_UNIX paths are at most 107 bytes: under pytest's tmp_path it would not start at all).
    private = tempfile.mkdtemp(prefix="autofl-", dir="/tmp")
    monkeypatch.setenv("TMPDIR", private)
    monkeypatch.setattr("tempfile.tempdir", None)
    pool = ports._directory()
    lines: list[str] = []

    def progress(event: object) -> None:
        lines.append(str(event))
        if "infrastructure failure" in str(event):  # the other simulations ended: their ports are free
            for taken in pool.glob("*.port"):
                taken.unlink()

    search, factory = _sim(repo, tmp_path, progress)
    undisturbed = _runner(search, factory, tmp_path / "a", progress).run(0)
    assert undisturbed.error is None and undisturbed.retries == []
    for port in ports.pool():
        (pool / f"{port}.port").write_text(str(os.getpid()))
    retried = _runner(search, factory, tmp_path / "b", progress).run(0)
    assert retried.error is None, retried.error
    (reason,) = retried.retries
    assert "free ports left" in reason and str(retried.directory / "attempt-1" / "run.log") in reason
    assert (retried.directory / "attempt-1" / "run.log").is_file()
    assert any("infrastructure failure, not the candidate's" in line for line in lines)
    assert retried.score == undisturbed.score and retried.digest == undisturbed.digest
    shutil.rmtree(private, ignore_errors=True)


def _slow_surface(repo, tmp_path):
    """The surface with a client that takes 2 s over each task: the server is then surely stopped before the
    client checks its task in (digits-smoke's own task ends 0.1 s after it arrives, sooner than the stop can
    follow the log line that announces it)."""
    surface = tmp_path / "slow-surface"
    shutil.copytree(repo / "surfaces", surface)
    script = surface / "client_train.py"
    receive = "        input_model = flare.receive()\n"
    assert receive in script.read_text()
    script.write_text(script.read_text().replace(receive, receive + "        __import__('time').sleep(2)\n"))
    return surface


def _sim(repo, tmp_path, progress, surface=None, sandbox="off"):
    """A search on digits-smoke (its contract, shards, surface) and the runners ``--autofl-env sim`` makes."""
    search = Search(
        rootdir=tmp_path,
        benchmarks_dir=repo / "benchmarks",
        benchmark="digits-smoke",
        surface_dir=surface or repo / "surfaces",
        workdir=tmp_path / "work",
        ledger_path=tmp_path / "results.tsv",
        progress=progress,
        sandbox=sandbox,
    )
    setup = EnvironmentSetup(search.workdir, search.contract.num_clients, sandbox=search.sandbox)
    return search, ENVIRONMENTS.get("sim")(setup).runner_factory()


def _runner(search, factory, trial_dir, progress):
    """The baseline's runner in ``trial_dir``."""
    baseline = search.factory.make({}, source="baseline")
    return factory(
        baseline, search.contract, search.surface_dir, search.shards().directory, trial_dir, progress
    )
