"""Where researchers look: per-round curves in the ledger, TensorBoard event files, MLflow runs and the
report's curves plot, from rows and curves the tests make (the real e2e run is in test_e2e)."""

from __future__ import annotations

import json

import matplotlib.image
import pytest
from test_analysis import FIXTURE, write

from pytest_autofl.ledger import store as ledger
from pytest_autofl.ledger.row import Row, RowFormatError
from pytest_autofl.report import facts as report
from pytest_autofl.report.mlflow_runs import open_runs, redacted, store_uri
from pytest_autofl.run.curves import write_curve

CURVES = {0: (0.1, 0.4, None, 0.7), 1: (0.12, 0.5, 0.6, 0.65)}


def _row(**kw) -> Row:
    fields = {
        "status": "keep",
        "candidate_id": "fedavg+prox-1",
        "params": {"lr": 0.05, "fedprox_mu": 0.01, "aggregator": "fedavg"},
        "description": "fedprox_mu=0.01",
        "target": "knobs: fedprox_mu",
        "budget": "rounds=3",
        "score": 0.675,
        "runtime_seconds": 40.0,
        "artifacts": (),
        "seed_scores": {0: 0.7, 1: 0.65},
        "reason": "gain +0.1 over 2 seeds",
        "contract_sha": "c" * 64,
        "split_sha": "s" * 64,
        "benchmark": "digits-smoke",
        "env": "sim",
        "delta": 0.1,
        "ci_low": 0.02,
        "ci_high": 0.18,
        "curves": CURVES,
        "row_id": "test:1",
    }
    return Row(**{**fields, **kw})


def test_curves_survive_the_ledger_and_a_damaged_curves_field_is_named(tmp_path):
    row = _row()
    assert json.loads(row.fields()["curves"]) == {"0": [0.1, 0.4, None, 0.7], "1": [0.12, 0.5, 0.6, 0.65]}
    assert Row.parse(row.fields()).curves == CURVES
    assert Row.parse({**row.fields(), "curves": ""}).curves is None  # an older row: no curves
    with pytest.raises(RowFormatError, match="column curves = .* is not seed: \\[scores\\]"):
        Row.parse({**row.fields(), "curves": '{"0": 3}'})


def test_a_curve_is_a_tensorboard_scalar_per_round_and_a_rescored_run_replaces_it(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    write_curve(tmp_path, "validation/accuracy", [0.0, 0.5, 0.9])
    events = write_curve(tmp_path, "validation/accuracy", [0.1, 0.4, None, 0.7])  # scored again
    assert list(tmp_path.glob("events.out.tfevents.*")) == [events]
    accumulator = EventAccumulator(str(tmp_path))
    accumulator.Reload()
    points = [(e.step, round(e.value, 6)) for e in accumulator.Scalars("validation/accuracy")]
    assert points == [(0, 0.1), (1, 0.4), (3, 0.7)]  # a round the evaluator could not score is no point


def test_the_report_plots_baseline_and_best_curves_only_when_the_ledger_has_them(tmp_path):
    assert report.write_report(FIXTURE, tmp_path / "old", report.Scoring())["curves"] == {
        "baseline": {},
        "best": {},
    }
    assert not (tmp_path / "old" / "curves.png").exists()  # a ledger from before curves: no empty plot
    assert "curves.png" not in (tmp_path / "old" / "report.md").read_text()
    base = _row(candidate_id="base", status="keep", curves={0: (0.1, 0.3, 0.4), 1: (0.1, 0.2, 0.5)})
    best = _row(candidate_id="best", row_id="test:2", params={"lr": 0.1})
    ledger_path = tmp_path / "results.tsv"
    write(ledger_path, [base.fields(), best.fields()])
    facts = report.write_report(ledger_path, tmp_path / "out", report.Scoring())
    assert facts["curves"]["best"] == {0: [0.1, 0.4, None, 0.7], 1: [0.12, 0.5, 0.6, 0.65]}
    png = tmp_path / "out" / "curves.png"
    assert matplotlib.image.imread(png).shape[:2] == (550, 880)
    assert (
        "![per-round validation: baseline vs best](curves.png)"
        in (tmp_path / "out" / "report.md").read_text()
    )


def test_secrets_in_a_tracking_uri_are_never_shown(tmp_path):
    assert redacted("https://alice:s3cret@mlflow.example/x failed") == "https://***@mlflow.example/x failed"
    assert store_uri("local", tmp_path) == (tmp_path / "mlruns").resolve().as_uri()
    assert store_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"


@pytest.mark.subprocess  # imports mlflow (seconds)
def test_each_row_is_one_mlflow_run_read_back_through_mlflows_client(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    trial = tmp_path / ".autofl" / "runs" / "s" / "02-fedavg+prox-1"
    trial.mkdir(parents=True)
    (trial / "patch.json").write_text('{"files": {}}')
    runs, line = open_runs("local", tmp_path / ".autofl", tmp_path)
    assert runs is not None and line.startswith("mlflow: one run per candidate in file://")
    kept = runs.log(_row(artifacts=(str(trial.relative_to(tmp_path)),)))
    crashed = runs.log(_row(status="crash", candidate_id="broken", score=None, seed_scores={}, curves=None))
    assert runs.log(_row(status="literature", candidate_id="lit-0001")) is None  # an event, not a candidate

    client = MlflowClient(store_uri("local", tmp_path / ".autofl"))
    experiment = client.get_experiment_by_name("autofl-digits-smoke")
    assert len(client.search_runs([experiment.experiment_id])) == 2
    run = client.get_run(kept)
    assert run.info.run_name == "fedavg+prox-1" and run.info.status == "FINISHED"
    assert run.data.params == {"aggregator": "fedavg", "fedprox_mu": "0.01", "lr": "0.05"}
    assert run.data.tags["autofl.verdict"] == "keep"
    assert run.data.tags["autofl.interval"] == "[+0.0200, +0.1800]"
    assert run.data.tags["autofl.seeds"] == "0,1"
    assert run.data.metrics["score"] == 0.675 and run.data.metrics["ci_high"] == 0.18
    history = client.get_metric_history(kept, "validation_seed_0")
    assert [(m.step, m.value) for m in history] == [(0, 0.1), (1, 0.4), (3, 0.7)]
    mean = {m.step: m.value for m in client.get_metric_history(kept, "validation")}
    assert mean == pytest.approx({0: 0.11, 1: 0.45, 2: 0.6, 3: 0.675})
    assert [a.path for a in client.list_artifacts(kept)] == ["patch.json"]
    assert client.get_run(crashed).info.status == "FAILED"


@pytest.mark.subprocess  # imports mlflow (seconds)
def test_a_tracking_uri_mlflow_cannot_use_is_one_line_and_no_runs(tmp_path):
    runs, line = open_runs("nosuchscheme://alice:pw@host/x", tmp_path, tmp_path)
    assert runs is None
    assert line.startswith("mlflow: nosuchscheme://***@host/x cannot be used (") and "pw" not in line


def test_the_ledger_layout_grows_by_the_curves_column():
    assert "curves" in ledger.COLUMNS and "curves" not in ledger.LAYOUTS[2]


def test_a_bare_mlflow_flag_that_swallowed_a_test_path_is_a_usage_error(pytester, project):
    with pytest.raises(pytest.UsageError, match="--autofl-mlflow took 'benchmarks' .* --autofl-mlflow=URI"):
        pytester.parseconfigure("--autofl-mlflow", "benchmarks")
    assert pytester.parseconfigure("--autofl-mlflow=http://127.0.0.1:5000", "benchmarks")
