"""One seed run as a FLARE job: its spec and client configuration, the exported job, and the simulation run
as its own process tree under the contract's wall-clock cap."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Any

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.core.contract import Contract
from pytest_autofl.core.progress import Progress, Round
from pytest_autofl.data.datasets import task_of
from pytest_autofl.run import export_check, infrastructure, outcome
from pytest_autofl.run.commands import FLARE_JOB, PACKAGE_ROOT, preforked, python_module, simulator
from pytest_autofl.run.flare_job import client_script
from pytest_autofl.run.meter import Measurement, Meter
from pytest_autofl.run.outcome import EXCEPTION_RE
from pytest_autofl.run.prefork import SHARDS_ENV
from pytest_autofl.run.processes import Watch, python_env, run_tree
from pytest_autofl.run.sandbox import EXPORT_MODULES, NO_SANDBOX, SIMULATION_MODULES, Sandbox
from pytest_autofl.run.seedrun import JOB_NAME, ROUNDS_DIR, SeedRun, read_audit
from pytest_autofl.run.surface import SURFACE_PACKAGE
from pytest_autofl.run.worker_request import JOB_ENV, Job

EXPORT_TIMEOUT_SECONDS = 300.0
_ROUND_RE = re.compile(r"Round (\d+) started")
CONTROL_TAG = "-control"  # the zero-update control run of a code change (zero_client.py as every client)
ZERO_CLIENT = Path(__file__).with_name("zero_client.py")


def seed_spec(
    candidate: Candidate,
    contract: Contract,
    seed: int,
    tag: str,
    surface_parent: Path,
    shard_dir: Path,
    trial_dir: Path,
    zero_meta: tuple[str, ...] = (),
    reference: Path | None = None,
) -> dict[str, Any]:
    """Write the seed run's ``client.json`` and ``spec.json`` (what the job is built from) and return the spec.
    The control run (``CONTROL_TAG``) has the harness' zero client in place of the candidate's; every other run
    of a code change has the unchanged surface in ``reference`` (its package's parent) as each client's twin."""
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
                "zero_meta": list(zero_meta),
                "task": task_of(contract),
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
        "train_script": str(
            ZERO_CLIENT if tag == CONTROL_TAG else surface_parent / SURFACE_PACKAGE / "client_train.py"
        ),
        "client_config": str(client_config),
        # a code change's clients run the unchanged surface beside it, measured task by task (its twin)
        "twin_script": (
            str(reference / SURFACE_PACKAGE / "client_train.py") if reference and tag != CONTROL_TAG else ""
        ),
        "flare_server_config": infrastructure.SERVER_CONFIG,
        "flare_client_config": infrastructure.CLIENT_CONFIG,
        "audit_path": str(directory / "audit.jsonl"),
        "rounds_dir": str(directory / ROUNDS_DIR),
        "workspace_root": str(directory / "ws"),
        "job_root": str(directory / "job"),
        "data_dir": str(shard_dir),
        "task": task_of(contract),
    }
    (directory / "spec.json").write_text(json.dumps(spec, indent=1))
    return spec


@dataclasses.dataclass(frozen=True)
class ExportFailure:
    """Why the jobs of a candidate cannot run: the export failed (a crash), or what it left is not the job the
    harness asked for (``tampered``: the candidate is invalid)."""

    reason: str
    tampered: bool = False


def export_jobs(
    specs: list[dict[str, Any]], surface_parent: Path, log_path: Path, sandbox: Sandbox = NO_SANDBOX
) -> ExportFailure | None:
    """Export the FLARE jobs of several seeds in one process, in the sandbox (it runs candidate code: it may
    write only the job folders), then check what it wrote (``export_check``) and give each simulation its
    workspace policy; the failure, or None."""
    surface = export_check.digests(surface_parent)
    specs_path = log_path.with_suffix(".json")
    specs_path.write_text(json.dumps(specs, indent=1))
    roots = [Path(s["job_root"]) for s in specs]
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
    argv = python_module(FLARE_JOB, "export", str(specs_path))
    tree = run_tree(
        sandbox.wrap(argv, writable=roots, readable=[surface_parent], modules=EXPORT_MODULES),
        cwd=log_path.parent,
        env=sandbox.env(python_env([surface_parent, PACKAGE_ROOT])),
        log_path=log_path,
        timeout=EXPORT_TIMEOUT_SECONDS,
    )
    if tree.returncode == 0 and all((root / JOB_NAME).is_dir() for root in roots):
        return _checked(specs, surface)
    if tree.timed_out:
        return ExportFailure(
            f"building the FLARE job took over {EXPORT_TIMEOUT_SECONDS:.0f} s; log: {log_path}"
        )
    lines = log_path.read_text(errors="replace").strip().splitlines()
    detail = next(
        (ln for ln in reversed(lines) if EXCEPTION_RE.match(ln)), lines[-1] if lines else "(no output)"
    )
    return ExportFailure(
        f"building the FLARE job failed (exit {tree.returncode}): {detail[:300]}; log: {log_path}"
    )


def _checked(specs: list[dict[str, Any]], surface: dict[str, str]) -> ExportFailure | None:
    """Each simulation's job as the harness built it (a deployment builds its own), and its workspace with
    only the policy ``SimEnv.deploy`` writes: FLARE's default class allow-list, chosen by no candidate."""
    from nvflare.apis.fl_constant import WorkspaceConstants
    from nvflare.app_common.default_component_policy import DEFAULT_CLASS_ALLOW_LIST
    from nvflare.app_common.widgets.component_path_authorizer import CLASS_ALLOW_LIST
    from nvflare.fuel.utils import log_utils

    for spec in specs:
        if spec.get("startup_kit"):
            continue
        found = export_check.tampering(spec, surface, client_script(spec)[1])
        if found:
            return ExportFailure(
                f"the job the export left is not the harness' ({found}): candidate code ran in the export and "
                "changed it",
                tampered=True,
            )
        local = Path(spec["workspace_root"]) / spec["job_name"] / WorkspaceConstants.SITE_FOLDER_NAME
        shutil.rmtree(local.parent, ignore_errors=True)
        policy = {"format_version": 2, CLASS_ALLOW_LIST: list(DEFAULT_CLASS_ALLOW_LIST)}
        # and each client's ``local`` folder as the simulator makes it (the policy, FLARE's own log config),
        # which its FLARE process sees in place of the one the simulator (candidate code) wrote (``worker_request``)
        for folder in (local, _site_local(spec)):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            (folder / WorkspaceConstants.DEFAULT_RESOURCES_CONFIG).write_text(json.dumps(policy, indent=4))
        log_config = Path(log_utils.__file__).with_name(WorkspaceConstants.LOGGING_CONFIG)
        shutil.copyfile(log_config, _site_local(spec) / WorkspaceConstants.LOGGING_CONFIG)
    return None


def _site_local(spec: dict[str, Any]) -> Path:
    return Path(spec["client_config"]).parent / "site-local"


def _command(spec: dict[str, Any], run: SeedRun, preload: bool, sandbox: Sandbox) -> list[str]:
    """The seed run's command: the simulator (through prefork) in the sandbox, or the submission of the
    exported job folder to a deployment."""
    trial = Path(spec["surface_parent"])
    if spec.get("startup_kit"):  # harness code submitting the exported folder: no candidate code, no sandbox
        return python_module(FLARE_JOB, "submit", str(run.directory / "spec.json"))
    argv = simulator(
        Path(spec["job_root"]) / spec["job_name"],
        Path(spec["workspace_root"]) / spec["job_name"],
        int(spec["num_clients"]),
    )
    if preload or sandbox.on:  # in the sandbox, prefork is what gives each client only its own shard
        argv = preforked(argv)
    # Its own seed directory only (not the trial's other seeds, the control run or the surface), and there not
    # what the harness wrote for it: the clients' configuration, the spec, the checked job.
    own = run.directory
    return sandbox.wrap(
        argv,
        writable=[own],
        readable=[trial, Path(spec["data_dir"])],
        protected=[own / "client.json", own / "spec.json", Path(spec["job_root"]), _site_local(spec)],
        modules=SIMULATION_MODULES,
    )


def _job(spec: dict[str, Any]) -> Job:
    """The run as the zygote holds each client's FLARE process to it (``worker_request``)."""
    job = Path(spec["job_root"]) / spec["job_name"]
    workspace = Path(spec["workspace_root"]) / spec["job_name"]
    return Job(str(workspace), str(job / "app"), str(_site_local(spec)), int(spec["num_clients"]))


def run_simulation(
    spec: dict[str, Any],
    contract: Contract,
    progress: Progress,
    tag: str = "",
    preload: bool = True,
    sandbox: Sandbox = NO_SANDBOX,
) -> SeedRun:
    """One exported job in NVFlare's simulator, as its own process tree under the contract's wall-clock cap,
    in the sandbox (its trial directory writable, its shards readable, loopback only). With ``preload`` the
    simulator's own command runs through ``prefork``: the same simulation, with torch and nvflare imported once
    instead of once per process."""
    seed = int(spec["seed"])
    run = SeedRun(seed=seed, directory=Path(spec["client_config"]).parent)
    audit_path = Path(spec["audit_path"])
    audit_path.unlink(missing_ok=True)

    def on_line(line: str) -> None:
        if match := _ROUND_RE.search(line):
            progress(Round(f"{seed}{tag}", int(match.group(1)) + 1, contract.rounds))

    cap = contract.budget["wall_clock_seconds"]
    meter = Meter()
    env = python_env(
        [Path(spec["surface_parent"]), PACKAGE_ROOT],
        NVFLARE_SIMULATOR_WORKSPACE_ROOT=spec["workspace_root"],
        **meter.env,
        **({SHARDS_ENV: spec["data_dir"], JOB_ENV: _job(spec).to_env()} if sandbox.on else {}),
    )
    argv = _command(spec, run, preload, sandbox)
    run.metered = not spec.get("startup_kit") and (
        preload or sandbox.on
    )  # through prefork: the zygote measures
    tree = run_tree(
        argv,
        cwd=run.directory,
        env=sandbox.env(env),
        log_path=run.log_path,
        timeout=float(cap),
        on_line=on_line,
        pass_fds=meter.fds,
        # a deployment's submission runs no candidate code here; a simulation runs under the contract's limits
        watch=None if spec.get("startup_kit") else Watch(contract.limits, Path(spec["surface_parent"])),
    )
    run.runtime_seconds = tree.seconds
    measured = meter.read()
    if measured is not None:
        run.task_seconds, run.twin_seconds = measured.task_seconds, measured.twin_seconds
        (run.directory / "meter.json").write_text(json.dumps(dataclasses.asdict(measured)))
    run.audit = read_audit(audit_path)
    if tree.timed_out:
        run.error = f"seed {seed}: wall-clock cap of {cap} s exceeded; stopped {tree.killed} process(es); log: {run.log_path}"
        return run
    if tree.exceeded:
        run.error = f"seed {seed}: {tree.exceeded}; stopped {tree.killed} process(es); log: {run.log_path}"
        return run
    _judge(run, contract, tree.returncode, measured, deployed=bool(spec.get("startup_kit")))
    return run


def _judge(
    run: SeedRun, contract: Contract, returncode: int | None, measured: Measurement | None, deployed: bool
) -> None:
    """How a run that stayed within its limits ended (``outcome``): its error, if any, and whether that error
    is the machine's (run it again) or the candidate's; the messaging errors FLARE recovered from. A deployment's
    run (POC, production) is never run again: its clients' logs and processes are not here to tell."""
    log = run.log_path.read_text(errors="replace").strip().splitlines() if run.log_path.is_file() else []
    ended = outcome.classify(
        returncode,
        outcome.logged_errors(run.workspace),
        outcome.raised_in_trainer(log),
        outcome.missing_results(run.audit, contract.rounds, contract.num_clients),
        run.model_path.is_file(),
        measured.killed if measured is not None else None,
        log[-1] if log else "",
    )
    run.recovered = list(ended.recovered)
    if ended.kind != outcome.OK:
        run.error = f"seed {run.seed}: {ended.reason}; log: {run.log_path}"
        run.transient = ended.kind == outcome.TRANSIENT and not deployed
