"""The harness' evaluator, run as ``python -m pytest_autofl.run.evaluate spec.json request.json``.

It never imports candidate code. It reads the held-out set the harness wrote beside its spec (in a directory no
candidate process can see) and starts the predict process
at once (``predict.py``: the candidate's model code, which gets the inputs and never the labels), so both are
ready — torch, the model, the data loaded — while the simulations they will score may still run. Then it waits
for ``request.json``, the list of final global models (``[]``: nothing to score), for at most
``spec["wait_seconds"]``; reads each model's state dict (``weights_only=True``: tensors, and the numpy arrays
of the server's meta), counts its parameters itself (every tensor), hands the tensors to the predict process, and computes the metric from its outputs and the
labels — of the final model, and of the untrained initial model (which must start near chance and differ
between seeds). It prints one ``AUTOFL_EVAL=`` JSON line: score, parameter count, examples and the initial
model's score, chance level and output digest per model, and the final model's output digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from pytest_autofl.core.surface_rules import MODEL
from pytest_autofl.run.interpreter import exit_process
from pytest_autofl.run.sandbox import PREDICT_MODULES, Sandbox
from pytest_autofl.run.surface import SURFACE_PACKAGE

EVAL_PREFIX = "AUTOFL_EVAL="
POLL_SECONDS = 0.05
PREDICT = Path(__file__).with_name("predict.py")


def wait_for(request: Path, seconds: float) -> list[dict]:
    deadline = time.monotonic() + seconds
    while not request.exists():
        if time.monotonic() > deadline:
            sys.exit(f"no models to score arrived in {request} within {seconds:.0f} s")
        time.sleep(POLL_SECONDS)
    return list(json.loads(request.read_text()))


def _numpy_globals() -> list[Any]:
    """What a checkpoint's numpy arrays (the server's meta, e.g. SCAFFOLD's control variate) unpickle with:
    array reconstruction and the plain dtypes; no other global, so no code runs."""
    from numpy._core.multiarray import _reconstruct  # numpy 2

    return [_reconstruct, np.ndarray, np.dtype, *{type(np.dtype(c)) for c in "?bhilqBHILQefdFD"}]


def state_dict(path: str, kind: str = "final") -> dict[str, Any]:
    """A global model's state dict, read without running any code from the file (``weights_only``)."""
    import torch

    with torch.serialization.safe_globals(_numpy_globals()):
        saved = torch.load(path, map_location="cpu", weights_only=True)
    state = saved["model"] if isinstance(saved, dict) and "model" in saved else saved
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"the {kind} global model is not a state dict of tensors: {path}")
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:  # named as what it is, before any prediction turns it into a score
        more = f" and {len(broken) - 3} more" if len(broken) > 3 else ""
        raise ModelError(
            f"the {kind} global model has non-finite weights (NaN or inf) in {', '.join(broken[:3])}{more}: {path}"
        )
    return dict(state)


class ModelError(Exception):
    """A checkpoint the evaluator will not score: fatal for a final model, a missing point on a curve."""


def _round_states(model: dict[str, Any]) -> list[dict[str, Any] | None]:
    """The per-round models of one seed run (``model["rounds"]``: a path or None per round), None where one
    is missing or unreadable: a curve's point is never worth a crash."""
    states: list[dict[str, Any] | None] = []
    for path in model.get("rounds") or []:
        try:
            states.append(state_dict(path, "round") if path and Path(path).is_file() else None)
        except Exception:  # noqa: BLE001 - a damaged file raises many kinds (ModelError among them)
            states.append(None)
    return states


def _write_atomically(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)  # the predict process never sees half a request


