"""The zero-update control's client: harness code that stands in for the candidate's client script.

Every round it sends an all-zero DIFF (and, for each meta entry the surface schema names under
``control.zero_meta``, zeros shaped like the model), one step. An honest server then ends where it began; a
server whose global model moves anyway put weights into it that no client trained (``core.invariants``).
Run by the FLARE client from the exported job, like any client script: it imports nothing of the harness.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import nvflare.client as flare
import torch
from nvflare.app_common.abstract.fl_model import FLModel, ParamsType


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    with open(parser.parse_args().config) as fh:
        cfg = json.load(fh)
    flare.init()
    while flare.is_running():
        received = flare.receive()
        if flare.is_evaluate():
            flare.send(FLModel(metrics={}, meta={"NUM_STEPS_CURRENT_ROUND": 0}))
            continue
        zeros = {k: torch.zeros_like(torch.as_tensor(np.asarray(v))) for k, v in received.params.items()}
        meta: dict = {"NUM_STEPS_CURRENT_ROUND": 1}
        for name in cfg["zero_meta"]:
            meta[name] = {k: v.numpy() for k, v in zeros.items()}
        flare.send(FLModel(params=zeros, params_type=ParamsType.DIFF, meta=meta))


if __name__ == "__main__":
    main()
