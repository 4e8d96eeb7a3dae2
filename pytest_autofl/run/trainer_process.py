"""One trainer process as a client's executor (``trainer_executor``) holds it: started, connected by its
launch token, stopped (SIGSTOP) except in its start-up and while it holds a task, its CPU clock read around
each (the start-up's window apart), and ended.
What it sends is decoded without running any of it (no pickles)."""

from __future__ import annotations

import contextlib
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

from nvflare.apis.signal import Signal

from pytest_autofl.run import kernel, wire
from pytest_autofl.run.trainer import SOCKET_ENV, TOKEN_ENV

TRAINER = "pytest_autofl.run.trainer"
WAIT_SECONDS = 0.5  # how often a wait looks at the abort signal and the trainer's life: it wakes on data
STOP_SECONDS = 10.0  # for the trainer to end after the last task before it is killed


class TrainerFailed(Exception):
    """The trainer broke its connection or sent something that is not a result."""


class TrainerProcess:
    def __init__(self, command: str, script: str, script_args: str, launch_timeout: float) -> None:
        self.command, self.script, self.script_args = command, script, script_args
        self.launch_timeout = launch_timeout
        self.hello: dict[str, Any] = {}  # what it said when it connected (a twin: its model's initial params)
        self.windows: list[float] = []  # its CPU seconds: the start-up, then one per task
        self._process: subprocess.Popen[bytes] | None = None
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._directory = ""
        self._token = ""
        self._pid = 0  # from the kernel (SO_PEERCRED of its connection)

    def launch(self, env: dict[str, str], cwd: str) -> None:
        """Start it (``env``: the client's environment for it, with the socket and token added here)."""
        self._directory = tempfile.mkdtemp(prefix="autofl-trainer-")  # short: a socket path has ~100 bytes
        path = os.path.join(self._directory, "socket")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(4)
        self._token = secrets.token_hex(16)
        argv = [*shlex.split(self.command), "-m", TRAINER, self.script, *shlex.split(self.script_args)]
        self._process = subprocess.Popen(argv, cwd=cwd, env={**env, SOCKET_ENV: path, TOKEN_ENV: self._token})

    def connected(self, abort_signal: Signal) -> bool:
        """Whether it is connected: the first connection that shows this launch's token, waited for."""
        deadline = time.monotonic() + self.launch_timeout
        while self._conn is None and self._listener is not None and time.monotonic() < deadline:
            if abort_signal.triggered or not self.alive():
                return False
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
                    self._conn, self._pid, self.hello = conn, kernel.peer_pid(conn), hello
                    _freeze(self._pid)
                    break
            conn.close()
        return self._conn is not None

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exit_code(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def start_up(self, abort_signal: Signal) -> bool:
        """Let it run the script up to its first request for a task (the script's start-up: imports, data,
        model), its CPU in that window the first of ``windows``; False if it ended or the run was aborted
        first. TrainerFailed if the connection broke."""
        return self._window({"kind": "start"}, "ready", abort_signal) is not None

    def task(self, message: dict[str, Any], abort_signal: Signal) -> dict[str, Any] | None:
        """Hand it one task and wait for its result (None: it ended first, or the run was aborted); its CPU
        in that window is added to ``windows``. TrainerFailed if the connection broke."""
        return self._window(message, "result", abort_signal)

    def _window(self, message: dict[str, Any], kind: str, abort_signal: Signal) -> dict[str, Any] | None:
        assert self._conn is not None
        before = kernel.cpu_seconds(self._pid)
        try:
            os.kill(self._pid, signal.SIGCONT)
            wire.send(self._conn, message)
            return self._reply(self._conn, kind, abort_signal)
        except (OSError, wire.WireError) as exc:
            raise TrainerFailed(f"broke the connection ({exc})") from None
        finally:
            _freeze(self._pid)
            if after := kernel.cpu_seconds(self._pid):  # one that died mid-task has no clock left
                self.windows.append(after - before)

    def _reply(self, conn: socket.socket, kind: str, abort_signal: Signal) -> dict[str, Any] | None:
        conn.settimeout(WAIT_SECONDS)
        while True:
            try:
                head = conn.recv(1, socket.MSG_PEEK)
            except TimeoutError:
                if abort_signal.triggered or not self.alive():
                    return None
                continue
            conn.settimeout(None)
            if not head:
                return None
            reply = wire.receive(conn)
            if not isinstance(reply, dict) or reply.get("kind") != kind:
                raise wire.WireError(f"the trainer sent something other than a {kind!r} message")
            return reply

    def stop(self) -> None:
        """Tell it the run is over, give it a moment, then kill it; the socket goes."""
        if self._pid:
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGCONT)
        if self._conn is not None:
            with contextlib.suppress(OSError, wire.WireError):
                wire.send(self._conn, {"kind": "stop"})
            self._conn.close()
        if self._listener is not None:  # one never accepted learns the run is over from this (``trainer``)
            self._listener.close()
        if self._process is not None:
            try:
                self._process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._directory, ignore_errors=True)
        self._process = self._listener = self._conn = None


def _freeze(pid: int) -> None:
    """Stop ``pid`` and wait until it is stopped (a signal is delivered, not obeyed, at once)."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 1.0
    while not kernel.stopped(pid) and time.monotonic() < deadline:
        time.sleep(0.0002)
