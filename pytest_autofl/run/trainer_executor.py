"""The executor of each FLARE client: it runs the client's training script in a process of its own
(``trainer``) and hands it each task over a Unix socket (``wire``), so that the client's FLARE process runs no
candidate code and the trainer process runs nothing but it.

That split is what lets the harness measure the candidate's compute: the trainer is stopped (SIGSTOP) except
while it holds a task, and its CPU clock is read from here before and after each task, so every CPU second
the script spends, in any of its threads, falls in a task's window (it may start no process); FLARE's
polling and messaging are in another process. The windows go to the harness' meter through the zygote
(``meter``), which takes them only from this site's FLARE process. The trainer is started as
``commands.TRAINER_COMMAND`` found on ``PATH`` (in a simulation, prefork's shim: forked from the warm zygote),
and waited for event by event: a task is sent the moment it comes, its result read the moment it is written
(``trainer_process``). What the trainer sends is passed on only within ``result_bounds`` (the model's shape and
little else).

A code change's clients also run a **twin**: a second trainer with the unchanged surface's script (a copy the
harness made before any candidate code ran, read-only), given every task too, in turns (which of the two goes
first alternates task by task, and on the first task from site to site: whoever starts first warms what both
read, so a fixed order would bias the first-task ratio), its result dropped. Its windows, measured in the same moments on the same
machine, are what the candidate's are held to, task by task (``core.invariants.compute_violations``). If the
candidate's model does not fit the unchanged one, the twin trains its own model's initial weights each task.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from typing import Any

from nvflare.apis.event_type import EventType
from nvflare.apis.executor import Executor
from nvflare.apis.fl_constant import ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable, make_reply
from nvflare.apis.signal import Signal
from nvflare.app_common.abstract.fl_model import FLModel, ParamsType
from nvflare.app_common.utils.fl_model_utils import FLModelUtils

from pytest_autofl.run import result_bounds
from pytest_autofl.run.prefork_shim import HEADER
from pytest_autofl.run.prefork_shim import SOCKET_ENV as ZYGOTE_SOCKET_ENV
from pytest_autofl.run.trainer import TWIN_ENV
from pytest_autofl.run.trainer_process import TrainerFailed, TrainerProcess


class TrainerExecutor(Executor):
    def __init__(
        self,
        script: str,
        script_args: str = "",
        command: str = "python3 -u",
        launch_timeout: float = 120.0,
        twin: str = "",
    ):
        super().__init__()
        self.script, self.script_args, self.command = script, script_args, command
        self.launch_timeout, self.twin = launch_timeout, twin
        self._trainer: TrainerProcess | None = None
        self._twin: TrainerProcess | None = None
        self._tasks = (
            0  # handed so far, counted from the site's turn (``_turn``: odd sites start with the twin)
        )
        self._started = False  # whether the trainers' start-ups ran (before the first task, measured apart)

    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        if event_type == EventType.START_RUN:
            self._launch(fl_ctx)
        elif event_type == EventType.END_RUN:
            self._stop()

    def _launch(self, fl_ctx: FLContext) -> None:
        custom = fl_ctx.get_engine().get_workspace().get_app_custom_dir(fl_ctx.get_job_id())
        site = fl_ctx.get_identity_name()
        self._tasks, self._started = _turn(site), False
        env = {
            **os.environ,
            "AUTOFL_SITE": site,
            "AUTOFL_JOB_ID": str(fl_ctx.get_job_id()),
        }
        path = os.environ.get("PYTHONPATH", "")
        script = os.path.join(custom, self.script) if self.script.endswith(".py") else self.script
        self._trainer = TrainerProcess(self.command, script, self.script_args, self.launch_timeout)
        self._trainer.launch({**env, "PYTHONPATH": os.pathsep.join([custom, path])}, os.path.dirname(custom))
        if (
            self.twin
        ):  # in the unchanged surface's folder (first on its path: what the simulator deployed is not)
            reference = os.path.dirname(os.path.dirname(self.twin))
            self._twin = TrainerProcess(self.command, self.twin, self.script_args, self.launch_timeout)
            self._twin.launch(
                {**env, TWIN_ENV: "1", "PYTHONPATH": os.pathsep.join([reference, path])}, reference
            )
        self.log_info(fl_ctx, f"started the client script {self.script} in its own process")

    def execute(
        self, task_name: str, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal
    ) -> Shareable:
        trainers = [t for t in (self._trainer, self._twin) if t is not None]
        for trainer in trainers:
            if not trainer.connected(abort_signal):
                return self._failed(fl_ctx, abort_signal, trainer, "did not start")
        model = FLModelUtils.from_shareable(shareable, fl_ctx)
        fields = {
            "params": model.params,
            "params_type": getattr(model.params_type, "value", model.params_type),
            "meta": model.meta,
            "current_round": model.current_round,
            "total_rounds": model.total_rounds,
        }
        message = {"kind": "task", "task": task_name, "site": fl_ctx.get_identity_name(), "model": fields}
        self._tasks += 1
        order = trainers if self._tasks % 2 else trainers[::-1]  # who goes first alternates
        for trainer in order if not self._started else []:  # the start-ups, each its own window
            try:
                if not trainer.start_up(abort_signal):
                    return self._failed(fl_ctx, abort_signal, trainer, "ended before it asked for a task")
            except TrainerFailed as exc:
                return self._failed(fl_ctx, abort_signal, trainer, str(exc))
        self._started = True
        replies: dict[int, dict[str, Any]] = {}
        for trainer in order:
            try:
                reply = trainer.task(
                    message if trainer is self._trainer else _for_twin(message, trainer), abort_signal
                )
            except TrainerFailed as exc:
                return self._failed(fl_ctx, abort_signal, trainer, str(exc))
            if reply is None:
                return self._failed(fl_ctx, abort_signal, trainer, "ended without a result")
            replies[id(trainer)] = reply
        reply = replies[id(trainers[0])]
        if found := result_bounds.excess(model.params, reply.get("model")):
            return self._failed(
                fl_ctx, abort_signal, trainers[0], f"sent more than a result may carry: {found}"
            )
        try:
            return FLModelUtils.to_shareable(_model(reply))
        except (TypeError, ValueError, KeyError) as exc:
            return self._failed(
                fl_ctx, abort_signal, trainers[0], f"sent a result that is not an FLModel ({exc})"
            )

    def _failed(
        self, fl_ctx: FLContext, abort_signal: Signal, trainer: TrainerProcess, what: str
    ) -> Shareable:
        if abort_signal.triggered:
            return make_reply(ReturnCode.TASK_ABORTED)
        code = trainer.exit_code()
        ended = f" (exit code {code})" if code is not None else ""
        who = (
            f"the client script {self.script}" if trainer is self._trainer else "the unchanged surface's twin"
        )
        self.log_error(fl_ctx, f"{who} {what}{ended}")
        return make_reply(ReturnCode.EXECUTION_EXCEPTION)

    def _stop(self) -> None:
        """Report the task windows to the meter, then end the trainers."""
        if self._trainer is not None:
            _report(self._trainer.windows, self._twin.windows if self._twin is not None else None)
        for trainer in (self._trainer, self._twin):
            if trainer is not None:
                trainer.stop()
        self._trainer = self._twin = None


def _turn(site: str) -> int:
    """0 or 1, alternating over sites numbered as FLARE's simulator names them (site-1, site-2, ...)."""
    digits = "".join(ch for ch in site[-6:] if ch.isdigit())
    return int(digits) % 2 if digits else 0


