"""The executor of each FLARE client: it runs the client's training script in a process of its own
(``trainer``) and hands it each task over a Unix socket (``wire``), so that the client's FLARE process runs no
candidate code and the trainer process runs nothing but it.

That split is what lets the harness measure the candidate's compute: the trainer is stopped (SIGSTOP) except
while it holds a task, and its CPU clock is read from here before and after each task, so every CPU second
the script spends, in any of its threads, falls in a task's window (it may start no process); FLARE's
polling and messaging are in another process. The windows go to the harness' meter through the zygote
(``meter``), which takes them only from this site's FLARE process. The trainer is started as
``commands.TRAINER_COMMAND`` found on ``PATH`` (in a simulation, prefork's shim: forked from the warm zygote),
and waited for event by event: a task is sent the moment it comes, its result read the moment it is written.
What the trainer sends is decoded without running any of it (no pickles), and passed on only within
``result_bounds`` (the model's shape and little else).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any

from nvflare.apis.event_type import EventType
from nvflare.apis.executor import Executor
from nvflare.apis.fl_constant import ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable, make_reply
from nvflare.apis.signal import Signal
from nvflare.app_common.abstract.fl_model import FLModel, ParamsType
from nvflare.app_common.utils.fl_model_utils import FLModelUtils

from pytest_autofl.run import kernel, result_bounds, wire
from pytest_autofl.run.prefork_shim import HEADER
from pytest_autofl.run.prefork_shim import SOCKET_ENV as ZYGOTE_SOCKET_ENV
from pytest_autofl.run.trainer import SOCKET_ENV, TOKEN_ENV

TRAINER = "pytest_autofl.run.trainer"
WAIT_SECONDS = 0.5  # how often a wait looks at the abort signal and the trainer's life: it wakes on data
STOP_SECONDS = 10.0  # for the trainer to end after the last task before it is killed


class TrainerExecutor(Executor):
    def __init__(
        self, script: str, script_args: str = "", command: str = "python3 -u", launch_timeout: float = 120.0
    ):
        super().__init__()
        self.script, self.script_args, self.command = script, script_args, command
        self.launch_timeout = launch_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._directory = ""
        self._token = ""
        self._pid = 0  # the trainer's, from the kernel (SO_PEERCRED of its connection)
        self._windows: list[float] = []  # CPU seconds of the trainer per task

    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        if event_type == EventType.START_RUN:
            self._launch(fl_ctx)
        elif event_type == EventType.END_RUN:
            self._stop()

    def _launch(self, fl_ctx: FLContext) -> None:
        workspace = fl_ctx.get_engine().get_workspace()
        custom = workspace.get_app_custom_dir(fl_ctx.get_job_id())
        self._directory = tempfile.mkdtemp(prefix="autofl-trainer-")  # short: a socket path has ~100 bytes
        path = os.path.join(self._directory, "socket")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(4)
        self._token = secrets.token_hex(16)
        env = {
            **os.environ,
            SOCKET_ENV: path,
            TOKEN_ENV: self._token,
            "AUTOFL_SITE": fl_ctx.get_identity_name(),
            "AUTOFL_JOB_ID": str(fl_ctx.get_job_id()),
            "PYTHONPATH": os.pathsep.join([custom, os.environ.get("PYTHONPATH", "")]),
        }
        script = os.path.join(custom, self.script) if self.script.endswith(".py") else self.script
        argv = [*shlex.split(self.command), "-m", TRAINER, script]
        self._process = subprocess.Popen(
            [*argv, *shlex.split(self.script_args)], cwd=os.path.dirname(custom), env=env
        )
        self.log_info(fl_ctx, f"started the client script {self.script} in its own process")

    def _connection(self, abort_signal: Signal) -> socket.socket | None:
        """The trainer's connection: the first one that shows this launch's token."""
        deadline = time.monotonic() + self.launch_timeout
        while self._conn is None and self._listener is not None and time.monotonic() < deadline:
            if abort_signal.triggered or not self._alive():
                return None
            self._listener.settimeout(WAIT_SECONDS)
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(self.launch_timeout)
            with contextlib.suppress(OSError, wire.WireError):
                hello = wire.receive(conn)
                if isinstance(hello, dict) and hello.get("token") == self._token:
                    conn.settimeout(None)
                    self._conn, self._pid = conn, kernel.peer_pid(conn)
                    _freeze(self._pid)
                    break
            conn.close()
        return self._conn

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def execute(
        self, task_name: str, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal
    ) -> Shareable:
        conn = self._connection(abort_signal)
        if conn is None:
            return self._failed(fl_ctx, abort_signal, "did not start")
        model = FLModelUtils.from_shareable(shareable, fl_ctx)
        fields = {
            "params": model.params,
            "params_type": getattr(model.params_type, "value", model.params_type),
            "meta": model.meta,
            "current_round": model.current_round,
            "total_rounds": model.total_rounds,
        }
        before = kernel.cpu_seconds(self._pid)
        try:
            os.kill(self._pid, signal.SIGCONT)
            wire.send(
                conn, {"kind": "task", "task": task_name, "site": fl_ctx.get_identity_name(), "model": fields}
            )
            reply = self._reply(conn, abort_signal)
        except (OSError, wire.WireError) as exc:
            return self._failed(fl_ctx, abort_signal, f"broke the connection ({exc})")
        finally:
            _freeze(self._pid)
            if after := kernel.cpu_seconds(
                self._pid
            ):  # a trainer that died mid-task has no clock left: the run failed
                self._windows.append(after - before)
        if reply is None:
            return self._failed(fl_ctx, abort_signal, "ended without a result")
        if found := result_bounds.excess(model.params, reply.get("model")):
            return self._failed(fl_ctx, abort_signal, f"sent more than a result may carry: {found}")
        try:
            return FLModelUtils.to_shareable(_model(reply))
        except (TypeError, ValueError, KeyError) as exc:
            return self._failed(fl_ctx, abort_signal, f"sent a result that is not an FLModel ({exc})")

    def _reply(self, conn: socket.socket, abort_signal: Signal) -> dict[str, Any] | None:
        conn.settimeout(WAIT_SECONDS)
        while True:
            try:
                head = conn.recv(1, socket.MSG_PEEK)
            except TimeoutError:
                if abort_signal.triggered or not self._alive():
                    return None
                continue
            conn.settimeout(None)
            if not head:
                return None
            reply = wire.receive(conn)
            if not isinstance(reply, dict) or reply.get("kind") != "result":
                raise wire.WireError("the trainer sent something other than a result")
            return reply

    def _failed(self, fl_ctx: FLContext, abort_signal: Signal, what: str) -> Shareable:
        if abort_signal.triggered:
            return make_reply(ReturnCode.TASK_ABORTED)
        code = self._process.poll() if self._process is not None else None
        ended = f" (exit code {code})" if code is not None else ""
        self.log_error(fl_ctx, f"the client script {self.script} {what}{ended}")
        return make_reply(ReturnCode.EXECUTION_EXCEPTION)

    def _stop(self) -> None:
        """Report the task windows to the meter; tell the trainer the run is over, give it a moment, then
        kill it; the socket goes."""
        _report(self._windows)
        if self._pid:
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGCONT)
        if self._conn is not None:
            with contextlib.suppress(OSError, wire.WireError):
                wire.send(self._conn, {"kind": "stop"})
            self._conn.close()
        if self._process is not None:
            try:
                self._process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._listener is not None:
            self._listener.close()
        shutil.rmtree(self._directory, ignore_errors=True)
        self._process = self._listener = self._conn = None


def _freeze(pid: int) -> None:
    """Stop ``pid`` and wait until it is stopped (a signal is delivered, not obeyed, at once)."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 1.0
    while not kernel.stopped(pid) and time.monotonic() < deadline:
        time.sleep(0.0002)


def _report(windows: list[float]) -> None:
    """The task windows to the zygote (the meter); nothing to report to outside a preforked simulation."""
    path = os.environ.get(ZYGOTE_SOCKET_ENV)
    if not path:
        return
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(path)
        request = json.dumps({"windows": windows}).encode()
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
