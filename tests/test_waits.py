"""NVFlare's hard-coded waits, shortened in a simulation's processes: only the (module, seconds) pairs of the
table change, and a simulation on them computes exactly what one on NVFlare's own waits does."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import pytest
import torch
from test_load import _runner, _sim

from pytest_autofl.run import infrastructure, waits


def _module(name: str, spec_name: str | None = None) -> types.SimpleNamespace:
    """A function ``nap(seconds)`` defined in a module called ``name`` (run as ``__main__`` with a spec)."""
    namespace: dict = {"__name__": name}
    if spec_name:
        namespace["__spec__"] = types.SimpleNamespace(name=spec_name)
    exec("import time\ndef nap(seconds):\n    time.sleep(seconds)\n", namespace)
    return types.SimpleNamespace(**namespace)


def test_only_the_tables_pairs_are_shortened(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(waits, "_SLEEP", slept.append)
    monkeypatch.setattr("time.sleep", waits.shortened({("nvflare.x", 0.5): 0.02, ("nvflare.x", 2): 0.05}))
    poll, worker = _module("nvflare.x"), _module("__main__", spec_name="nvflare.x")
    candidate = _module("autofl_surface.client_train")
    for seconds in (0.5, 2.0, 0.3):
        poll.nap(seconds)
    worker.nap(0.5)
    candidate.nap(0.5)  # a candidate's sleep is its own
    assert slept == [0.02, 0.05, 0.3, 0.02, 0.5]


def test_every_wait_of_the_table_is_a_sleep_nvflare_still_has():
    """A newer NVFlare that moved one would leave the table stale, not wrong: this names it."""
    spec = importlib.util.find_spec("nvflare")  # found, not imported
    assert spec is not None and spec.submodule_search_locations
    package = Path(spec.submodule_search_locations[0])
    for module, seconds in infrastructure.WAITS:
        source = package.joinpath(*module.split(".")[1:]).with_suffix(".py")
        assert "time.sleep(" in source.read_text(), (module, seconds)
        assert infrastructure.WAITS[(module, seconds)] < seconds


def test_nvflare_s_own_waits_are_another_fingerprint(monkeypatch):
    ours = infrastructure.fingerprint()
    monkeypatch.setenv(infrastructure.NVFLARE_WAITS_ENV, "1")
    assert infrastructure.waits_in_force() == ({}, {}) and infrastructure.fingerprint() != ours


@pytest.mark.e2e
def test_a_simulation_on_the_shortened_waits_computes_what_one_on_nvflare_s_own_does(
    repo, tmp_path, monkeypatch
):
    """Real NVFlare, digits-smoke, the same seed: the final global model is the same tensor for tensor, and
    so are the score and the outputs' digest."""
    search, factory = _sim(repo, tmp_path, lambda event: None)
    ours = _runner(search, factory, tmp_path / "ours", lambda event: None).run(0)
    monkeypatch.setenv(infrastructure.NVFLARE_WAITS_ENV, "1")
    theirs = _runner(search, factory, tmp_path / "theirs", lambda event: None).run(0)
    assert ours.error is None and theirs.error is None, (ours.error, theirs.error)
    assert (
        "quit waiting for component ready-to-end-run"
        in (ours.directory / "ws" / "trial" / "site-1" / "log.txt").read_text()
    )
    final = [torch.load(run.model_path, weights_only=False) for run in (ours, theirs)]
    weights = [f.get("model", f) for f in final]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert (ours.score, ours.digest) == (theirs.score, theirs.digest)
