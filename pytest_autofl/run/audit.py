"""A harness-owned NVFlare server filter that records what each client actually sent.

It runs inside the FLARE server process on every incoming ``train`` result, outside the mutation surface, and
writes one JSON line per result: site, round, reported local steps and the update's size. The fairness
invariants (rounds completed, local steps per round) and the communication volume are read from this file,
not from anything candidate code writes about itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading

import numpy as np
from nvflare.apis.dxo import from_shareable
from nvflare.apis.filter import Filter
from nvflare.apis.fl_constant import ReservedKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable
from nvflare.app_common.app_constant import AppConstants


class AuditFilter(Filter):
    def __init__(self, audit_path: str):
        super().__init__()
        self.audit_path = audit_path

    def process(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        record: dict = {"round": shareable.get_cookie(AppConstants.CONTRIBUTION_ROUND)}
        peer = fl_ctx.get_peer_context()
        record["site"] = peer.get_identity_name() if peer else shareable.get_header(ReservedKey.TASK_NAME)
        try:
            dxo = from_shareable(shareable)
            record["steps"] = dxo.get_meta_prop("NUM_STEPS_CURRENT_ROUND")
            record["data_kind"] = str(dxo.data_kind)
            record["tensors"] = len(dxo.data or {})
            record["values"] = int(sum(np.asarray(v).size for v in (dxo.data or {}).values()))
        except Exception as exc:  # a malformed result is itself an audit fact
            record["error"] = f"{type(exc).__name__}: {exc}"
        line = json.dumps(record, default=str) + "\n"
        fd = os.open(self.audit_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        return shareable


class RoundModels(Filter):
    """Saves the global model the server sends out at the start of each round after the first (the model the
    previous round aggregated) as ``round-<k>.pt`` in ``directory``, once per round: the per-round curves are
    scored from these by the harness' evaluator. The start (round 0) and the final model are scored anyway."""

    def __init__(self, directory: str):
        super().__init__()
        self.directory = directory
        self._lock = threading.Lock()

    def process(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        """Never raises: the same round's tasks to several clients pass here at once, and a curve's point is
        not worth a failed run."""
        current = shareable.get_header(AppConstants.CURRENT_ROUND)
        if isinstance(current, int) and current >= 1:
            # a model the curve cannot read is a missing point
            with self._lock, contextlib.suppress(Exception):
                # the name SeedRun.round_models reads (seedrun.py is not visible in the sandbox this runs in)
                self._save(shareable, os.path.join(self.directory, f"round-{current}.pt"))
        return shareable

    def _save(self, shareable: Shareable, path: str) -> None:
        import torch

        if os.path.exists(path):  # one copy per round, whichever client's task comes first
            return
        weights = from_shareable(shareable).data or {}
        state = {k: torch.as_tensor(np.asarray(v)) for k, v in weights.items()}
        os.makedirs(self.directory, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, path)
