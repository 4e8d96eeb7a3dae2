"""The predict process: the only place a candidate's model code runs at scoring time.

Run by path (``python -I predict.py spec.json``), it imports nothing of the harness. It gets the held-out
inputs, never the labels; builds the surface's ``Net(arch, seed)`` and writes its outputs (the untrained
initial model), then loads the final global model's tensors (which the evaluator read out of the checkpoint)
with ``weights_only=True`` and ``strict=True`` and writes its outputs: two ``.npy`` per model. The harness'
evaluator, in another process, computes the metric from them. Started ahead of need, it waits for the list of
models (``[]``: nothing to do) for at most ``spec["wait_seconds"]``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

POLL_SECONDS = 0.05


def _wait_for(request: Path, seconds: float) -> list[dict]:
    """``evaluate.wait_for``, repeated on purpose: this file imports nothing of the harness."""
    deadline = time.monotonic() + seconds
    while not request.exists():
        if time.monotonic() > deadline:
            sys.exit(f"predict: no models arrived in {request} within {seconds:.0f} s")
        time.sleep(POLL_SECONDS)
    return list(json.loads(request.read_text()))


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    import numpy as np
    import torch

    sys.path.insert(0, spec["surface_parent"])
    from autofl_surface.model import Net

    torch.set_num_threads(1)
    inputs = torch.from_numpy(np.load(spec["inputs"], allow_pickle=False))
    for entry in _wait_for(Path(spec["request"]), float(spec["wait_seconds"])):
        state = torch.load(entry["weights"], map_location="cpu", weights_only=True)  # tensors only
        model = Net(arch=entry["arch"], seed=entry["seed"], **entry["task"])
        model.eval()
        for weights, key in ((None, "initial"), (state, "outputs")):  # the untrained start, then the result
            if entry[key] is None:  # a per-round model: no start of its own
                continue
            if weights is not None:
                model.load_state_dict(weights, strict=True)
            with torch.no_grad():
                outputs = model(inputs)
            np.save(
                entry[key], np.asarray(outputs.detach().cpu().numpy(), dtype=np.float32), allow_pickle=False
            )
    print("predict: done", flush=True)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # without tearing torch's modules down (most of a second)
