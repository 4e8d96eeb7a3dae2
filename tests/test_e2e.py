"""End to end with real NVFlare simulations on the digits-smoke contract (about 20 s per run)."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml
from campaign import processes_under, repin

from pytest_autofl.core.contract import load_contract
from pytest_autofl.ledger import store as ledger
from pytest_autofl.ledger.analysis import load_ledger

pytestmark = pytest.mark.e2e


def test_search_runs_real_candidates_and_writes_verdicts(pytester, project):
    result = pytester.runpytest("--autofl-iterations=2", "--autofl-mlflow", "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*[[]autofl 01[]] fedavg-* seed 0: round 2/2",
            "*[[]autofl 01[]] fedavg-* seed 0-repeat: validation accuracy *",
            "*[[]autofl[]] noise floor: sd * over 2 baseline seeds; repeat of seed 0: deterministic; threshold *",
            "*[[]autofl 01[]] fedavg-*: KEEP - baseline: becomes the first incumbent; noise floor*",
            "*[[]autofl 02[]] fedavg+prox-*: * - gain * seed(s); cost vs incumbent: 1.00x communication, *x run time",
            "*autofl summary*",
            "*verdicts: *",
            "noise floor: sd *",
            "held-out test (reported once, never used to select): *",
        ]
    )
    frame = load_ledger(project / "results.tsv")
    assert len(frame) == 2
    assert frame["status"].iloc[0] == "keep"
    assert frame["status"].iloc[1] in ("keep", "narrow", "discard")
    assert frame["target"].tolist() == ["baseline", "knobs: fedprox_mu"]
    contract = load_contract(project / "benchmarks", "digits-smoke")
    assert set(frame["contract_sha"]) == {contract.sha}
    assert frame["benchmark"].iloc[0] == "digits-smoke" and frame["seeds"].iloc[0] == "[0, 1]"
    assert 0.0 < float(frame["score"].iloc[0]) <= 1.0
    scores = json.loads(frame["seed_scores"].iloc[0])
    assert sum(scores.values()) / 2 == pytest.approx(float(frame["score"].iloc[0]), abs=1e-6)
    assert frame["n_seeds"].iloc[1] == 2 and frame["noise"].iloc[1] > 0 and frame["threshold"].iloc[1] > 0
    assert frame["cost_ratio"].iloc[1] == 1.0 and int(frame["comm_bytes"].iloc[0]) == 4 * 2 * 4 * 8970
    assert int(frame["n_params"].iloc[0]) == 8970
    assert len(frame["surface_sha"].iloc[0]) == 64 and frame["surface_sha"].nunique() == 1
    trial_dir, log, _, repeat_log = frame["artifacts"].iloc[0].split(";")
    assert repeat_log.endswith("seed-0-repeat/run.log")
    assert (project / log).is_file() and "Round 1 started" in (project / log).read_text()
    assert "[pytest-autofl prefork] torch and nvflare imported once" in (project / log).read_text()
    audit = (project / trial_dir / "seed-0" / "audit.jsonl").read_text().splitlines()
    assert len(audit) == 4  # 2 clients x 2 rounds reached the harness' audit filter
    assert pd.read_csv(project / "results.tsv", sep="\t").shape == (2, len(ledger.COLUMNS))
    assert processes_under(project) == []
    _curves_are_in_the_ledger_tensorboard_and_mlflow(project, frame)

    # A reviewer re-runs the baseline row exactly and sees the same scores, also with every simulator
    # process importing torch and nvflare itself (plain SimEnv's process model) instead of prefork's.
    baseline_id = frame["candidate_id"].iloc[0]
    rerun = pytester.runpytest(
        f"--autofl-rerun={baseline_id}", "--autofl-preload=off", "-v", "-p", "no:cacheprovider"
    )
    rerun.assert_outcomes(passed=1)
    rerun.stdout.fnmatch_lines(
        [
            f"*test_candidate[[]rerun-{baseline_id}[]]*",
            f"[[]autofl rerun[]] {baseline_id} (row *): REPRODUCED; seed 0: *, seed 1: *",
        ]
    )
    assert len(ledger.read_fields(project / "results.tsv")) == 2  # a rerun is a check, not a new verdict row

    # A second session continues the campaign: it reuses the ledger's incumbent and proposes new candidates,
    # then writes the campaign report and prints its facts as the last line of stdout.
    again = pytester.runpytest(
        "--autofl-iterations=1", "--autofl-report=out", "--autofl-json", "-p", "no:cacheprovider"
    )
    again.assert_outcomes(passed=1)
    frame = load_ledger(project / "results.tsv")
    assert len(frame) == 3 and frame["candidate_id"].nunique() == 3
    assert frame["incumbent_id"].iloc[2] != ""
    again.stdout.fnmatch_lines(["report: out*report.md (+ report.json, progress.png, curves.png)"])
    facts = json.loads(again.stdout.lines[-1])
    assert facts["rows"] == 3 and facts["sessions"] == 2
    assert facts["session"]["row_ids"] == [frame["row_id"].iloc[2]]
    assert facts["session"]["test"]["baseline"] > 0
    assert facts["baseline"]["candidate_id"] == baseline_id
    assert facts["best"]["reproduce"].startswith(
        "pytest --autofl-benchmark digits-smoke --autofl-ledger results.tsv"
    )
    assert json.loads((project / "out" / "report.json").read_text())["session"] == facts["session"]
    assert (project / "out" / "progress.png").stat().st_size > 10_000
    assert (project / "out" / "curves.png").stat().st_size > 10_000
    assert "held-out test (this session" in (project / "out" / "report.md").read_text().lower()


def test_a_crashing_candidate_is_recorded_and_the_search_goes_on(pytester, project):
    script = project / "surfaces" / "client_train.py"
    script.write_text(
        script.read_text().replace(
            "        round_num = int(input_model.current_round or 0)\n",
            "        round_num = int(input_model.current_round or 0)\n"
            "        if knobs['fedprox_mu'] == 0:\n            raise RuntimeError('injected client failure')\n",
        )
    )
    result = pytester.runpytest("--autofl-iterations=2", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*crash: seed 0: *injected client failure*"])
    frame = load_ledger(project / "results.tsv")
    assert frame["status"].tolist()[0] == "crash"
    assert "injected client failure" in frame["reason"].iloc[0]
    assert math.isnan(frame["score"].iloc[0])  # a crash has no score
    assert frame["status"].iloc[1] == "keep"  # the first clean run becomes the incumbent
    assert processes_under(project) == []


def test_a_hanging_candidate_is_killed_at_the_wall_clock_cap(pytester, project):
    repin(project, wall_clock_seconds=35)
    script = project / "surfaces" / "client_train.py"
    script.write_text(
        script.read_text().replace(
            "        round_num = int(input_model.current_round or 0)\n",
            "        round_num = int(input_model.current_round or 0)\n        import time\n        time.sleep(3600)\n",
        )
    )
    started = time.monotonic()
    result = pytester.runpytest("--autofl-iterations=1", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert time.monotonic() - started < 120
    result.stdout.fnmatch_lines(["*wall-clock cap of 35 s exceeded; stopped * process(es)*"])
    assert load_ledger(project / "results.tsv")["status"].tolist() == ["crash"]
    time.sleep(1)
    assert processes_under(project) == []


def test_a_client_that_overstates_its_steps_is_invalid(pytester, project):
    script = project / "surfaces" / "client_train.py"
    script.write_text(
        script.read_text().replace(
            'meta: dict = {"NUM_STEPS_CURRENT_ROUND": steps}',
            'meta: dict = {"NUM_STEPS_CURRENT_ROUND": steps + 100}',
        )
    )
    result = pytester.runpytest("--autofl-iterations=1", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*fairness invariant violated: local steps (seed 0, round 0, site-1): reported*"]
    )
    frame = load_ledger(project / "results.tsv")
    assert frame["status"].tolist() == ["invalid"]
    assert frame["reason"].iloc[0].startswith("fairness invariant violated: local steps")


def test_ctrl_c_mid_run_leaves_no_process_no_partial_row_and_resumes(pytester, project):
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        # one simulation at a time, so "seed 0 finished, seed 1 running" is a moment that exists
        [
            sys.executable,
            "-m",
            "pytest",
            "--autofl-iterations=1",
            "--autofl-parallel=1",
            "-v",  # a seed run's rounds are shown with -v
            "-p",
            "no:cacheprovider",
        ],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if "seed 1: round 1/2" in line:  # seed 0 of the baseline has finished, seed 1 is running
            time.sleep(1)
            masks = [m for m in Path(f"/proc/{proc.pid}/status").read_text().splitlines() if m[:3] == "Sig"]
            proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
            break
    rest, _ = proc.communicate(timeout=120)
    output = "".join(seen) + rest
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, (masks, output[-2000:])
    assert "KeyboardInterrupt" in output
    time.sleep(1)
    assert processes_under(project) == []
    assert (
        ledger.read_fields(project / "results.tsv") == []
    )  # the unfinished candidate left no row, not half a row

    # The same command again continues where it stopped: the finished seed-0 run is not repeated.
    again = pytester.runpytest("--autofl-iterations=1", "--autofl-parallel=1", "-p", "no:cacheprovider")
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["*seed 0: reusing the finished run in *seed-0 (scored again)*"])
    assert "seed 0: starting NVFlare SimEnv" not in again.stdout.str()
    assert [r["status"] for r in ledger.read_fields(project / "results.tsv")] == ["keep"]


def test_a_candidate_file_runs_alone_against_the_baseline_and_is_not_repeated(pytester, project):
    (project / "candidates").mkdir()
    (project / "candidates" / "fast_lr.yaml").write_text(
        "description: a larger client learning rate\nknobs: {lr: 0.2}\ncites: ['common sense']\n"
    )
    result = pytester.runpytest("candidates/fast_lr.yaml", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*[[]autofl[]] fast_lr.yaml -> fedavg-*: * - *"])
    frame = load_ledger(project / "results.tsv")
    assert frame["target"].tolist() == ["baseline", "knobs: lr"]
    assert frame["description"].iloc[1] == "a larger client learning rate [src: common sense]"
    assert frame["status"].iloc[1] in ("keep", "narrow", "discard")
    again = pytester.runpytest("candidates/fast_lr.yaml", "-p", "no:cacheprovider", "-rs")
    again.assert_outcomes(skipped=1)
    again.stdout.fnmatch_lines(["*already ran under this contract (row *); --autofl-force runs it again*"])
    assert len(ledger.read_fields(project / "results.tsv")) == 2


def test_a_patched_aggregator_runs_isolated_is_recorded_with_patch_sha_and_reruns(pytester, project):
    source = (project / "surfaces" / "strategies.py").read_text()
    frozen = source.replace(
        '    """McMahan et al. 2017: step-weighted mean of client updates."""\n',
        '    """A frozen server: it never moves the global model (a patch whose effect is unmistakable)."""\n\n'
        "    def aggregate_model(self) -> FLModel:\n"
        "        return self._finish({k: 0.0 * v for k, v in self._weighted_mean().items()})\n",
    )
    assert frozen != source
    (project / "candidates").mkdir()
    (project / "candidates" / "frozen.yaml").write_text(
        yaml.safe_dump(
            {"description": "server that never moves", "knobs": {}, "files": {"strategies.py": frozen}}
        )
    )
    result = pytester.runpytest("candidates/frozen.yaml", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert (project / "surfaces" / "strategies.py").read_text() == source  # the user's tree is untouched
    frame = load_ledger(project / "results.tsv")
    base, patched = frame.iloc[0], frame.iloc[1]
    assert patched["candidate_id"].startswith("fedavg+patch-") and len(patched["patch_sha"]) == 64
    assert patched["surface_sha"] != base["surface_sha"] and base["patch_sha"] == ""
    assert patched["status"] == "discard" and float(patched["score"]) < float(base["score"])
    trial = project / patched["artifacts"].split(";")[0]
    assert "never moves" in (trial / "autofl_surface" / "strategies.py").read_text()
    assert json.loads((trial / "patch.json").read_text()) == {"strategies.py": frozen}

    rerun = pytester.runpytest(f"--autofl-rerun={patched['candidate_id']}", "-p", "no:cacheprovider")
    rerun.assert_outcomes(passed=1)
    rerun.stdout.fnmatch_lines([f"[[]autofl rerun[]] {patched['candidate_id']} (row *): REPRODUCED; *"])


def _start(project, *args):
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "pytest", *args, "-v", "-p", "no:cacheprovider"],  # -v: rounds are shown
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _gone_within(project, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := processes_under(project)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def test_a_killed_pytest_leaves_no_simulation_behind(project):
    """SIGKILL runs no cleanup code in pytest: the guard around each tree notices and kills it."""
    import signal

    proc = _start(project, "--autofl-iterations=1")
    assert proc.stdout is not None
    for line in proc.stdout:
        if "round 1/2" in line:
            break
    assert any("nvflare.private.fed.app.simulator" in c for c in processes_under(project))
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert _gone_within(project, 15) == []


def test_xdist_workers_share_one_search_and_a_crashed_worker_leaves_nothing(pytester, project):
    """-n 2: distinct candidates, one row each written by the controller, one summary. Then a worker is
    killed mid-run: its simulations die with it and the other worker finishes the search."""
    result = pytester.runpytest("-n", "2", "--autofl-iterations=4", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    rows = ledger.read_fields(project / "results.tsv")
    assert len(rows) == 4 and len({r["candidate_id"] for r in rows}) == 4
    assert rows[0]["status"] == "keep" and rows[0]["description"] == "baseline (schema defaults)"
    assert all(
        r["incumbent_id"] == rows[0]["candidate_id"] for r in rows[1:]
    )  # nothing beat the baseline here
    assert len({r["row_id"].split(":")[1] for r in rows}) == 2  # rows decided on both workers
    out, progress = (
        result.stdout.str(),
        result.stderr.str(),
    )  # workers' progress lines go to the shared stderr
    assert "[gw0] [autofl" in progress and "[gw1] [autofl" in progress
    result.stdout.fnmatch_lines(
        ["*autofl summary*", "verdicts: *", "noise floor: sd *", "ledger: *results.tsv"]
    )
    summary = out[out.index("autofl summary") :]
    assert all(r["candidate_id"] in summary for r in rows)
    assert processes_under(project) == []

    proc = _start(project, "-n", "2", "--autofl-iterations=2")
    assert proc.stdout is not None
    victim = None
    for line in proc.stdout:
        if "round 1/2" in line:
            guards = [
                p
                for p in psutil.process_iter(["cmdline"])
                if "pytest_autofl.run.guard" in " ".join(p.info["cmdline"] or [])
                and str(project) in " ".join(p.info["cmdline"] or [])
            ]
            if guards:
                victim = psutil.Process(
                    int(guards[0].info["cmdline"][3])
                )  # the guard's parent: an xdist worker
                victim.kill()
                break
    assert victim is not None
    rest, _ = proc.communicate(timeout=300)
    assert "crashed" in rest or "worker" in rest.lower(), rest[-2000:]
    assert _gone_within(project, 15) == []
    assert (
        len(ledger.read_fields(project / "results.tsv")) >= 5
    )  # the surviving worker recorded its candidate


def test_poc_runs_candidates_on_a_real_deployment_then_prod_reuses_one(pytester, project):
    """--autofl-env poc: a real POC deployment (server + 2 client processes over loopback) runs the baseline;
    the same contract and evaluator give the SimEnv scores; nothing is left running. Then --autofl-env prod
    submits to a deployment we started ourselves, through its admin startup kit."""
    from pytest_autofl.run.envs.poc import PocDeployment

    result = pytester.runpytest("--autofl-iterations=1", "--autofl-env=poc", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    (row,) = ledger.read_fields(project / "results.tsv")
    assert row["status"] == "keep" and row["env"] == "poc"
    # deterministic training: the POC deployment reproduces the SimEnv baseline of this contract exactly
    assert json.loads(row["seed_scores"]) == {"0": 0.200557, "1": 0.29805}
    trial = project / row["artifacts"].split(";")[0]
    assert len((trial / "seed-0" / "audit.jsonl").read_text().splitlines()) == 4  # 2 clients x 2 rounds
    assert (
        trial / "seed-0" / "ws" / "trial" / "server" / "simulate_job" / "app_server" / "FL_global_model.pt"
    ).is_file()
    assert _gone_within(project, 20) == []

    deployment = PocDeployment(project / "own-poc", 2)
    try:
        deployment.start()
        again = pytester.runpytest(
            "--autofl-iterations=1",
            "--autofl-env=prod",
            f"--autofl-startup-kit={deployment.admin_kit}",
            "-p",
            "no:cacheprovider",
        )
        again.assert_outcomes(passed=1)
        rows = ledger.read_fields(project / "results.tsv")
        assert rows[1]["env"] == "prod" and rows[1]["status"] in ("keep", "narrow", "discard")
        assert any(
            "simulator" not in c and "own-poc" in c for c in processes_under(project)
        )  # prod stops nothing
    finally:
        deployment.stop()
    assert _gone_within(project, 20) == []


_READ_BACK = """
import json, sys
from pathlib import Path
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

