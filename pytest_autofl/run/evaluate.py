"""The harness' evaluator, run as ``python -m pytest_autofl.run.evaluate spec.json request.json``.

It rebuilds the held-out set from the contract (never from a file), loads each final global model that
NVFlare's server persisted into the surface's model class with ``strict=True``, and prints one
``AUTOFL_EVAL=`` JSON line: the score and parameter count per model. It runs in its own process so that
importing the candidate's model module cannot touch the pytest process.

It gets ready first — torch, the model class and the held-out set loaded, while the simulations it will
score may still run (``runner.Evaluator`` starts it with them) — then waits for ``request.json``, the list of
models (``[]``: nothing to score), for at most ``spec["wait_seconds"]``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

EVAL_PREFIX = "AUTOFL_EVAL="
POLL_SECONDS = 0.05


def prepare(spec: dict) -> tuple[Any, Any, Any]:
    """The surface's model class and the contract's held-out inputs and labels, as tensors."""
    import torch

    from pytest_autofl.core.contract import load_contract
    from pytest_autofl.data.split import heldout

    sys.path.insert(0, spec["surface_parent"])
    from autofl_surface.model import Net

    torch.set_num_threads(1)
    contract = load_contract(Path(spec["benchmarks_dir"]), spec["benchmark"])
    x_np, y_np = heldout(contract, spec["split"])
    return Net, torch.from_numpy(x_np), torch.from_numpy(y_np)


def score(models: list[dict], net: Any, x: Any, y: Any) -> list[dict]:
    import torch

    out = []
    for entry in models:
        model = net(arch=entry["arch"], seed=entry["seed"])
        saved = torch.load(entry["path"], map_location="cpu", weights_only=False)
        state = saved["model"] if isinstance(saved, dict) and "model" in saved else saved
        model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()}, strict=True)
        model.eval()
        with torch.no_grad():
            accuracy = float((model(x).argmax(1) == y).float().mean())
        n_params = int(sum(p.numel() for p in model.parameters()))
        out.append({"path": entry["path"], "score": accuracy, "n_params": n_params, "n_examples": len(y)})
    return out


def wait_for(request: Path, seconds: float) -> list[dict]:
    deadline = time.monotonic() + seconds
    while not request.exists():
        if time.monotonic() > deadline:
            sys.exit(f"no models to score arrived in {request} within {seconds:.0f} s")
        time.sleep(POLL_SECONDS)
    return list(json.loads(request.read_text()))


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    net, x, y = prepare(spec)
    models = wait_for(Path(sys.argv[2]), spec["wait_seconds"])
    print(EVAL_PREFIX + json.dumps(score(models, net, x, y)), flush=True)


if __name__ == "__main__":
    main()
