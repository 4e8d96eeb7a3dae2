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


@pytest.fixture
def model_path(repo, tmp_path):
    """A final global model as NVFlare's persistor saves it, for the surface's default MLP."""
    import torch

    parent = prepare_surface(repo / "surfaces", tmp_path / "trial")
    sys.path.insert(0, str(parent))
    try:
        from autofl_surface.model import Net

        net = Net(arch="mlp", seed=0)
    finally:
        sys.path.remove(str(parent))
        sys.modules.pop("autofl_surface.model", None)
        sys.modules.pop("autofl_surface", None)
    path = tmp_path / "FL_global_model.pt"
    torch.save({"model": net.state_dict(), "meta_props": {}}, path)
    return parent, path


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
    (entry,) = evaluator.score([{"arch": "mlp", "seed": 0, "path": str(path)}])
    assert 0.0 <= entry["score"] <= 1.0 and entry["n_params"] == 8970 and entry["n_examples"] > 100
    # the same model scored cold (the path the final held-out test takes) gives the same number
    (cold,) = evaluate_models(
        smoke_contract,
        parent,
        [{"arch": "mlp", "seed": 0, "path": str(path)}],
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
        expired.score([{"arch": "mlp", "seed": 0, "path": str(path)}])
    assert cancelled.score([]) == []
    assert not [p for p in _evaluators() if str(tmp_path) in " ".join(p.cmdline())]
