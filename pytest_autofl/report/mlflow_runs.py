"""``--autofl-mlflow``: one MLflow run per candidate, mirrored from its ledger row as the row is written, so
researchers who live in MLflow see the campaign there: the knobs as params; the verdict, reason, interval,
seeds and patch as tags; the score, delta, interval and per-seed scores as metrics; the per-round validation
curves as metric histories (one per seed and their mean); the candidate's patch as an artifact.

The ledger stays the record: a row MLflow refuses is reported once, MLflow is left alone for the rest of the
session, and nothing else changes."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pytest_autofl.core.verdict import CRASH, INVALID
from pytest_autofl.ledger.row import Row

LOCAL_STORE = "mlruns"  # under the work directory, when --autofl-mlflow names no URI
_FAILED = (CRASH, INVALID)
_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")


def redacted(text: str) -> str:
    """``text`` with the user and password of any URL in it removed (a tracking URI may carry them)."""
    return _CREDENTIALS.sub(r"\1***@", text)


def store_uri(option: str, workdir: Path) -> str:
    """The tracking URI: the option's, or a file store in the work directory for the bare flag."""
    return option if option != "local" else (workdir / LOCAL_STORE).resolve().as_uri()


class MlflowRuns:
    """The MLflow side of a session: one experiment per benchmark (``autofl-<benchmark>``), one run per row."""

    def __init__(self, uri: str, rootdir: Path):
        if uri.startswith("file:"):  # MLflow 3 wants an opt-in for its file store, which a local default is
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient

        self.client, self.rootdir = MlflowClient(uri), rootdir
        self._experiments: dict[str, str] = {}

    def _experiment(self, benchmark: str) -> str:
        name = f"autofl-{benchmark}"
        if name not in self._experiments:
            found = self.client.get_experiment_by_name(name)
            self._experiments[name] = found.experiment_id if found else self.client.create_experiment(name)
        return self._experiments[name]

    def log(self, row: Row) -> str | None:
        """The row as a finished MLflow run (a literature event is not a candidate: no run); its run id."""
        from mlflow.entities import Metric, Param, RunTag

        if row.is_literature:
            return None
        row = Row.parse(row.fields())  # the values exactly as the ledger has them
        run = self.client.create_run(self._experiment(row.benchmark), run_name=row.candidate_id)
        run_id = run.info.run_id
        params = [Param(k, str(v)[:6000]) for k, v in sorted(row.params.items())]
        tags = [RunTag(k, v) for k, v in _tags(row).items()]
        metrics = [Metric(k, v, 0, 0) for k, v in _scalars(row).items()]
        metrics += [Metric(k, v, 0, step) for k, step, v in _curve_points(row)]
        for start in range(0, len(metrics), 1000):  # MLflow's batch limit
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000], params=params, tags=tags)
            params, tags = [], []
        patch = self.rootdir / row.trial_dir / "patch.json"
        if row.trial_dir and patch.is_file():
            self.client.log_artifact(run_id, str(patch))
        self.client.set_terminated(run_id, "FAILED" if row.status in _FAILED else "FINISHED")
        return run_id


def _tags(row: Row) -> dict[str, str]:
    from pytest_autofl.report.summary import interval_text

    return {
        "autofl.verdict": row.status,
        "autofl.reason": row.reason[:5000],
        "autofl.interval": interval_text(row),
        "autofl.seeds": ",".join(str(s) for s in sorted(row.seed_scores)),
        "autofl.description": row.description[:5000],
        "autofl.patch_sha": row.patch_sha,
        "autofl.proposer": row.proposer,
        "autofl.source": row.source,
        "autofl.contract_sha": row.contract_sha,
        "autofl.row_id": row.row_id,
        "autofl.trial_dir": row.trial_dir,
    }


def _scalars(row: Row) -> dict[str, float]:
    named = {
        "score": row.score if row.clean else None,
        "delta": row.delta,
        "ci_low": row.ci_low,
        "ci_high": row.ci_high,
        "n_seeds": float(len(row.seed_scores)),
        "runtime_seconds": row.runtime_seconds,
        "cpu_seconds": row.cpu_seconds,
    }
    named.update({f"score_seed_{seed}": score for seed, score in row.seed_scores.items()})
    return {k: float(v) for k, v in named.items() if v is not None}


def _curve_points(row: Row) -> list[tuple[str, int, float]]:
    """``validation_seed_<s>`` per seed and ``validation`` (their mean) per round: step 0 is the start."""
    curves = row.curves or {}
    points = [
        (f"validation_seed_{seed}", step, v)
        for seed, curve in sorted(curves.items())
        for step, v in enumerate(curve)
        if v is not None
    ]
    for step in range(max((len(c) for c in curves.values()), default=0)):
        values = [v for c in curves.values() if step < len(c) and (v := c[step]) is not None]
        if values:
            points.append(("validation", step, sum(values) / len(values)))
    return points


def open_runs(option: str, workdir: Path, rootdir: Path) -> tuple[MlflowRuns | None, str]:
    """The session's MLflow side and a line saying where runs go, or None and why not (mlflow missing, a
    URI it refuses): a search never stops for MLflow."""
    uri = store_uri(option, workdir)
    try:
        return MlflowRuns(uri, rootdir), f"mlflow: one run per candidate in {redacted(uri)}"
    except ImportError:
        return (
            None,
            "mlflow: not installed (pip install 'pytest-autofl[mlflow]'); no MLflow runs this session",
        )
    except Exception as exc:  # noqa: BLE001 - MLflow raises its own kinds for a URI it cannot use
        return None, f"mlflow: {redacted(uri)} cannot be used ({redacted(str(exc))[:200]}); no MLflow runs"
