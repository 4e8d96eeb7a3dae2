"""How a seed run ended: the candidate's fault, the machine's (run it again), or a success FLARE recovered from.

The error lines are NVFlare's own, as logged in real runs: the task-check timeout is from a digits-smoke run whose
server was stopped (SIGSTOP) for 12 s while its clients submitted; FLARE pushed the results anyway and the run
completed with every round aggregated.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pytest_autofl.run.outcome import (
    CANDIDATE,
    OK,
    TRANSIENT,
    LoggedError,
    classify,
    logged_errors,
    missing_results,
    raised_in_trainer,
)
from pytest_autofl.run.trainer import RAISED

CONTEXT = "[identity=site-1, run=simulate_job, peer=simulator_server, peer_run=simulate_job, task_name=train]"
TIMEOUT = f"2026-12-06 22:36:18,145 - ClientRunner - ERROR - {CONTEXT} - programming error: received TIMEOUT from server"
RESEND = f"2026-12-06 22:36:23,201 - ClientRunner - ERROR - {CONTEXT} - failed to send task result to server - will try again"
EXECUTOR = "2026-12-02 10:00:00,000 - TrainerExecutor - ERROR - [identity=site-1] - the client script autofl_surface/client_train.py ended without a result (exit code 1)"
AGGREGATOR = (
    "2026-12-02 10:00:00,000 - ModelAggregator - ERROR - [identity=server] - Exception in accept: bad shape"
)
# a last round's submission the end of the run overtook (the server had its result; the reply came late)
LATE = "2026-12-08 00:59:57,621 - SimulatorClientRunManager - ERROR - failed to send task result: timeout"
GONE = "2026-12-02 10:00:00,000 - SimulatorRunner - ERROR - - Communication error with client site-1: Ran out of input"
COMPLETE = [{"round": r, "site": f"site-{c}", "steps": 20} for r in range(2) for c in (1, 2)]


def _workspace(tmp_path: Path, logs: dict[str, str]) -> Path:
    for site, text in logs.items():
        (tmp_path / site).mkdir(parents=True, exist_ok=True)
        (tmp_path / site / "error_log.txt").write_text(text)
    return tmp_path


def _outcome(tmp_path, logs, audit=COMPLETE, code=0, model=True, killed=None, run_log=None):
    errors = logged_errors(_workspace(tmp_path, logs))
    raised = raised_in_trainer(run_log.read_text().splitlines() if run_log else [])
    return classify(code, errors, raised, missing_results(audit, 2, 2), model, killed)


def test_a_run_flare_recovered_from_is_a_success_with_its_errors_counted(tmp_path):
    ended = _outcome(
        tmp_path, {"site-1": TIMEOUT + "\n" + RESEND + "\n", "site-2": TIMEOUT + "\n", "site-3": LATE + "\n"}
    )
    assert ended.kind == OK and ended.reason is None
    assert (
        len(ended.recovered) == 4
        and ended.recovered[0].startswith("site-1: ")
        and "TIMEOUT" in ended.recovered[0]
    )


def test_the_same_errors_in_a_run_that_stopped_are_the_machines_and_run_again(tmp_path):
    stopped = COMPLETE[:3]  # round 1 never had site-2's result
    ended = _outcome(tmp_path, {"site-1": TIMEOUT + "\n"}, audit=stopped, code=1)
    assert ended.kind == TRANSIENT and "received TIMEOUT from server" in str(ended.reason)
    assert missing_results(stopped, 2, 2) == ["round 1: site-2"]


def test_an_error_of_any_other_component_is_the_candidates_even_in_a_completed_run(tmp_path):
    ended = _outcome(tmp_path, {"server": AGGREGATOR + "\n", "site-1": TIMEOUT + "\n"})
    assert (
        ended.kind == CANDIDATE and ended.reason == "server: ModelAggregator: Exception in accept: bad shape"
    )


def test_a_client_script_that_raised_is_named_by_its_exception(tmp_path):
    """FLARE logs a client script's exception only as a trainer that ended; its traceback is in the log."""
    log = tmp_path / "run.log"
    shim = "Traceback (most recent call last):\n  File 'shim.py'\nOSError: [Errno 22] Invalid argument\n"
    thread = f"{RAISED} (site-1):\nTraceback (most recent call last):\n"
    log.write_text(shim + thread + "  File 'x.py'\nImportError: broken at import\n")
    assert raised_in_trainer(log.read_text().splitlines()) == [
        "ImportError: broken at import"
    ]  # not the shim's consequence
    ended = _outcome(tmp_path / "ws", {"site-1": EXECUTOR + "\n"}, audit=[], code=1, model=False, run_log=log)
    assert (ended.kind, ended.reason) == (CANDIDATE, "site-1: ImportError: broken at import")
    quiet = _outcome(tmp_path / "ws2", {}, audit=[], code=1, model=False, run_log=log)
    assert (quiet.kind, quiet.reason) == (CANDIDATE, "client script raised ImportError: broken at import")


