"""What one seed run of a candidate left behind, read by the harness: the run's record and the audit file its
server filter wrote (how it ended is told by ``outcome``)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JOB_NAME = "trial"
ROUNDS_DIR = "rounds"  # in a seed run's directory: the global model after each round (``audit.RoundModels``)


@dataclass
class SeedRun:
    seed: int
    directory: Path
    runtime_seconds: float = 0.0
    error: str | None = None
    audit: list[dict[str, Any]] = field(default_factory=list)
    score: float | None = None
    n_params: int | None = None
    initial: dict[str, Any] | None = (
        None  # the untrained model: its score, the chance level, an output digest
    )
    digest: str | None = None  # of the final model's outputs on the held-out inputs
    task_seconds: dict[str, list[float]] | None = None  # the trainers' CPU per site and task (the meter)
    twin_seconds: dict[str, list[float]] | None = None  # a code change's twins', task by task beside them
    metered: bool = False  # ran under the meter: no measurement then means the meter was stopped
    curve: list[float | None] | None = None  # validation after round 0 (the start), 1, ..., the final model
    transient: bool = False  # its error is the machine's, not the candidate's (``outcome``): run it again
    tampered: bool = False  # its error: the candidate's code changed the harness' job (``export_check``)
    recovered: list[str] = field(default_factory=list)  # messaging errors FLARE recovered from
    retries: list[str] = field(default_factory=list)  # why each earlier attempt of this run was run again

    def round_models(self, rounds: int) -> tuple[Path, ...]:
        """Where the harness' server filter saved the global model after rounds 1 .. ``rounds`` - 1."""
        return tuple(self.directory / ROUNDS_DIR / f"round-{k}.pt" for k in range(1, rounds))

    @property
    def cpu_seconds(self) -> float | None:
        """The trainers' CPU in their task windows, summed over sites and tasks."""
        if self.task_seconds is None:
            return None
        return sum(sum(tasks) for tasks in self.task_seconds.values())

    @property
    def log_path(self) -> Path:
        return self.directory / "run.log"

    @property
    def model_path(self) -> Path:
        return (
            self.directory / "ws" / JOB_NAME / "server" / "simulate_job" / "app_server" / "FL_global_model.pt"
        )

    def set_aside(self, attempt: int) -> Path:
        """Move what an attempt of this run left (log, audit, round models, workspace) to ``attempt-<k>/``, so
        the next attempt starts fresh and nothing of the failed one is lost. The exported job stays."""
        target = self.directory / f"attempt-{attempt}"
        target.mkdir(parents=True, exist_ok=True)
        for path in (self.log_path, self.directory / "audit.jsonl", self.directory / ROUNDS_DIR):
            if path.exists():
                shutil.move(path, target / path.name)
        kept = ("startup", "local")  # what the simulator keeps of a workspace (local/: SimEnv's policy)
        moved = [p for p in self.workspace.iterdir() if p.name not in kept] if self.workspace.is_dir() else []
        if moved:
            (target / "ws").mkdir(exist_ok=True)
        for path in moved:
            shutil.move(path, target / "ws" / path.name)
        return target

    @property
    def workspace(self) -> Path:
        return self.directory / "ws" / JOB_NAME

    @property
    def comm_bytes(self) -> int | None:
        """Bytes over the wire for model weights: every client's update up (audited), the global model down
        to every client each round. float32 weights."""
        if self.n_params is None:
            return None
        up = sum(int(rec.get("values") or 0) for rec in self.audit)
        down = len(self.audit) * self.n_params
        return 4 * (up + down)


def read_audit(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
