"""The harness' evaluator, run as ``python -m pytest_autofl.evaluate spec.json`` after the simulations.

It rebuilds the held-out set from the contract (never from a file), loads each final global model that
NVFlare's server persisted into the surface's model class with ``strict=True``, and prints one
``AUTOFL_EVAL=`` JSON line: the score and parameter count per model. It runs in its own process so that
importing the candidate's model module cannot touch the pytest process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

EVAL_PREFIX = "AUTOFL_EVAL="


def evaluate(spec: dict) -> list[dict]:
    import torch

    from .contract import load_contract
    from .data import heldout

    sys.path.insert(0, spec["surface_parent"])
    from autofl_surface.model import Net

    torch.set_num_threads(1)
    contract = load_contract(Path(spec["benchmarks_dir"]), spec["benchmark"])
    x_np, y_np = heldout(contract, spec["split"])
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    out = []
    for entry in spec["models"]:
        model = Net(arch=entry["arch"], seed=entry["seed"])
        saved = torch.load(entry["path"], map_location="cpu", weights_only=False)
        state = saved["model"] if isinstance(saved, dict) and "model" in saved else saved
        model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()}, strict=True)
        model.eval()
        with torch.no_grad():
            accuracy = float((model(x).argmax(1) == y).float().mean())
        n_params = int(sum(p.numel() for p in model.parameters()))
        out.append({"path": entry["path"], "score": accuracy, "n_params": n_params, "n_examples": len(y)})
    return out


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    print(EVAL_PREFIX + json.dumps(evaluate(spec)), flush=True)


if __name__ == "__main__":
    main()