def test_an_exception_in_a_logged_traceback_names_the_error(tmp_path):
    traceback = (
        f"{AGGREGATOR}\nTraceback (most recent call last):\n  File 'strategies.py'\nValueError: bad shape\n"
    )
    (error,) = logged_errors(_workspace(tmp_path, {"server": traceback}))
    assert (
        error.logger == "ModelAggregator" and error.detail == "ValueError: bad shape" and not error.messaging
    )


def test_a_worker_killed_by_a_signal_nobody_in_the_harness_sent_is_the_candidates(tmp_path):
    ended = _outcome(
        tmp_path, {"server": GONE + "\n"}, audit=COMPLETE[:2], code=0, killed={"site-1": "SIGKILL"}
    )
    assert ended.kind == CANDIDATE  # the server's word for it comes first; either way, not retried
    quiet = _outcome(tmp_path / "q", {}, audit=COMPLETE[:2], model=False, killed={"site-1": "SIGKILL"})
    assert quiet.reason == "site-1: its process was killed by SIGKILL (not by the harness)"
    server = _outcome(tmp_path / "s", {}, audit=COMPLETE[:2], code=137, model=False)
    assert (server.kind, server.reason) == (CANDIDATE, "simulator exited with code 137 (killed by SIGKILL)")
    # a trainer's link to the dead server
    lost = ["ConnectionResetError: [Errno 104] Connection reset by peer"]
    after = classify(137, [], lost, missing_results(COMPLETE[:2], 2, 2), False)
    assert after.reason == "simulator exited with code 137 (killed by SIGKILL)"
    own = classify(137, [], ["ValueError: x", *lost], [], False)  # a raise of its own still comes first
    assert own.reason == "client script raised ValueError: x"
    alive = classify(0, [], lost, [], True)  # with the simulator alive, a lost link is the script's
    assert (alive.kind, alive.reason) == (CANDIDATE, f"client script raised {lost[0]}")


def test_a_run_that_stopped_with_nothing_pointing_at_the_candidate_is_run_again(tmp_path):
    no_model = _outcome(tmp_path, {}, model=False)
    assert (no_model.kind, no_model.reason) == (
        TRANSIENT,
        "the run ended without an error but no final global model",
    )
    start = classify(
        1, [], [], missing_results([], 2, 2), False, None, "OSError: no 2 free ports left in 1-9"
    )
    assert (start.kind, start.reason) == (
        TRANSIENT,
        "simulator exited with code 1: OSError: no 2 free ports left in 1-9",
    )
    short = _outcome(tmp_path / "x", {}, audit=COMPLETE[1:])
    assert short.kind == TRANSIENT and "round 0: site-1" in str(short.reason)


def test_no_error_logs_and_a_complete_run_is_a_plain_success(tmp_path):
    assert _outcome(tmp_path, {}) == _outcome(tmp_path / "other", {"site-1": ""})
    assert _outcome(tmp_path, {}).kind == OK and _outcome(tmp_path, {}).recovered == ()


def test_a_malformed_audit_record_is_a_missing_result():
    broken = [*COMPLETE[:3], {"round": 1, "site": "site-2", "error": "KeyError: 'DXO'"}]
    assert missing_results(broken, 2, 2) == ["round 1: site-2"]


_MESSAGING = [
    LoggedError("site-1", "ClientRunner", TIMEOUT),
    LoggedError("site-2", "ClientRunner", RESEND),
    LoggedError("site-2", "SimulatorClientRunManager", LATE),
]
_CODE = [
    LoggedError("server", "ModelAggregator", AGGREGATOR),
    LoggedError("site-1", "", "garbage"),
    LoggedError("server", "SimulatorRunner", GONE + " (Connection reset by peer)"),  # a messaging phrase
    LoggedError("site-1", "ClientRunner", "... - RuntimeError from executor: Aborting the job!"),
    LoggedError("site-1", "ClientRunner", TIMEOUT, ("Traceback (most recent call last):", "ValueError: x")),
    LoggedError("site-1", "ClientRunManager", "... - failed to send task result: timeout, and more"),
]


