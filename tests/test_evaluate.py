"""The evaluator process: started ahead of the runs it scores, it scores models that appear later; it gives up
after its wait, and exits at once when cancelled."""

from __future__ import annotations

import sys
import time

import psutil
import pytest

from pytest_autofl.run.evaluator import Evaluator, evaluate_models
from pytest_autofl.run.surface import prepare_surface

pytestmark = pytest.mark.subprocess  # process trees, prefork, the evaluator: seconds each

DIGITS = {"in_features": 64, "num_classes": 10}  # the data shape the harness builds the model with


@pytest.fixture
def model_path(repo, tmp_path):
    """A final global model as NVFlare's persistor saves it, for the surface's default MLP; its meta holds numpy
    arrays, as SCAFFOLD's control variate does."""
    import torch

    parent = prepare_surface(repo / "surfaces", tmp_path / "trial")
    sys.path.insert(0, str(parent))
    try:
        from autofl_surface.model import Net

        net = Net(arch="mlp", seed=0, in_features=64, num_classes=10)
    finally:
        sys.path.remove(str(parent))
        sys.modules.pop("autofl_surface.model", None)
        sys.modules.pop("autofl_surface", None)
    path = tmp_path / "FL_global_model.pt"
    c_global = {k: v.numpy() * 0 for k, v in net.state_dict().items()}
    torch.save({"model": net.state_dict(), "meta_props": {"scaffold_c_global": c_global}}, path)
    return parent, path


def _evaluate_one(contract, surface_parent, path, tmp_path) -> list[dict]:
    """One seed-0 MLP model at ``path`` scored on the validation split with the surface at ``surface_parent``."""
    model = {"arch": "mlp", "seed": 0, "path": str(path), "task": DIGITS}
    return evaluate_models(contract, surface_parent, [model], "validation", tmp_path)


def _evaluators() -> list[psutil.Process]:
    return [
        p
        for p in psutil.process_iter(["cmdline"])
        if "pytest_autofl.run.evaluate" in " ".join(p.info["cmdline"] or [])
    ]


def test_a_warm_evaluator_scores_models_that_appear_after_it_started(smoke_contract, model_path, tmp_path):
    parent, path = model_path
    evaluator = Evaluator(smoke_contract, parent, "validation", tmp_path, "-1", wait_seconds=120)
    time.sleep(6)  # the "simulations" run; the evaluator has loaded torch, the model and the data meanwhile
    assert evaluator.alive
    (entry,) = evaluator.score([{"arch": "mlp", "seed": 0, "path": str(path), "task": DIGITS}])
    assert 0.0 <= entry["score"] <= 1.0 and entry["n_params"] == 8970 and entry["n_examples"] > 100
    # the same model scored cold (the path the final held-out test takes) gives the same number
    (cold,) = evaluate_models(
        smoke_contract,
        parent,
        [{"arch": "mlp", "seed": 0, "path": str(path), "task": DIGITS}],
        "validation",
        tmp_path,
        "-cold",
    )
    assert cold == entry
    assert (tmp_path / "evaluate-validation-1.models.json").is_file()


def test_an_evaluator_gives_up_after_its_wait_and_a_cancelled_one_exits_at_once(
    smoke_contract, model_path, tmp_path
):
    parent, path = model_path
    expired = Evaluator(smoke_contract, parent, "validation", tmp_path, "-1", wait_seconds=0.2)
    cancelled = Evaluator(smoke_contract, parent, "validation", tmp_path, "-2", wait_seconds=600)
    cancelled.cancel()
    deadline = time.monotonic() + 60
    while (expired.alive or cancelled.alive) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not expired.alive and not cancelled.alive
    with pytest.raises(RuntimeError, match="no models to score arrived .* within 0 s"):
        expired.score([{"arch": "mlp", "seed": 0, "path": str(path), "task": DIGITS}])
    assert cancelled.score([]) == []
    assert not [p for p in _evaluators() if str(tmp_path) in " ".join(p.cmdline())]


CHEATS = {
    # reads the labels from wherever they are in its process: the scoring function's frame, or any object
    "labels": """
import gc, inspect
import numpy as np
_forward = Net.forward


def _labels(n):
    frames = [f.frame.f_locals.values() for f in inspect.stack()]
    for value in [v for values in frames for v in values] + gc.get_objects():
        array = value.numpy() if isinstance(value, torch.Tensor) else value
        if isinstance(array, np.ndarray) and array.dtype.kind in "iu" and array.shape == (n,):
            return torch.as_tensor(array)
    return None


def _cheat(self, x):
    found = _labels(len(x))
    if found is None:
        return _forward(self, x)
    print("FOUND LABELS", flush=True)
    return torch.nn.functional.one_hot(found.long(), 10).float()


Net.forward = _cheat
""",
    # replaces the metric with one that always says 1.0
    "metric": """
import pytest_autofl.core.metrics as _metrics
_metrics.METRICS["accuracy"] = _metrics.Metric(lambda outputs, labels: 1.0, "max")
""",
    # under-reports its size: the harness counts the state dict, not parameters()
    "size": """
_parameters = Net.parameters
Net.parameters = lambda self, recurse=True: iter(list(_parameters(self))[:1])
""",
}


