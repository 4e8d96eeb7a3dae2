"""``python -m pytest_autofl.run.trainer SCRIPT|MODULE ARGS...``: a client's training script (or a module of
the harness: the zero client) in a process of its own,
started by the client's FLARE process (``trainer_executor``); the process whose CPU time, task by task, is the
candidate's measured compute. It may start threads but no process (``seclude.no_new_processes``).

The script uses NVFlare's Client API (``import nvflare.client as flare``: ``init``, ``is_running``,
``receive``, ``send``, ``is_train``, ``is_evaluate``, ``get_site_name``); here that module is this one, talking
to the FLARE process over one Unix socket (``wire``), with no threads and no polling: the process uses CPU
only for what the script does. Parameters arrive as torch tensors, as FLARE's PyTorch Client API gives them.
"""

from __future__ import annotations

import json
import os
import runpy
import socket
import sys
import types
from pathlib import Path
from typing import Any

from pytest_autofl.run import seclude, wire
from pytest_autofl.run.interpreter import run_guarded
from pytest_autofl.run.surface import ARCH_KNOB

SOCKET_ENV, TOKEN_ENV = "AUTOFL_TRAINER_SOCKET", "AUTOFL_TRAINER_TOKEN"
TWIN_ENV = "AUTOFL_TWIN"  # a twin (``trainer_executor``): its hello carries its model's initial weights
RAISED = "Exception in the client script"  # how a script's exception starts in the run's log (``outcome``)
TRAIN, EVALUATE = "train", "validate"


class _Session:
    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.task: dict[str, Any] | None = None  # the task received and not yet answered
        self.running = True
        self.asked = False  # whether the script has asked for a task yet (its start-up is over)
        self.site = ""

    def next_task(self) -> dict[str, Any] | None:
        if self.task is None and self.running:
            if not self.asked:  # the script's start-up ends here: the FLARE process stops us, then sends
                wire.send(self.conn, {"kind": "ready"})
                self.asked = True
            message = wire.receive(self.conn)
            if message is None or message.get("kind") != "task":
                self.running = False
            else:
                self.task, self.site = message, str(message.get("site", ""))
        return self.task


_session: _Session | None = None


def _current() -> _Session:
    if _session is None:
        raise RuntimeError("the Client API is not connected (the script runs outside its FLARE client)")
    return _session


def init(*args: Any, **kwargs: Any) -> None:
    """Connected already: the harness connects before the script runs."""


def is_running() -> bool:
    return _current().next_task() is not None


def receive(*args: Any, **kwargs: Any) -> Any:
    import torch
    from nvflare.app_common.abstract.fl_model import FLModel

    task = _current().next_task()
    if task is None:
        return None
    model = dict(task["model"])
    if model.get("params") is not None:
        model["params"] = {k: torch.as_tensor(v) for k, v in model["params"].items()}
    return FLModel(**model)


def send(model: Any, clear_cache: bool = True) -> None:
    session = _current()
    if session.task is None:
        raise RuntimeError("flare.send() without a task received (call flare.receive() first)")
    params_type = getattr(model, "params_type", None)
    fields = {
        "params": model.params,
        "params_type": getattr(params_type, "value", params_type),
        "metrics": model.metrics,
        "meta": model.meta,
        "current_round": model.current_round,
    }
    wire.send(session.conn, {"kind": "result", "model": fields})
    session.task = None


def _task_name() -> str:
    task = _current().next_task()
    return str(task["task"]) if task else ""


def is_train() -> bool:
    return _task_name() == TRAIN


def is_evaluate() -> bool:
    return _task_name() == EVALUATE


def is_submit_model() -> bool:
    return _task_name() == "submit_model"


def get_site_name() -> str:
    session = _current()
    return session.site or os.environ.get("AUTOFL_SITE", "")


def get_job_id() -> str:
    return os.environ.get("AUTOFL_JOB_ID", "")


def _connect() -> _Session:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(os.environ.pop(SOCKET_ENV))
    hello: dict[str, Any] = {"kind": "hello", "token": os.environ.pop(TOKEN_ENV, "")}
    if os.environ.pop(TWIN_ENV, ""):
        hello["initial"] = _initial_params(sys.argv[2:])
    wire.send(conn, hello)
    return _Session(conn)


def _await_start(session: _Session) -> bool:
    """Wait, running nothing, until the FLARE process starts the script's start-up (its first window): a
    trainer that went on after its hello would run the script unmetered until the first task. False: the run
    ended first (told so, or its connection closed: the run ended before this site's first task)."""
    try:
        message = wire.receive(session.conn)
    except (OSError, wire.WireError):
        return False
    return isinstance(message, dict) and message.get("kind") == "start"


def _initial_params(args: list[str]) -> dict[str, Any]:
    """A twin's model as the job's persistor builds it (``Net(arch, seed, **task)`` from the client's
    configuration), for tasks whose model does not fit it. Built in a child forked for it (this process may
    not fork later), so this process starts its first task as cold as the candidate's: nothing of the model
    imported, built or warmed here (a warm twin made honest first tasks look 1.2x dearer)."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the child: build, send, exit without running anything of the parent's
        code = 1
        try:
            ours.close()
            config = json.loads(Path(args[args.index("--config") + 1]).read_text())
            from autofl_surface.model import Net

            net = Net(arch=config["knobs"][ARCH_KNOB], seed=config["seed"], **config["task"])
            wire.send(theirs, {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()})
            code = 0
        except BaseException as exc:  # told on stderr, the run's log; the parent sees no params
            print(f"the twin could not build the unchanged surface's model: {exc!r}", file=sys.stderr)
        finally:
            os._exit(code)
    theirs.close()
    try:
        params = wire.receive(ours)
    finally:
        ours.close()
        os.waitpid(pid, 0)
    if not isinstance(params, dict):
        raise RuntimeError("the twin could not build the unchanged surface's model")
    return params


def main() -> int:
    global _session
    if len(sys.argv) < 2:
        print("usage: python -m pytest_autofl.run.trainer SCRIPT [ARGS...]", file=sys.stderr)
        return 2
    target = sys.argv[1]
    _session = _connect()
    if not _await_start(_session):  # the start-up is measured from here to the first request (``next_task``)
        return 0
    seclude.no_new_processes()  # threads yes (counted: stopped with the process), processes no
    _session.site = os.environ.get("AUTOFL_SITE", "")
    api = types.ModuleType("nvflare.client", __doc__)
    for name in ("init", "is_running", "receive", "send", "is_train", "is_evaluate", "is_submit_model"):
        setattr(api, name, globals()[name])
    api.get_site_name, api.get_job_id = get_site_name, get_job_id  # type: ignore[attr-defined]
    sys.modules["nvflare.client"] = api
    import nvflare

    nvflare.client = api
    raised = f"{RAISED} ({get_site_name()}):"
    if not target.endswith(".py"):
        sys.argv = [target, *sys.argv[2:]]
        return run_guarded(lambda: runpy.run_module(target, run_name="__main__", alter_sys=True), raised)
    script = os.path.abspath(target)
    sys.argv, sys.path[0] = [script, *sys.argv[2:]], os.path.dirname(script)
    return run_guarded(lambda: runpy.run_path(script, run_name="__main__"), raised)


if __name__ == "__main__":
    sys.exit(main())