@given(
    errors=st.lists(st.sampled_from(_MESSAGING + _CODE), max_size=6),
    code=st.sampled_from([0, 1, 137, -9]),
    complete=st.booleans(),
    model=st.booleans(),
    killed=st.sampled_from([None, {}, {"site-2": "SIGSEGV"}]),
)
def test_only_a_complete_clean_exit_with_messaging_errors_alone_is_a_success(
    errors, code, complete, model, killed
):
    missing = [] if complete else ["round 1: site-2"]
    ended = classify(code, errors, [], missing, model, killed)
    clean = code == 0 and complete and model and not killed and all(e in _MESSAGING for e in errors)
    assert (ended.kind == OK) == clean
    assert ended.kind != TRANSIENT or (all(e in _MESSAGING for e in errors) and not killed and code in (0, 1))
    if any(e in _CODE for e in errors):  # an error the catalogue does not know is never excused or retried
        assert ended.kind == CANDIDATE


def _attempts(tmp_path, monkeypatch, failures: int):
    """``CandidateRunner._simulate`` over a simulation that the machine breaks ``failures`` times, then passes:
    each attempt leaves its log and workspace, as a real one does."""
    from pytest_autofl.core.candidate import Candidate
    from pytest_autofl.core.contract import load_contract
    from pytest_autofl.core.schema import load_schema
    from pytest_autofl.run import infrastructure, runner
    from pytest_autofl.run.seedrun import SeedRun

    repo = Path(__file__).resolve().parent.parent
    contract = load_contract(repo / "benchmarks", "digits-smoke")
    baseline = Candidate(
        params=load_schema(repo / "surfaces").defaults(), family="fedavg", description="baseline"
    )
    monkeypatch.setattr(infrastructure, "RETRY_PAUSE_SECONDS", 0.0)
    calls: list[int] = []

    def simulation(spec, contract, progress, tag, preload, sandbox):
        run = SeedRun(seed=0, directory=tmp_path / "trial" / "seed-0")
        (run.workspace / "site-1").mkdir(parents=True, exist_ok=True)
        (run.workspace / "local").mkdir(exist_ok=True)  # kept: the simulator keeps it (SimEnv's policy)
        run.log_path.write_text(f"attempt {len(calls) + 1}\n")
        (run.workspace / "site-1" / "log.txt").write_text(f"attempt {len(calls) + 1}\n")
        calls.append(1)
        if len(calls) <= failures:
            run.error, run.transient = (
                f"seed 0: simulator exited with code 1: no port; log: {run.log_path}",
                True,
            )
        return run

    monkeypatch.setattr(runner, "run_simulation", simulation)
    said: list[str] = []
    candidate_runner = runner.CandidateRunner(
        baseline, contract, repo / "surfaces", tmp_path / "shards", tmp_path / "trial", said.append
    )
    return candidate_runner._simulate({}, 0, ""), said, len(calls)


def test_a_transient_failure_is_run_again_with_each_attempt_kept(tmp_path, monkeypatch):
    run, said, calls = _attempts(tmp_path, monkeypatch, failures=2)
    assert calls == 3 and run.error is None and len(run.retries) == 2
    for k in (1, 2):
        kept = run.directory / f"attempt-{k}"
        assert (kept / "run.log").read_text() == f"attempt {k}\n"
        assert (kept / "ws" / "site-1" / "log.txt").read_text() == f"attempt {k}\n"
        assert str(kept / "run.log") in run.retries[k - 1]  # the reason names the log where it now is
    assert run.log_path.read_text() == "attempt 3\n" and (run.workspace / "local").is_dir()
    assert [line.split(":")[0] for line in said] == ["seed 0", "seed 0"] and "1 of 2" in said[0]


def test_a_failure_on_every_attempt_is_a_crash_that_says_so(tmp_path, monkeypatch):
    run, _, calls = _attempts(tmp_path, monkeypatch, failures=5)
    assert calls == 3 and run.transient and len(run.retries) == 2
    assert str(run.error).endswith("(an infrastructure failure on all 3 attempts)")


def test_a_reason_is_the_message_without_flares_time_and_task_context(tmp_path):
    (error,) = logged_errors(_workspace(tmp_path, {"site-1": EXECUTOR + "\n"}))
    assert error.detail == (
        "TrainerExecutor: the client script autofl_surface/client_train.py ended without a result (exit code 1)"
    )
    (gone,) = logged_errors(_workspace(tmp_path / "g", {"server": GONE + "\n"}))
    assert gone.detail == "SimulatorRunner: Communication error with client site-1: Ran out of input"