class Predictor:
    """The predict process, started with the held-out inputs and waiting for its models."""

    def __init__(self, spec: dict[str, Any], work: Path, stem: str, inputs: np.ndarray):
        """``work``: the predict process' own directory, the only one it may write (never the evaluator's)."""
        work.mkdir(exist_ok=True)
        self.work = work
        self.request = work / f"{stem}.predict.json"
        self.log = work / f"{stem}.predict.log"
        self.request.unlink(missing_ok=True)
        inputs_path = work / f"{stem}.inputs.npy"
        np.save(inputs_path, inputs, allow_pickle=False)
        spec_path = work / f"{stem}.predict-spec.json"
        spec_path.write_text(
            json.dumps(
                {
                    "surface_parent": spec["surface_parent"],
                    "inputs": str(inputs_path),
                    "request": str(self.request),
                    "wait_seconds": spec["wait_seconds"] + 60,
                },
                indent=1,
            )
        )
        sandbox = Sandbox(spec["sandbox"]["mode"], tuple(spec["sandbox"]["hidden"]))
        argv = [sys.executable, "-I", "-u", str(PREDICT), str(spec_path)]
        # the model's code alone: nothing else of the trial (a trainer or the server may have written files there)
        package = Path(spec["surface_parent"]) / SURFACE_PACKAGE
        shown = [package / "__init__.py", package / MODEL] if package.is_dir() else []
        argv = sandbox.wrap(argv, writable=[work], readable=shown, modules=PREDICT_MODULES)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=work,
                env=sandbox.env(os.environ),
            )

    def outputs(self, models: list[dict[str, Any]]) -> list[tuple[np.ndarray | None, np.ndarray]]:
        """Each model's (initial, final) outputs on the inputs (no initial for a per-round model); exits with
        the predict process' last line if it failed."""
        entries = [
            {
                **m,
                "initial": None
                if m.get("round")
                else str(self.request.with_name(f"{self.request.stem}-{i}-initial.npy")),
                "outputs": str(self.request.with_name(f"{self.request.stem}-{i}.npy")),
            }
            for i, m in enumerate(models)
        ]
        _write_atomically(self.request, entries)
        code = self.proc.wait()
        if code != 0:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            sys.exit(f"the predict process failed (exit {code}): {tail[0][:300]}; log: {self.log}")
        return [
            (
                np.load(e["initial"], allow_pickle=False) if e["initial"] else None,
                np.load(e["outputs"], allow_pickle=False),
            )
            for e in entries
        ]


def _weights(models: list[dict[str, Any]], work: Path, stem: str) -> tuple[list[int], list[dict[str, Any]]]:
    """Each final model's tensors saved for the predict process (it loads nothing but tensors) and its
    parameter count (every tensor, whatever the model says); then one entry per readable per-round model."""
    import torch

    counts, rounds = [], []
    for i, model in enumerate(models):
        try:
            state = state_dict(model["path"])
        except ModelError as exc:
            sys.exit(str(exc))
        counts.append(int(sum(v.numel() for v in state.values())))
        model["weights"] = str(work / f"{stem}-{i}-weights.pt")
        torch.save(state, model["weights"])
        for k, round_state in enumerate(_round_states(model), start=1):
            if round_state is not None:
                weights = work / f"{stem}-{i}-round-{k}-weights.pt"
                torch.save(round_state, weights)
                rounds.append({**model, "weights": str(weights), "round": k, "model": i})
    return counts, rounds


def main() -> None:
    from pytest_autofl.core.metrics import OutputError, score

    spec = json.loads(Path(sys.argv[1]).read_text())
    request = Path(sys.argv[2])
    with np.load(spec["heldout"], allow_pickle=False) as held:
        x, y = held["x"], held["y"]
    predictor = Predictor(spec, request.parent / "predict", request.name.removesuffix(".models.json"), x)
    try:
        models = wait_for(request, spec["wait_seconds"])
    except SystemExit:
        predictor.proc.kill()
        raise
    counts, rounds = _weights(models, predictor.work, request.stem)
    outputs = predictor.outputs(models + rounds)
    metric = spec["metric"]
    curves: list[list[float | None]] = [[None] * len(m.get("rounds") or []) for m in models]
    for entry, (_, out) in zip(rounds, outputs[len(models) :], strict=True):
        with contextlib.suppress(OutputError):  # a point of a curve: validation only, never used to select
            curves[entry["model"]][entry["round"] - 1] = score(metric, out, y)
    scored = []
    for i, (model, n_params) in enumerate(zip(models, counts, strict=True)):
        initial, final = outputs[i]
        assert initial is not None
        # chance: what answering the class frequencies, the same for every example, scores on this metric
        prior = np.log(np.bincount(y, minlength=final.shape[1])[: final.shape[1]] / len(y) + 1e-12)
        try:
            value, start = score(metric, final, y), score(metric, initial, y)
            chance = score(metric, np.tile(prior, (len(y), 1)).astype(np.float32), y)
        except OutputError as exc:
            sys.exit(f"{model['path']}: {exc}")
        digest = hashlib.sha256(initial.tobytes()).hexdigest()[:16]
        scored.append(
            {
                "path": model["path"],
                "score": value,
                "digest": hashlib.sha256(final.tobytes()).hexdigest()[:16],
                "n_params": n_params,
                "n_examples": len(y),
                "initial": {"score": start, "chance": chance, "digest": digest},
                "curve": [start, *curves[i], value],  # after round 0 (the start), 1, ..., the final model
            }
        )
    print(EVAL_PREFIX + json.dumps(scored), flush=True)


if __name__ == "__main__":
    main()
    exit_process(0)