def _for_twin(message: dict[str, Any], twin: TrainerProcess) -> dict[str, Any]:
    """The task as the twin gets it: as it came, if the candidate's model fits the unchanged one; else with the
    twin's own initial weights (and no model-shaped meta, such as SCAFFOLD's control variate)."""
    initial = twin.hello.get("initial")
    fields = message["model"]
    params = fields.get("params") or {}
    if not isinstance(initial, dict) or _shapes(params) == _shapes(initial):
        return message
    meta = {k: v for k, v in (fields.get("meta") or {}).items() if not isinstance(v, dict)}
    return {**message, "model": {**fields, "params": initial, "meta": meta}}


def _shapes(params: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {str(k): tuple(getattr(v, "shape", ())) for k, v in params.items()}


def _report(windows: list[float], twin: list[float] | None) -> None:
    """The task windows (and the twin's) to the zygote, the meter; nothing to report to outside a preforked
    simulation."""
    path = os.environ.get(ZYGOTE_SOCKET_ENV)
    if not path:
        return
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(path)
        request = json.dumps({"windows": windows, "twin": twin}).encode()
        conn.sendall(HEADER.pack(len(request)) + request)
        conn.recv(64)


def _model(reply: dict[str, Any]) -> FLModel:
    fields = reply["model"]
    if not isinstance(fields, dict):
        raise TypeError("the result is not a mapping")
    params_type = fields.get("params_type")
    return FLModel(
        params=fields.get("params"),
        params_type=ParamsType(params_type) if params_type else None,
        metrics=fields.get("metrics"),
        meta=fields.get("meta") or {},
        current_round=fields.get("current_round"),
    )
