"""The zygote of ``prefork``: forks each worker of a simulation on request, in the worker's own view of the
shards (``seclude``), and measures each worker's CPU time for the harness' meter (``meter``). Only the
standard library is imported at the top.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import time
from typing import Any

from pytest_autofl.run import kernel, meter, seclude
from pytest_autofl.run.interpreter import exit_process, pythonpath, run_command
from pytest_autofl.run.prefork_shim import HEADER
from pytest_autofl.run.worker_request import Job, flare_env, flare_worker

PR_SET_CHILD_SUBREAPER = 36
END_SECONDS = 10.0  # to kill and reap what is left at the end
# How FLARE's simulator ends its workers (relayed by their shims): an end, not a kill.
_ORDERLY = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 3)
    if len(data) < HEADER.size:
        raise ValueError("short request")
    (size,) = HEADER.unpack_from(data)
    body = bytearray(data[HEADER.size :])
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ValueError("truncated request")
        body += chunk
    return json.loads(body), fds


def _become_worker(
    request: dict[str, Any], fds: list[int], launch_pythonpath: list[str], cwd_first: bool = True
) -> None:
    """In the forked child: turn into ``python <argv>`` started in a new session; never returns. Without
    ``cwd_first`` the working directory is not on the import path (a FLARE process': it is writable there)."""
    code = 1
    try:
        os.setsid()
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        # sys.path as a fresh ``python -m`` would build it: cwd, then PYTHONPATH, then the interpreter's own.
        own = [p for p in sys.path[1:] if p not in launch_pythonpath]
        sys.path[:] = [*([os.getcwd()] if cwd_first else []), *pythonpath(request["env"]), *own]
        sys.path_importer_cache.clear()
        importlib.invalidate_caches()
        # ``random`` reseeds itself after a fork (os.register_at_fork); numpy's global stream does not
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        code = run_command(request["argv"])
    finally:
        exit_process(code)


def _site(argv: list[str]) -> str:
    """The client a worker's command line runs (``--client NAME``), or "" for anything else."""
    return argv[argv.index("--client") + 1] if "--client" in argv[:-1] else ""


FLARE, TRAINER = "flare", "trainer"  # a client's FLARE process (harness and FLARE code); candidate code


class Zygote:
    """Forks a worker per request until the launcher goes away; a worker whose shim died is killed. Counts the
    CPU time of every process it reaps, per site and kind, for the harness' meter (``meter``): a process the
    simulator asked for is a client's FLARE process; one that a forked process (or anything below it) asked for
    is candidate code, a client's trainer; a process reaped unannounced (an orphan, reparented to the zygote)
    counts as candidate code of no known site."""

    def __init__(
        self,
        listener: socket.socket,
        launch_pythonpath: list[str],
        shards: str,
        meter_fd: int | None,
        job: Job | None = None,
    ) -> None:
        self.listener, self.launch_pythonpath = listener, launch_pythonpath
        self.shards, self.meter_fd = shards, meter_fd
        self.job, self.launch_env = job, dict(os.environ)  # the sandbox's run (``worker_request``)
        self.started: set[str] = set()  # the sites whose FLARE process was started
        self.workers: dict[int, socket.socket] = {}
        self.roles: dict[int, tuple[str, str]] = {}  # pid -> (FLARE or TRAINER, site)
        self.cpu: dict[tuple[str, str], float] = {}
        self.windows: dict[str, list[float]] = {}  # site -> its trainer's CPU seconds per task
        self.twins: dict[str, list[float]] = {}  # site -> its twin's (a code change's unchanged surface)
        self.killed: dict[str, str] = {}  # site -> signal: a worker killed by a signal nobody here sent
        self.ours: set[int] = set()  # processes the zygote killed itself
        self.selector = selectors.DefaultSelector()

    def serve(self, parent: int) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, lambda *_: None)  # Ctrl-C is for the simulator; we end when it does
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the launcher is done: clean up on the way out
        with contextlib.suppress(OSError, AttributeError):  # orphans of the workers come to us: counted
            ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(wake_r, selectors.EVENT_READ, "wake")
        try:
            while os.getppid() == parent:
                for key, _ in self.selector.select(timeout=0.5):
                    if key.data == "accept":
                        self._accept(wake_r, wake_w)
                    elif key.data == "wake":
                        with contextlib.suppress(BlockingIOError):
                            os.read(wake_r, 4096)
                    elif not key.fileobj.recv(1):  # type: ignore[union-attr]  # the shim is gone
                        self.ours.add(key.data)
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(key.data, signal.SIGKILL)
                        self.selector.unregister(key.fileobj)
                self._reap(block=False)
        finally:
            self._end()

    def _accept(self, *wake: int) -> None:
        conn, _ = self.listener.accept()
        try:
            request, fds = _receive(conn)
        except (OSError, ValueError) as exc:
            with contextlib.suppress(OSError):
                conn.sendall(f"error {exc}\n".encode())
            conn.close()
            return
        if "windows" in request:
            self._windows(conn, request)
            return
        role = self._role(conn, request["argv"])
        if role[0] == FLARE and self.job is not None:
            try:
                request, role = self._flare(request)
            except ValueError as exc:
                for fd in fds:
                    os.close(fd)
                with contextlib.suppress(OSError):
                    conn.sendall(f"error {exc}\n".encode())
                conn.close()
                return
        pid = os.fork()
        if pid == 0:
            self._child(conn, wake, role)
            _become_worker(
                request, fds, self.launch_pythonpath, cwd_first=self.job is None or role[0] != FLARE
            )
        for fd in fds:
            os.close(fd)
        self.workers[pid], self.roles[pid] = conn, role
        self.selector.register(conn, selectors.EVENT_READ, pid)
        conn.sendall(f"pid {pid}\n".encode())

    def _flare(self, request: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, str]]:
        """A client's FLARE process, as the harness runs it (``worker_request``); ValueError if it is none."""
        assert self.job is not None
        argv, site = flare_worker(request["argv"], self.job, self.started, os.getppid())
        self.started.add(site)
        env = flare_env(self.launch_env, self.job, site, self.listener.getsockname())
        return {**request, "argv": argv, "env": env}, (FLARE, site)

    def _windows(self, conn: socket.socket, request: dict[str, Any]) -> None:
        """A site's trainer (and twin) CPU seconds per task, from that site's FLARE process
        (``trainer_executor``) only: a report from anyone else, or a second one, is dropped."""
        kind, site = self.roles.get(kernel.peer_pid(conn), ("", ""))
        windows, twin = request.get("windows"), request.get("twin")
        if kind == FLARE and site not in self.windows and isinstance(windows, list):
            with contextlib.suppress(TypeError, ValueError):
                self.windows[site] = [float(w) for w in windows]
                if isinstance(twin, list):
                    self.twins[site] = [float(w) for w in twin]
        with contextlib.suppress(OSError):
            conn.sendall(b"ok\n")
        conn.close()

    def _role(self, conn: socket.socket, argv: list[str]) -> tuple[str, str]:
        """What a requested process is, from who asked (the kernel's word, ``SO_PEERCRED``): below a process
        the zygote forked, the candidate's code of that site; else a FLARE client the simulator starts."""
        pid = kernel.peer_pid(conn)
        for _ in range(64):
            pid = kernel.parent(pid)
            if pid in self.roles:
                return TRAINER, self.roles[pid][1]
            if pid <= 1 or pid == os.getpid():
                break
        return FLARE, _site(argv)

    def _child(self, conn: socket.socket, wake: tuple[int, ...], role: tuple[str, str]) -> None:
        """In a new process, before anything of the request runs: none of the zygote's ends; a trainer sees
        only its own site's shard, a FLARE process none."""
        self.selector.close()
        self.listener.close()
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for other in self.workers.values():
            other.close()
        conn.close()
        for fd in (*wake, *([self.meter_fd] if self.meter_fd is not None else [])):
            os.close(fd)
        if self.shards:
            try:
                kind, site = role
                pins = self.job.pins(site) if self.job is not None and site else []  # its trainer's too
                seclude.hide(self.shards, f"{site}.npz" if site and kind == TRAINER else None, pins)
            except OSError as exc:
                print(
                    f"[pytest-autofl prefork] cannot hide the other shards or pin the job: {exc}",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(1)

    def _reap(self, block: bool) -> None:
        """Count and reap finished processes; tell each finished worker's shim how it ended."""
        while True:
            try:
                pid, status, usage = os.wait4(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            role = self.roles.pop(pid, (TRAINER, ""))
            self.cpu[role] = self.cpu.get(role, 0.0) + usage.ru_utime + usage.ru_stime
            conn = self.workers.pop(pid, None)
            if conn is None:
                continue
            if os.WIFSIGNALED(status) and pid not in self.ours and os.WTERMSIG(status) not in _ORDERLY:
                self.killed.setdefault(role[1], signal.Signals(os.WTERMSIG(status)).name)
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(conn)
            with contextlib.suppress(OSError):
                conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
            conn.close()

    def _end(self) -> None:
        """Kill what is left, reap it all, then report the CPU seconds to the harness' meter."""
        import psutil

        deadline = time.monotonic() + END_SECONDS
        while (children := psutil.Process().children(recursive=True)) and time.monotonic() < deadline:
            for proc in children:  # until nothing is left, zombies included
                self.ours.add(proc.pid)
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            time.sleep(0.02)
            self._reap(block=False)
        if self.meter_fd is not None:
            per_kind = {
                kind: {site: s for (k, site), s in self.cpu.items() if k == kind} for kind in (FLARE, TRAINER)
            }
            meter.report(
                self.meter_fd, per_kind[TRAINER], per_kind[FLARE], self.windows, self.twins, self.killed
            )