project, seed_dirs = Path(sys.argv[1]), json.loads(sys.argv[2])
curves = {}
for seed_dir in seed_dirs:
    events = EventAccumulator(seed_dir)
    events.Reload()
    curves[seed_dir] = [[e.step, e.value] for e in events.Scalars("validation/accuracy")]
client = MlflowClient((project / ".autofl" / "mlruns").as_uri())
experiment = client.get_experiment_by_name("autofl-digits-smoke")
runs = {}
for run in client.search_runs([experiment.experiment_id]):
    history = client.get_metric_history(run.info.run_id, "validation_seed_0")
    runs[run.info.run_name] = {
        "params": run.data.params,
        "verdict": run.data.tags["autofl.verdict"],
        "score": run.data.metrics["score"],
        "steps": [m.step for m in history],
    }
print(json.dumps({"tensorboard": curves, "mlflow": runs}))
"""


def _curves_are_in_the_ledger_tensorboard_and_mlflow(project: Path, frame: pd.DataFrame) -> None:
    """Each seed run's validation after rounds 0 (the start), 1 and 2 (the final model): in the ledger, as
    TensorBoard scalars in the seed run's directory (TensorBoard's reader), and in one MLflow run per candidate
    (MLflow's client). Both read in a process of their own: pytester takes back this process' modules after
    the test, and numpy's extension modules cannot be imported twice."""
    import subprocess
    import sys

    expected = {}
    for i in range(2):
        curves, scores = json.loads(frame["curves"].iloc[i]), json.loads(frame["seed_scores"].iloc[i])
        assert sorted(curves) == ["0", "1"] and all(len(c) == 3 and None not in c for c in curves.values())
        assert {s: c[-1] for s, c in curves.items()} == pytest.approx(scores)
        trial_dir = project / frame["artifacts"].iloc[i].split(";")[0]
        expected.update({str(trial_dir / f"seed-{seed}"): curve for seed, curve in curves.items()})
    read = subprocess.run(
        [sys.executable, "-c", _READ_BACK, str(project), json.dumps(sorted(expected))],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"},
        check=True,
    )
    found = json.loads(read.stdout.splitlines()[-1])
    for seed_dir, curve in expected.items():
        assert found["tensorboard"][seed_dir] == [
            [step, pytest.approx(v, abs=1e-6)] for step, v in enumerate(curve)
        ]
    assert sorted(found["mlflow"]) == sorted(frame["candidate_id"])
    for i, candidate_id in enumerate(frame["candidate_id"]):
        run = found["mlflow"][candidate_id]
        assert run["params"] == {k: str(v) for k, v in json.loads(frame["params"].iloc[i]).items()}
        assert run["verdict"] == frame["status"].iloc[i]
        assert run["score"] == pytest.approx(float(frame["score"].iloc[i]))
        assert run["steps"] == [0, 1, 2]
