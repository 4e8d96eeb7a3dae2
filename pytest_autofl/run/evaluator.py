"""The harness' evaluator, seen from the search: a separate process (``run.evaluate``) started ahead of need,
handed the final models, and its scores read back."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pytest_autofl.core.contract import Contract
from pytest_autofl.data.split import heldout
from pytest_autofl.run.commands import EVALUATE, PACKAGE_ROOT, python_module
from pytest_autofl.run.evaluate import EVAL_PREFIX
from pytest_autofl.run.processes import TreeResult, python_env, run_tree
from pytest_autofl.run.sandbox import NO_SANDBOX, Sandbox

EVAL_TIMEOUT_SECONDS = 300.0


class Evaluator:
    """One evaluator process (harness code, apart from pytest) for one split. Its files (``work_dir``: its spec,
    the held-out arrays, the request) must lie where no candidate process can write (``runner.beside``). It
    starts ahead of need: while the simulations run it imports torch and the surface's model; ``score``
    then hands it the final models. If no models come within ``wait_seconds`` it exits (``alive`` turns
    False) and the caller starts a fresh one; ``cancel`` lets it exit at once."""

    def __init__(
        self,
        contract: Contract,
        surface_parent: Path,
        split: str,
        work_dir: Path,
        name: str,
        wait_seconds: float,
        sandbox: Sandbox = NO_SANDBOX,
    ):
        work_dir.mkdir(parents=True, exist_ok=True)
        self.spec_path = work_dir / f"evaluate-{split}{name}.json"
        self.request_path = work_dir / f"evaluate-{split}{name}.models.json"
        self.log_path = work_dir / f"evaluate-{split}{name}.log"
        self.request_path.unlink(missing_ok=True)
        heldout_path = work_dir / f"heldout-{split}{name}.npz"
        x, y = heldout(contract, split)
        np.savez(heldout_path, x=x, y=y)
        self.spec_path.write_text(
            json.dumps(
                {
                    "metric": contract.raw["metric"]["name"],
                    "heldout": str(heldout_path),
                    "surface_parent": str(surface_parent),
                    "wait_seconds": wait_seconds,
                    "sandbox": {"mode": sandbox.mode, "hidden": list(sandbox.hidden)},
                },
                indent=1,
            )
        )
        self._argv = python_module(EVALUATE, str(self.spec_path), str(self.request_path))
        self._timeout = wait_seconds + EVAL_TIMEOUT_SECONDS
        self._outcome: TreeResult | BaseException | None = None
        # A daemon thread: an interrupted search never waits for it (Ctrl-C stops the tree through STOP or
        # ``cancel``, and the guard kills it if pytest is gone).
        self._thread = threading.Thread(target=self._run, name="autofl-evaluator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._outcome = run_tree(
                self._argv,
                cwd=self.spec_path.parent,
                env=python_env([PACKAGE_ROOT]),
                log_path=self.log_path,
                timeout=self._timeout,
            )
        except BaseException as exc:  # stopped (Ctrl-C) while waiting
            self._outcome = exc

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _request(self, models: list[dict[str, Any]]) -> None:
        tmp = self.request_path.with_name(self.request_path.name + ".tmp")
        tmp.write_text(json.dumps(models, indent=1))
        os.replace(tmp, self.request_path)  # the evaluator never sees half a request

    def cancel(self) -> None:
        """Nothing to score: the evaluator exits (once started) and is gone when this returns, so no process
        outlives the trial that started it."""
        self._request([])
        self._thread.join()

    def score(self, models: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The evaluator's entries for ``models``, in order; raises RuntimeError with the reason."""
        self._request(models)
        self._thread.join()
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        output = self.log_path.read_text(errors="replace")
        line = next((ln for ln in reversed(output.splitlines()) if ln.startswith(EVAL_PREFIX)), None)
        if outcome.returncode != 0 or line is None:
            tail = output.strip().splitlines()[-1:] or ["(no output)"]
            raise RuntimeError(
                f"evaluator failed (exit {outcome.returncode}): {tail[0][:300]}; log: {self.log_path}"
            )
        return list(json.loads(line[len(EVAL_PREFIX) :]))


def evaluate_models(
    contract: Contract,
    surface_parent: Path,
    models: list[dict[str, Any]],
    split: str,
    work_dir: Path,
    tag: str = "",
    sandbox: Sandbox = NO_SANDBOX,
) -> list[dict[str, Any]]:
    """Score final global models now, in a fresh evaluator process; raises RuntimeError with the reason. The
    models must lie under ``surface_parent`` (their trial) or ``work_dir``: the predict sandbox sees no more."""
    return Evaluator(contract, surface_parent, split, work_dir, tag, 0.0, sandbox).score(models)