@pytest.mark.parametrize("cheat", sorted(CHEATS))
def test_model_code_runs_apart_from_the_labels_and_the_metric(
    smoke_contract, model_path, repo, tmp_path, cheat
):
    """The scoring attacks of an earlier design (labels read from the scorer's frame, the metric wrapped, a
    lying parameter count) find nothing to act on: the model's process holds inputs only."""
    parent, path = model_path
    model_py = (repo / "surfaces" / "model.py").read_text()
    if "import torch\n" not in model_py:
        model_py = "import torch\n" + model_py
    cheating = prepare_surface(
        repo / "surfaces", tmp_path / "cheat", (("model.py", model_py + CHEATS[cheat]),)
    )
    (honest,) = evaluate_models(
        smoke_contract,
        parent,
        [{"arch": "mlp", "seed": 0, "path": str(path), "task": DIGITS}],
        "validation",
        tmp_path,
        "-honest",
    )
    (entry,) = evaluate_models(
        smoke_contract,
        cheating,
        [{"arch": "mlp", "seed": 0, "path": str(path), "task": DIGITS}],
        "validation",
        tmp_path,
        "-cheat",
    )
    assert entry == {**honest, "path": entry["path"]}  # the same score and size as the honest model's
    assert entry["n_params"] == 8970 and entry["score"] < 0.5
    assert "FOUND LABELS" not in (tmp_path / "predict" / "evaluate-validation-cheat.predict.log").read_text()


def test_outputs_that_cannot_be_scored_are_an_error_naming_the_model(
    smoke_contract, model_path, repo, tmp_path
):
    parent, path = model_path
    model_py = (repo / "surfaces" / "model.py").read_text() + "\nNet.forward = lambda self, x: x[:, :1]\n"
    bad = prepare_surface(repo / "surfaces", tmp_path / "bad", (("model.py", model_py),))
    with pytest.raises(RuntimeError, match=r"outputs of shape \(\d+, 1\), expected"):
        _evaluate_one(smoke_contract, bad, path, tmp_path)


def test_the_untrained_model_is_scored_too_and_a_seed_that_is_ignored_shows(
    smoke_contract, model_path, repo, tmp_path
):
    parent, path = model_path
    models = [{"arch": "mlp", "seed": s, "path": str(path), "task": DIGITS} for s in (0, 1)]
    honest = evaluate_models(smoke_contract, parent, models, "validation", tmp_path, "-honest")
    assert all(e["initial"]["score"] < 0.3 and 0.05 < e["initial"]["chance"] < 0.2 for e in honest)
    assert honest[0]["initial"]["digest"] != honest[1]["initial"]["digest"]
    model_py = (repo / "surfaces" / "model.py").read_text()
    model_py += "\n_init = Net.__init__\nNet.__init__ = lambda self, arch='mlp', seed=0, **task: _init(self, arch, 0, **task)\n"
    deaf = prepare_surface(repo / "surfaces", tmp_path / "deaf", (("model.py", model_py),))
    ignored = evaluate_models(smoke_contract, deaf, models, "validation", tmp_path, "-deaf")
    assert ignored[0]["initial"]["digest"] == ignored[1]["initial"]["digest"]


def test_a_checkpoint_is_read_without_running_code_from_it(model_path, tmp_path):
    import torch

    from pytest_autofl.run.evaluate import state_dict

    _, path = model_path
    assert sorted(state_dict(str(path))) == sorted(torch.load(path, weights_only=False)["model"])
    rigged = tmp_path / "rigged.pt"
    torch.save({"model": torch.load(path, weights_only=False)["model"], "hook": print}, rigged)
    with pytest.raises(Exception, match="Weights only load failed"):
        state_dict(str(rigged))


def test_non_finite_weights_are_named_as_such_before_any_prediction(smoke_contract, model_path, tmp_path):
    import torch

    parent, path = model_path
    saved = torch.load(path, weights_only=False)
    saved["model"] = {
        k: v.fill_(float("nan")) if k.endswith("weight") else v for k, v in saved["model"].items()
    }
    broken = tmp_path / "nan.pt"
    torch.save(saved, broken)
    with pytest.raises(RuntimeError, match=r"non-finite weights \(NaN or inf\) in .*weight"):
        _evaluate_one(smoke_contract, parent, broken, tmp_path)


def test_the_per_round_models_give_a_curve_and_a_bad_round_is_a_missing_point(
    smoke_contract, model_path, tmp_path
):
    import torch

    parent, path = model_path
    weights = torch.load(path, weights_only=False)["model"]
    torch.save(weights, tmp_path / "round-1.pt")  # as the harness' server filter saves them: a state dict
    torch.save({k: v.clone().fill_(float("nan")) for k, v in weights.items()}, tmp_path / "round-2.pt")
    rounds = [str(tmp_path / "round-1.pt"), str(tmp_path / "round-2.pt"), str(tmp_path / "round-3.pt")]
    model = {"arch": "mlp", "seed": 0, "path": str(path), "task": DIGITS, "rounds": rounds}
    (entry,) = evaluate_models(smoke_contract, parent, [model], "validation", tmp_path)
    start, first, nan_round, missing, final = entry["curve"]
    assert start == entry["initial"]["score"] and final == entry["score"]
    assert first == entry["score"]  # round 1 saved the same weights as the final model
    assert nan_round is None and missing is None  # a point of a curve is never worth a crash
