"""Run one candidate seed by seed as real NVFlare simulations, then score each with the evaluator.

Layout of a trial directory (the ledger's ``artifacts`` column points at it)::

    <trial>/candidate.json            the candidate and the contract hash it ran under
    <trial>/autofl_surface/           a private copy of the surface (the user's tree is never touched)
    <trial>/export-seed-<s>.log       the one process that built the jobs of several seeds
    <trial>/seed-<s>/client.json      what the client script reads: seed, knobs, budget, shard directory
    <trial>/seed-<s>/spec.json        what the job was built from
    <trial>/seed-<s>/job/trial/       the exported FLARE job (SimEnv); POC / prod build it where they submit it
    <trial>/seed-<s>/run.log          the simulator's output
    <trial>/seed-<s>/audit.jsonl      what the server received, written by the harness' audit filter
    <trial>/seed-<s>/ws/trial/...     the NVFlare workspace (final global model under server/simulate_job)
    <trial>/evaluate-validation-<n>.* the n-th evaluator process: spec, the models it scored, its log
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.core.contract import Contract, sha256_of
from pytest_autofl.core.surface_rules import CHECKS
from pytest_autofl.run.commands import EVALUATE, FLARE_JOB, PACKAGE_ROOT, preforked, python_module, simulator
from pytest_autofl.run.evaluate import EVAL_PREFIX
from pytest_autofl.run.processes import TreeResult, python_env, run_tree

SURFACE_PACKAGE = "autofl_surface"
JOB_NAME = "trial"
TASK_REQUEST_INTERVAL = 0.1  # the same for every candidate; NVFlare's default 2 s only adds idle time
EVAL_TIMEOUT_SECONDS = 300.0
EXPORT_TIMEOUT_SECONDS = 300.0
_ROUND_RE = re.compile(r"Round (\d+) started")
_EXCEPTION_RE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt): ")


@dataclass
class SeedRun:
    seed: int
    directory: Path
    runtime_seconds: float = 0.0
    error: str | None = None
    audit: list[dict[str, Any]] = field(default_factory=list)
    score: float | None = None
    n_params: int | None = None

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


PATCH_FILE = "patch.json"


def prepare_surface(
    surface_dir: Path, trial_dir: Path, files: tuple[tuple[str, str], ...] = (), diff: str = ""
) -> Path:
    """Copy the surface's Python files into ``<trial>/autofl_surface``, apply a candidate's replacement files
    there (never in the user's tree; names were validated by ``candidate_file``), save them as
    ``<trial>/patch.json`` with the artifacts, and return the package's parent."""
    package = trial_dir / SURFACE_PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    for name in CHECKS:
        source = surface_dir / name
        if source.is_symlink():
            raise ValueError(f"{source} is a symlink; surface files must be regular files")
        shutil.copy2(source, package / name)
    for name, text in files:
        if name not in CHECKS or (package / name).is_symlink():
            raise ValueError(f"refusing to write {name!r}: not a surface file")
        (package / name).write_text(text)
    if files:
        (trial_dir / PATCH_FILE).write_text(json.dumps(dict(files), indent=1))
    if diff:
        (trial_dir / "patch.diff").write_text(diff)
    (package / "__init__.py").write_text('"""Per-trial copy of the mutation surface."""\n')
    return trial_dir


def surface_sha(directory: Path) -> str:
    """Hash of the surface's code files in ``directory`` (a trial's ``autofl_surface`` copy, or the source)."""
    return sha256_of(
        {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in sorted(CHECKS)}
    )


def _first_error(workspace: Path) -> str | None:
    """NVFlare can fail silently with exit code 0: its error logs are the truth. Client logs come first,
    since a client failure shows up on the server only as a consequence."""
    logs = sorted(workspace.glob("*/error_log.txt"), key=lambda p: (p.parent.name == "server", p.parent.name))
    for log in logs:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            exceptions = [ln for ln in lines if _EXCEPTION_RE.match(ln)]
            detail = exceptions[0] if exceptions else next((ln for ln in lines if " ERROR " in ln), lines[0])
            return f"{log.parent.name}: {detail[:300]}"
    return None


def read_audit(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def seed_spec(
    candidate: Candidate,
    contract: Contract,
    seed: int,
    tag: str,
    surface_parent: Path,
    shard_dir: Path,
    trial_dir: Path,
) -> dict[str, Any]:
    """Write the seed run's ``client.json`` and ``spec.json`` (what the job is built from) and return the spec."""
    directory = trial_dir / f"seed-{seed}{tag}"
    directory.mkdir(parents=True, exist_ok=True)
    budget = contract.budget
    client_config = directory / "client.json"
    client_config.write_text(
        json.dumps(
            {
                "seed": seed,
                "knobs": candidate.params,
                "data_dir": str(shard_dir),
                "local_epochs": budget["local_epochs"],
                "max_local_steps": budget["max_local_steps"],
                "batch_size": budget["batch_size"],
            },
            indent=1,
        )
    )
    spec = {
        "surface_parent": str(surface_parent),
        "knobs": candidate.params,
        "seed": seed,
        "job_name": JOB_NAME,
        "num_clients": contract.num_clients,
        "rounds": contract.rounds,
        "train_script": str(surface_parent / SURFACE_PACKAGE / "client_train.py"),
        "client_config": str(client_config),
        "task_request_interval": TASK_REQUEST_INTERVAL,
        "audit_path": str(directory / "audit.jsonl"),
        "workspace_root": str(directory / "ws"),
        "job_root": str(directory / "job"),
    }
    (directory / "spec.json").write_text(json.dumps(spec, indent=1))
    return spec


def export_jobs(specs: list[dict[str, Any]], surface_parent: Path, log_path: Path) -> str | None:
    """Export the FLARE jobs of several seeds in one process; the error, or None."""
    specs_path = log_path.with_suffix(".json")
    specs_path.write_text(json.dumps(specs, indent=1))
    tree = run_tree(
        python_module(FLARE_JOB, "export", str(specs_path)),
        cwd=log_path.parent,
        env=python_env([surface_parent, PACKAGE_ROOT]),
        log_path=log_path,
        timeout=EXPORT_TIMEOUT_SECONDS,
    )
    if tree.returncode == 0 and all((Path(s["job_root"]) / JOB_NAME).is_dir() for s in specs):
        return None
    if tree.timed_out:
        return f"building the FLARE job took over {EXPORT_TIMEOUT_SECONDS:.0f} s; log: {log_path}"
    lines = log_path.read_text(errors="replace").strip().splitlines()
    detail = next(
        (ln for ln in reversed(lines) if _EXCEPTION_RE.match(ln)), lines[-1] if lines else "(no output)"
    )
    return f"building the FLARE job failed (exit {tree.returncode}): {detail[:300]}; log: {log_path}"


def run_simulation(
    spec: dict[str, Any],
    contract: Contract,
    progress: Callable[[str], None],
    tag: str = "",
    preload: bool = True,
) -> SeedRun:
    """One exported job in NVFlare's simulator, as its own process tree under the contract's wall-clock cap.
    With ``preload`` the simulator's own command runs through ``prefork``: the same simulation, with torch
    and nvflare imported once instead of once per process."""
    seed = int(spec["seed"])
    run = SeedRun(seed=seed, directory=Path(spec["client_config"]).parent)
    audit_path = Path(spec["audit_path"])
    audit_path.unlink(missing_ok=True)

    def on_line(line: str) -> None:
        if match := _ROUND_RE.search(line):
            progress(f"seed {seed}{tag}: round {int(match.group(1)) + 1}/{contract.rounds}")

    cap = contract.budget["wall_clock_seconds"]
    env = python_env(
        [Path(spec["surface_parent"]), PACKAGE_ROOT], NVFLARE_SIMULATOR_WORKSPACE_ROOT=spec["workspace_root"]
    )
    if spec.get("startup_kit"):
        argv = python_module(FLARE_JOB, "submit", str(run.directory / "spec.json"))
    else:
        argv = simulator(
            Path(spec["job_root"]) / spec["job_name"],
            Path(spec["workspace_root"]) / spec["job_name"],
            int(spec["num_clients"]),
        )
        if preload:
            argv = preforked(argv)
    tree = run_tree(
        argv,
        cwd=run.directory,
        env=env,
        log_path=run.log_path,
        timeout=float(cap),
        on_line=on_line,
    )
    run.runtime_seconds = tree.seconds
    run.audit = read_audit(audit_path)
    if tree.timed_out:
        run.error = f"seed {seed}: wall-clock cap of {cap} s exceeded; stopped {tree.killed} process(es); log: {run.log_path}"
    elif err := _first_error(run.workspace):
        run.error = f"seed {seed}: {err}; log: {run.log_path}"
    elif tree.returncode != 0:
        tail = run.log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(empty log)"]
        run.error = f"seed {seed}: simulator exited with code {tree.returncode}: {tail[0][:300]}"
    elif not run.model_path.is_file():
        run.error = f"seed {seed}: no final global model at {run.model_path}"
    return run


class Evaluator:
    """One evaluator process (harness code, apart from pytest) for one split. It starts ahead of need: while
    the simulations run it imports torch and the surface's model and rebuilds the held-out set; ``score``
    then hands it the final models. If no models come within ``wait_seconds`` it exits (``alive`` turns
    False) and the caller starts a fresh one; ``cancel`` lets it exit at once."""

    def __init__(
        self,
        contract: Contract,
        surface_parent: Path,
        split: str,
        work_dir: Path,
        name: str,
        wait_seconds: float,
    ):
        self.spec_path = work_dir / f"evaluate-{split}{name}.json"
        self.request_path = work_dir / f"evaluate-{split}{name}.models.json"
        self.log_path = work_dir / f"evaluate-{split}{name}.log"
        self.request_path.unlink(missing_ok=True)
        self.spec_path.write_text(
            json.dumps(
                {
                    "benchmarks_dir": str(contract.directory.parent),
                    "benchmark": contract.name,
                    "split": split,
                    "surface_parent": str(surface_parent),
                    "wait_seconds": wait_seconds,
                },
                indent=1,
            )
        )
        self._argv = python_module(EVALUATE, str(self.spec_path), str(self.request_path))
        self._timeout = wait_seconds + EVAL_TIMEOUT_SECONDS
        self._outcome: TreeResult | BaseException | None = None
        # A daemon thread: an interrupted search never waits for it (Ctrl-C stops the tree through STOP or
        # ``cancel``, and the guard kills it if pytest is gone).
        self._thread = threading.Thread(target=self._run, name="autofl-evaluator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._outcome = run_tree(
                self._argv,
                cwd=self.spec_path.parent,
                env=python_env([PACKAGE_ROOT]),
                log_path=self.log_path,
                timeout=self._timeout,
            )
        except BaseException as exc:  # stopped (Ctrl-C) while waiting
            self._outcome = exc

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _request(self, models: list[dict[str, Any]]) -> None:
        tmp = self.request_path.with_name(self.request_path.name + ".tmp")
        tmp.write_text(json.dumps(models, indent=1))
        os.replace(tmp, self.request_path)  # the evaluator never sees half a request

    def cancel(self) -> None:
        self._request([])

    def score(self, models: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The evaluator's entries for ``models``, in order; raises RuntimeError with the reason."""
        self._request(models)
        self._thread.join()
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        output = self.log_path.read_text(errors="replace")
        line = next((ln for ln in reversed(output.splitlines()) if ln.startswith(EVAL_PREFIX)), None)
        if outcome.returncode != 0 or line is None:
            tail = output.strip().splitlines()[-1:] or ["(no output)"]
            raise RuntimeError(
                f"evaluator failed (exit {outcome.returncode}): {tail[0][:300]}; log: {self.log_path}"
            )
        return list(json.loads(line[len(EVAL_PREFIX) :]))


def evaluate_models(
    contract: Contract,
    surface_parent: Path,
    models: list[dict[str, Any]],
    split: str,
    work_dir: Path,
    tag: str = "",
) -> list[dict[str, Any]]:
    """Score final global models now, in a fresh evaluator process; raises RuntimeError with the reason."""
    return Evaluator(contract, surface_parent, split, work_dir, tag, 0.0).score(models)


class CandidateRunner:
    """Runs one candidate seed by seed in its trial directory: the surface is copied once, each seed is a
    real NVFlare simulation, then scored right away so the caller can decide whether it needs another seed."""

    def __init__(
        self,
        candidate: Candidate,
        contract: Contract,
        surface_dir: Path,
        shard_dir: Path,
        trial_dir: Path,
        progress: Callable[[str], None],
        startup_kit: Path | None = None,
        preload: bool = True,
    ):
        self.startup_kit = startup_kit  # None: SimEnv; else the admin kit of a POC / production deployment
        self.preload = preload  # SimEnv: run the simulator through ``prefork`` (imports once per simulation)
        self.candidate, self.contract, self.shard_dir, self.trial_dir = (
            candidate,
            contract,
            shard_dir,
            trial_dir,
        )
        self.progress = progress
        trial_dir.mkdir(parents=True, exist_ok=True)
        (trial_dir / "candidate.json").write_text(
            json.dumps(
                {
                    "id": candidate.id,
                    "family": candidate.family,
                    "description": candidate.description,
                    "params": candidate.params,
                    "patch_sha": candidate.patch_sha,
                    "contract_sha": contract.sha,
                },
                indent=1,
            )
        )
        self.surface_parent = prepare_surface(surface_dir, trial_dir, candidate.files, candidate.diff)
        self._specs: dict[str, dict[str, Any]] = {}  # exported jobs, by seed directory name
        self._export_lock = threading.Lock()
        self._evaluator: Evaluator | None = None  # started with the runs it will score
        self._evaluations = 0
        self._evaluator_lock = threading.Lock()

    def _spec(self, seed: int, tag: str) -> dict[str, Any] | str:
        """The exported job of ``seed``; the first call exports every selection seed at once (one process)."""
        name = f"seed-{seed}{tag}"
        with self._export_lock:
            if name not in self._specs:
                wanted = [(seed, tag)] + [
                    (s, "") for s in self.contract.seeds if f"seed-{s}" not in self._specs
                ]
                specs = {
                    f"seed-{s}{t}": seed_spec(
                        self.candidate,
                        self.contract,
                        s,
                        t,
                        self.surface_parent,
                        self.shard_dir,
                        self.trial_dir,
                    )
                    for s, t in dict.fromkeys(wanted)
                }
                if self.startup_kit is not None:  # a deployment: each job is built where it is submitted
                    for spec in specs.values():
                        spec.update(
                            startup_kit=str(self.startup_kit),
                            timeout=self.contract.budget["wall_clock_seconds"],
                        )
                        (Path(spec["client_config"]).parent / "spec.json").write_text(
                            json.dumps(spec, indent=1)
                        )
                    self._specs.update(specs)
                    return self._specs[name]
                error = export_jobs(
                    list(specs.values()), self.surface_parent, self.trial_dir / f"export-{name}.log"
                )
                if error:
                    return error
                self._specs.update(specs)
            return self._specs[name]

    def run(self, seed: int, tag: str = "", evaluate: bool = True) -> SeedRun:
        """One seed (``tag`` separates a repeat of the same seed); the error, if any, is on the SeedRun.
        ``evaluate=False`` leaves the scoring to a later ``evaluate`` call that scores several runs at once."""
        c = self.contract
        self.progress(
            f"seed {seed}{tag}: starting NVFlare SimEnv ({c.num_clients} clients x {c.rounds} rounds)"
        )
        self._warm_evaluator()
        try:
            spec = self._spec(seed, tag)
            if isinstance(spec, str):
                return SeedRun(
                    seed=seed,
                    directory=self.trial_dir / f"seed-{seed}{tag}",
                    error=f"seed {seed}{tag}: {spec}",
                )
            run = run_simulation(spec, c, self.progress, tag, preload=self.preload)
        except BaseException:  # interrupted: the waiting evaluator exits now, not after its wait
            if (evaluator := self._take_evaluator()) is not None:
                evaluator.cancel()
            raise
        if run.error:
            self.progress(f"seed {seed}{tag}: CRASH after {run.runtime_seconds:.1f} s")
        elif evaluate:
            self.evaluate([run])
        return run

    def _new_evaluator(self, wait_seconds: float) -> Evaluator:
        self._evaluations += 1
        return Evaluator(
            self.contract,
            self.surface_parent,
            "validation",
            self.trial_dir,
            f"-{self._evaluations}",
            wait_seconds,
        )

    def _warm_evaluator(self) -> None:
        """Start the evaluator of the runs now starting, so it is ready (torch, model, held-out set loaded)
        when they end instead of starting then. It waits up to a few wall-clock caps for them."""
        with self._evaluator_lock:
            if self._evaluator is None or not self._evaluator.alive:
                cap = float(self.contract.budget["wall_clock_seconds"])
                self._evaluator = self._new_evaluator(3 * cap + 60)

    def _take_evaluator(self) -> Evaluator | None:
        with self._evaluator_lock:
            evaluator, self._evaluator = self._evaluator, None
            return evaluator

    def evaluate(self, runs: list[SeedRun]) -> None:
        """Score the finished, unscored runs in one evaluator process (torch and the model imported once):
        the one started with the runs, or a fresh one if it is gone."""
        todo = [r for r in runs if r.error is None and r.score is None]
        evaluator = self._take_evaluator()
        if not todo:
            if evaluator is not None:
                evaluator.cancel()
            return
        c = self.contract
        arch = self.candidate.params.get("arch", "mlp")
        models = [{"arch": arch, "seed": r.seed, "path": str(r.model_path)} for r in todo]
        if evaluator is None or not evaluator.alive:
            with self._evaluator_lock:
                evaluator = self._new_evaluator(0.0)
        try:
            scored = evaluator.score(models)
        except RuntimeError as exc:
            for r in todo:
                r.error = f"{r.directory.name}: {exc}"
            return
        for r, entry in zip(todo, scored, strict=True):
            r.score, r.n_params = float(entry["score"]), int(entry["n_params"])
            self.progress(
                f"seed {r.directory.name.removeprefix('seed-')}: validation {c.raw['metric']['name']} "
                f"{r.score:.4f} ({r.runtime_seconds:.1f} s)"
            )
