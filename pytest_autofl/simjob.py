"""The FLARE job driver, run as ``python -m pytest_autofl.simjob spec.json`` in its own process tree.

Builds a Recipe-API ``FedAvgRecipe`` from the trial's surface copy (model, aggregator, client script) and the
contract budget, adds the harness' audit filter, and runs it in ``SimEnv``. The runner owns the process tree
and its wall-clock cap; this module only knows NVFlare.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def build_and_run(spec: dict) -> str:
    sys.path.insert(0, spec["surface_parent"])
    from autofl_surface.model import Net
    from autofl_surface.strategies import build_aggregator
    from nvflare.apis.dxo import DataKind
    from nvflare.app_opt.pt.recipes.fedavg import FedAvgRecipe
    from nvflare.recipe import SimEnv

    from pytest_autofl.audit import AuditFilter

    knobs = spec["knobs"]
    recipe = FedAvgRecipe(
        name=spec["job_name"],
        model=Net(arch=knobs["arch"], seed=spec["seed"]),
        min_clients=spec["num_clients"],
        num_rounds=spec["rounds"],
        train_script=spec["train_script"],
        train_args=f"--config {spec['client_config']}",
        aggregator=build_aggregator(knobs),
        aggregator_data_kind=DataKind.WEIGHT_DIFF,
    )
    # Identical infrastructure settings for every candidate: only the polling interval differs from defaults.
    # (benchmarks/bare_simenv.py passes None for both to time NVFlare's defaults without the harness.)
    if spec.get("task_request_interval") is not None:
        recipe.add_server_config({"task_request_interval": spec["task_request_interval"]})
    if spec.get("audit_path") is not None:
        recipe.add_server_input_filter(AuditFilter(spec["audit_path"]), tasks=["train"])
    env = SimEnv(num_clients=spec["num_clients"], workspace_root=spec["workspace_root"])
    run = recipe.execute(env)
    return str(run.get_result())


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    result = build_and_run(spec)
    print(f"AUTOFL_RESULT_DIR={result}", flush=True)


if __name__ == "__main__":
    main()
