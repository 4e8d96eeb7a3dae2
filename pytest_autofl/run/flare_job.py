"""The FLARE job: a Recipe-API ``FedAvgRecipe`` built from a trial's surface copy (model, aggregator, client
script), the contract budget and the harness' audit filter.

``python -m pytest_autofl.run.flare_job export specs.json`` exports the jobs of several seeds of one candidate in one
process (the candidate's code and torch are imported once, not once per seed). Each seed then runs as exactly
the command ``SimEnv`` would start (``commands.simulator``), in its own process tree owned by the runner — a real,
isolated NVFlare simulation. ``build_and_run`` is the plain ``recipe.execute(SimEnv(...))`` path, kept for
``benchmarks/bare_simenv.py``, which times NVFlare's defaults without the harness. ``submit`` sends the same
job to a POC or production deployment instead.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from pytest_autofl.run.commands import PACKAGE_ROOT, TRAINER_COMMAND
from pytest_autofl.run.interpreter import exit_process
from pytest_autofl.run.surface import ARCH_KNOB

ADMIN = "admin@nvidia.com"  # the admin identity of a POC deployment's startup kit (ProdEnv's default)


def client_script(spec: dict[str, Any]) -> tuple[Path, str]:
    """The directory to build the job in and the client script's path relative to it: FLARE starts the script
    as ``custom/<that path>`` in each client's own process (``commands.TRAINER_COMMAND``)."""
    script = Path(spec["train_script"])
    if script.is_relative_to(spec["surface_parent"]):  # first: a work directory may lie in the package's
        return Path(spec["surface_parent"]), str(script.relative_to(spec["surface_parent"]))  # checkout
    if script.is_relative_to(PACKAGE_ROOT / "pytest_autofl"):  # the harness' own (the zero client)
        return PACKAGE_ROOT, ".".join(script.relative_to(PACKAGE_ROOT).with_suffix("").parts)
    raise ValueError(f"the client script {script} is neither in the trial's surface nor in the harness")


class _TrainerRunner:
    """What FLARE's ``ScriptRunner`` adds to a job, with the harness' executor (``trainer_executor``)."""

    def __init__(self, script: str, script_args: str, twin: str) -> None:
        self.script, self.script_args, self.twin = script, script_args, twin

    def add_to_fed_job(self, job: Any, ctx: Any, **kwargs: Any) -> dict[str, Any]:
        from pytest_autofl.run.trainer_executor import TrainerExecutor

        executor = TrainerExecutor(self.script, self.script_args, TRAINER_COMMAND, twin=self.twin)
        job.add_executor(executor, tasks=kwargs.get("tasks", ["*"]), ctx=ctx)
        if self.script.endswith(".py"):  # a module of the harness is installed where the job runs
            job.add_resources(resources=[self.script], ctx=ctx)
        return {}


def build_recipe(spec: dict[str, Any]) -> Any:
    """The job; build and export it in ``client_script(spec)[0]`` (the client script's path is relative to it)."""
    sys.path.insert(0, spec["surface_parent"])
    from autofl_surface.model import Net
    from autofl_surface.strategies import build_aggregator
    from nvflare.apis.dxo import DataKind
    from nvflare.app_opt.pt.recipes.fedavg import FedAvgRecipe

    from pytest_autofl.run.audit import AuditFilter, RoundModels

    class Recipe(FedAvgRecipe):  # each client's script in a process of its own, under the harness' executor
        def _create_client_runner(self, site_config: dict[str, Any]) -> Any:
            return _TrainerRunner(self.train_script, self.train_args, spec.get("twin_script", ""))

    # A deployment (POC, production) runs FLARE's own in-process Client API: its clients' compute is not
    # metered here, and the harness' executor would need the whole harness importable in every client.
    deployed = bool(spec.get("startup_kit"))
    knobs = spec["knobs"]
    recipe = (FedAvgRecipe if deployed else Recipe)(
        name=spec["job_name"],
        model=Net(arch=knobs[ARCH_KNOB], seed=spec["seed"], **spec["task"]),
        min_clients=spec["num_clients"],
        num_rounds=spec["rounds"],
        train_script=spec["train_script"] if deployed else client_script(spec)[1],
        train_args=f"--config {spec['client_config']}",
        aggregator=build_aggregator(knobs),
        aggregator_data_kind=DataKind.WEIGHT_DIFF,
    )
    # Identical infrastructure settings for every candidate (``infrastructure``); benchmarks/bare_simenv.py
    # leaves them out to time NVFlare's defaults without the harness.
    if spec.get("flare_server_config"):
        recipe.add_server_config(spec["flare_server_config"])
    if spec.get("flare_client_config"):
        recipe.add_client_config(spec["flare_client_config"])
    if spec.get("audit_path") is not None:
        recipe.add_server_input_filter(AuditFilter(spec["audit_path"]), tasks=["train"])
    if spec.get("rounds_dir") is not None:
        recipe.add_server_output_filter(RoundModels(spec["rounds_dir"]), tasks=["train"])
    return recipe


