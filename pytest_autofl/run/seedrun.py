"""What one seed run of a candidate left behind, read by the harness: the run's record, the audit file its
server filter wrote, and the first error in NVFlare's logs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JOB_NAME = "trial"
ROUNDS_DIR = "rounds"  # in a seed run's directory: the global model after each round (``audit.RoundModels``)
EXCEPTION_RE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt): ")
TRAINER_TRACEBACK = "Exception in thread client_api_in_process_trainer"  # a client script raised


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
    cpu_seconds: float | None = None  # the clients' CPU time, as the harness' meter (the zygote) measured it
    metered: bool = False  # ran under the meter: no measurement then means the meter was stopped
    curve: list[float | None] | None = None  # validation after round 0 (the start), 1, ..., the final model

    def round_models(self, rounds: int) -> tuple[Path, ...]:
        """Where the harness' server filter saved the global model after rounds 1 .. ``rounds`` - 1."""
        return tuple(self.directory / ROUNDS_DIR / f"round-{k}.pt" for k in range(1, rounds))

    @property
    def log_path(self) -> Path:
        return self.directory / "run.log"

    @property
    def model_path(self) -> Path:
        return (
            self.directory / "ws" / JOB_NAME / "server" / "simulate_job" / "app_server" / "FL_global_model.pt"
        )

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


def first_error(workspace: Path, run_log: Path | None = None) -> str | None:
    """NVFlare can fail silently with exit code 0: its error logs are the truth. Client logs come first,
    since a client failure shows up on the server only as a consequence. The exception that caused it is named
    when one is there: in the error log, else raised in a client's trainer thread and printed to ``run_log``
    (an exception at import, say, that NVFlare logs only as "trainer thread exited")."""
    logs = sorted(workspace.glob("*/error_log.txt"), key=lambda p: (p.parent.name == "server", p.parent.name))
    for log in logs:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            exceptions = [ln for ln in lines if EXCEPTION_RE.match(ln)] or _raised(run_log)
            detail = exceptions[0] if exceptions else next((ln for ln in lines if " ERROR " in ln), lines[0])
            return f"{log.parent.name}: {detail[:300]}"
    return None


def _raised(run_log: Path | None) -> list[str]:
    """What the client scripts raised in NVFlare's in-process trainer threads: the last line of each such
    traceback in the run's log (other tracebacks there are consequences, not causes)."""
    if run_log is None or not run_log.is_file():
        return []
    raised, inside = [], False
    for line in run_log.read_text(errors="replace").splitlines():
        if line.startswith(TRAINER_TRACEBACK):
            inside = True
        elif inside and EXCEPTION_RE.match(line):
            raised.append(line.strip())
            inside = False
    return raised


def read_audit(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
