"""FLARE client training script (Client API): local SGD on this site's shard, DIFF update back to the server.

Contract (checked statically by ``pytest --autofl-check``): flare.init / while flare.is_running /
flare.receive / strict load_state_dict / an is_evaluate branch that returns metrics / flare.send of a DIFF
FLModel with meta NUM_STEPS_CURRENT_ROUND. The budget (epochs, step cap, batch size) and the seed come from the
harness' config file; the score is computed by the harness, never by this script.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import nvflare.client as flare
import torch
from autofl_surface.model import Net
from nvflare.app_common.abstract.fl_model import FLModel, ParamsType


def _tensors(params: dict) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(v)) for k, v in params.items()}


def _accuracy(model: Net, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    with open(parser.parse_args().config) as fh:
        cfg = json.load(fh)
    knobs = cfg["knobs"]
    torch.set_num_threads(1)

    flare.init()
    site = flare.get_site_name()
    site_index = int(site.rsplit("-", 1)[1])
    with np.load(f"{cfg['data_dir']}/{site}.npz") as shard:
        x, y = torch.from_numpy(shard["x"]), torch.from_numpy(shard["y"])
    model = Net(arch=knobs["arch"], seed=cfg["seed"], **cfg["task"])
    steps_per_round = min(cfg["local_epochs"] * math.ceil(len(y) / cfg["batch_size"]), cfg["max_local_steps"])
    scaffold = knobs["aggregator"] == "scaffold"
    c_local = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}

    while flare.is_running():
        input_model = flare.receive()
        model.load_state_dict(_tensors(input_model.params), strict=True)

        if flare.is_evaluate():
            flare.send(
                FLModel(metrics={"accuracy": _accuracy(model, x, y)}, meta={"NUM_STEPS_CURRENT_ROUND": 0})
            )
            continue

        round_num = int(input_model.current_round or 0)
        global_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        c_global = _tensors((input_model.meta or {}).get("scaffold_c_global") or {}) if scaffold else {}
        if scaffold and round_num > 0 and not c_global:
            raise RuntimeError("SCAFFOLD: the server sent no scaffold_c_global after round 0")
        generator = torch.Generator().manual_seed(cfg["seed"] * 1_000_003 + site_index * 1009 + round_num)
        optimizer = torch.optim.SGD(
            model.parameters(), lr=knobs["lr"], momentum=knobs["momentum"], weight_decay=knobs["weight_decay"]
        )
        named = dict(model.named_parameters())
        grad_sum = {n: torch.zeros_like(p) for n, p in named.items()}
        model.train()
        steps, loss_sum = 0, 0.0
        while steps < steps_per_round:
            for batch in torch.randperm(len(y), generator=generator).split(cfg["batch_size"]):
                if steps >= steps_per_round:
                    break
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
                if knobs["fedprox_mu"] > 0:
                    prox = sum(((p - global_state[n]) ** 2).sum() for n, p in named.items())
                    loss = loss + knobs["fedprox_mu"] / 2 * prox
                loss.backward()
                if scaffold:
                    for n, p in named.items():
                        grad_sum[n] += p.grad
                        p.grad += c_global.get(n, torch.zeros_like(p)) - c_local[n]
                optimizer.step()
                steps += 1
                loss_sum += float(loss)

        local_state = model.state_dict()
        # torch tensors: the PyTorch Client API silently drops numpy values from params.
        diff = {k: local_state[k] - global_state[k] for k in local_state}
        meta: dict = {"NUM_STEPS_CURRENT_ROUND": steps}
        if scaffold:
            # The new client control variate is the mean raw gradient over this round's local steps (an
            # option-I style estimate from the local iterates). Option II's (x - y) / (K * lr) assumes plain
            # SGD: with client momentum it overstates the gradient about 1 / (1 - momentum) times and diverges.
            c_diff = {}
            for n in named:
                c_new = grad_sum[n] / max(steps, 1)
                c_diff[n] = (c_new - c_local[n]).numpy()
                c_local[n] = c_new
            meta["scaffold_c_diff"] = c_diff
        flare.send(
            FLModel(
                params=diff,
                params_type=ParamsType.DIFF,
                metrics={"train_loss": loss_sum / max(steps, 1)},
                meta=meta,
            )
        )


if __name__ == "__main__":
    main()
