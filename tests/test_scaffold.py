"""``python -m pytest_autofl new``: a benchmark from the user's data and their own Client API script."""

from __future__ import annotations

import json

import pytest
from test_own_data import patients

from pytest_autofl.__main__ import main
from pytest_autofl.core.contract import check_pin, load_contract

SCRIPT = '''\
"""My own FedAvg client: plain SGD on my site's rows."""
import argparse
import json

import numpy as np
import nvflare.client as flare
import torch
from autofl_surface.model import Net
from nvflare.app_common.abstract.fl_model import FLModel, ParamsType


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    with open(parser.parse_args().config) as fh:
        cfg = json.load(fh)
    flare.init()
    shard = np.load(f"{cfg['data_dir']}/{flare.get_site_name()}.npz")
    x, y = torch.from_numpy(shard["x"]), torch.from_numpy(shard["y"])
    model = Net(arch=cfg["knobs"]["arch"], seed=cfg["seed"], **cfg["task"])
    while flare.is_running():
        incoming = flare.receive()
        model.load_state_dict({k: torch.as_tensor(v) for k, v in incoming.params.items()}, strict=True)
        if flare.is_evaluate():
            flare.send(FLModel(metrics={"accuracy": 0.0}))
            continue
        before = {k: v.clone() for k, v in model.state_dict().items()}
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg["knobs"]["lr"])
        steps = 0
        for start in range(0, len(y), cfg["batch_size"])[: cfg["max_local_steps"]]:
            optimizer.zero_grad()
            batch = slice(start, start + cfg["batch_size"])
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
            steps += 1
        after = model.state_dict()
        diff = {k: after[k] - before[k] for k in after}
        flare.send(FLModel(params=diff, params_type=ParamsType.DIFF, meta={"NUM_STEPS_CURRENT_ROUND": steps}))


main()
'''


def _new(tmp_path, repo, *args):
    return main(
        [
            "new",
            *args,
            "--benchmarks-dir",
            str(tmp_path / "benchmarks"),
            "--surface-dir",
            str(repo / "surfaces"),
        ]
    )


@pytest.mark.subprocess  # the check probes the sandbox
def test_a_benchmark_from_a_csv_and_my_own_client_script_passes_the_check(
    tmp_path, repo, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    patients(400, seed=5).to_csv(tmp_path / "patients.csv", index=False)
    (tmp_path / "my_client.py").write_text(SCRIPT)
    dataset = json.dumps(
        {"kind": "csv", "path": "patients.csv", "label": "outcome", "site": "hospital", "standardize": True}
    )
    args = ["clinic", "--dataset", dataset, "--metric", "auroc", "--partition", "site", "--clients", "3"]
    assert _new(tmp_path, repo, *args, "--from-client-script", "my_client.py") == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "checks passed; next: pytest --autofl-benchmark clinic --autofl-iterations=5" in out
    contract = load_contract(tmp_path / "benchmarks", "clinic")
    check_pin(contract)
    assert (
        contract.raw["surface"] == "surfaces-clinic"
        and contract.raw["dataset"]["path"] == "../../patients.csv"
    )
    assert (tmp_path / "surfaces-clinic" / "client_train.py").read_text() == SCRIPT
    profile = (tmp_path / "benchmarks" / "clinic" / "profile.md").read_text()
    assert "400 rows, input shape (2,), 2 classes (sick, well)" in profile and "site-3" in profile


def test_a_script_that_breaks_a_rule_gets_the_rule_list_and_bad_data_leaves_nothing(tmp_path, repo, capsys):
    (tmp_path / "bad_client.py").write_text(SCRIPT.replace("    flare.init()\n", ""))
    code = _new(
        tmp_path,
        repo,
        "wine",
        "--dataset",
        "sklearn.load_wine",
        "--from-client-script",
        str(tmp_path / "bad_client.py"),
    )
    assert code == 1
    out = capsys.readouterr().out
    assert "AF101 flare.init() must be called" in out and "fix 1 surface rule(s) in surfaces-wine/" in out
    missing = json.dumps({"kind": "csv", "path": str(tmp_path / "nope.csv"), "label": "y"})
    assert _new(tmp_path, repo, "nope", "--dataset", missing) == 2
    assert "cannot read" in capsys.readouterr().err and not (tmp_path / "benchmarks" / "nope").exists()
    assert _new(tmp_path, repo, "digits10", "--dataset", "sklearn.load_digits", "--metric", "auroc") == 2
    assert "needs a binary task; the data set has 10 classes" in capsys.readouterr().err
    assert not (tmp_path / "benchmarks" / "digits10").exists()