def build_and_run(spec: dict[str, Any]) -> str:
    from nvflare.recipe import SimEnv

    env = SimEnv(num_clients=spec["num_clients"], workspace_root=spec["workspace_root"])
    with contextlib.chdir(client_script(spec)[0]):
        run = build_recipe(spec).execute(env)
    return str(run.get_result())


def export(spec: dict[str, Any]) -> None:
    """Write the job folder to ``<job_root>/<job_name>``: for SimEnv, with the workspace prepared as
    ``SimEnv.deploy`` does (its workspace policy the harness writes, ``job.export_jobs``); for a deployment (``startup_kit``), as ``ProdEnv`` submits it. Runs candidate code
    (the model and aggregator are built), so it runs in the sandbox, without network."""
    from nvflare.recipe import SimEnv

    with contextlib.chdir(client_script(spec)[0]):
        if spec.get("startup_kit"):  # what ProdEnv submits: the plain job folder (the kit is not needed here)
            build_recipe(spec).export(spec["job_root"])
            return
        env = SimEnv(num_clients=spec["num_clients"], workspace_root=spec["workspace_root"])
        build_recipe(spec).export(spec["job_root"], env=env)


def submit(spec: dict[str, Any]) -> None:
    """Submit the exported job folder to a running deployment (``--autofl-env poc/prod``) through the admin
    startup kit, wait for it, and put the server's result where a SimEnv run leaves it
    (``<ws>/<job>/server/simulate_job``), so the evaluator and the checks read every environment alike. Harness
    code only: no candidate code is imported here (it runs in the deployment). Interrupted (the wall-clock cap,
    Ctrl-C): the job is aborted on the deployment, not left running there."""
    from nvflare.fuel.flare_api.api_spec import MonitorReturnCode
    from nvflare.fuel.flare_api.flare_api import new_secure_session

    session = new_secure_session(spec.get("admin", ADMIN), spec["startup_kit"], timeout=30.0)
    try:
        job_id = session.submit_job(str(Path(spec["job_root"]) / spec["job_name"]))
        print(f"AUTOFL_JOB_ID={job_id}", flush=True)
        try:
            done = session.monitor_job(job_id, timeout=float(spec["timeout"]), poll_interval=0.5)
        except KeyboardInterrupt:
            session.abort_job(job_id)
            raise
        if done != MonitorReturnCode.JOB_FINISHED:
            session.abort_job(job_id)
            sys.exit(f"job {job_id} did not finish within {spec['timeout']} s (aborted)")
        result = Path(session.download_job_result(job_id))
    finally:
        session.close()
    target = Path(spec["workspace_root"]) / spec["job_name"] / "server" / "simulate_job"
    downloaded = result / "workspace"  # <transfer>/<job_id>/{job,workspace,meta.json}
    shutil.copytree(downloaded if downloaded.is_dir() else result, target, dirs_exist_ok=True)
    print(f"AUTOFL_RESULT_DIR={target}", flush=True)


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("export", "submit"):
        sys.exit("usage: python -m pytest_autofl.run.flare_job export specs.json | submit spec.json")
    if sys.argv[1] == "submit":
        submit(json.loads(Path(sys.argv[2]).read_text()))
        return
    for spec in json.loads(Path(sys.argv[2]).read_text()):
        export(spec)
        print(f"AUTOFL_EXPORTED={spec['job_root']}", flush=True)


if __name__ == "__main__":
    main()
    exit_process(0)
