"""Where the exported job finds each client's script (``run/flare_job.py``)."""

from __future__ import annotations


def test_a_trial_in_the_package_s_own_checkout_runs_its_script_not_a_module_of_the_harness():
    """The main job in a clone installed with ``pip install -e .``: the work directory (``.autofl/``) lies
    inside the directory that holds ``pytest_autofl``; the trial's client script is still the surface's."""
    from pytest_autofl.run.commands import PACKAGE_ROOT
    from pytest_autofl.run.flare_job import client_script
    from pytest_autofl.run.job import ZERO_CLIENT

    trial = PACKAGE_ROOT / ".autofl" / "runs" / "20261208T000000-1" / "01-fedavg-ac1112cfb0"
    script = trial / "autofl_surface" / "client_train.py"
    assert client_script({"train_script": str(script), "surface_parent": str(trial)}) == (
        trial,
        "autofl_surface/client_train.py",
    )
    zero = client_script({"train_script": str(ZERO_CLIENT), "surface_parent": str(trial)})
    assert zero == (PACKAGE_ROOT, "pytest_autofl.run.zero_client")
