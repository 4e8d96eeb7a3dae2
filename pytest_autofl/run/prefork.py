"""Run NVFlare's simulator with its heavy imports done once per simulation instead of once per process.

A simulation of N clients starts N + 1 Python processes, and each imports torch, torch._dynamo, numpy and
nvflare: about 3 s of CPU per process, against about 0.03 s of training per client round on our benchmarks.
``python -m pytest_autofl.run.prefork -m nvflare.private.fed.app.simulator.simulator ARGS`` imports them
once, forks a small fork server (the *zygote*), then forks the process that runs the simulator module exactly
as ``python -m`` would, with ``sys.executable`` pointing at a shim (``prefork_shim``). When the simulator starts a
worker (``sys.executable -m ...simulator_worker ...`` in a new session), the shim hands its command line,
environment, working directory and standard streams to the zygote, which forks a child that becomes that
worker: its own process and session, the module run as ``__main__``; only the already-imported modules are
shared, copy-on-write. The shim relays signals and exits with the worker's status, so the simulator sees an
ordinary child. The simulator's ports come from ``ports.reserve``, not NVFlare's pick-then-bind.

The zygote is also the harness' meter of the clients' compute (``meter``: the CPU time of every worker it
reaps, per site) and, in the sandbox, where each worker's view of the shards is made: only its own site's
(``seclude``); the simulator itself sees none.

Every process stays inside the tree ``processes.run_tree`` watches (launcher -> zygote -> workers, launcher ->
simulator -> its children -> shims), so the wall-clock cap, Ctrl-C and ``guard`` reach all of them. The zygote is
per simulation: nothing is shared between two runs. Anything that is not a ``-m`` command, or a shim that
cannot reach the zygote, falls back to the real interpreter. Only the standard library is imported at the top.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import runpy
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

from pytest_autofl.run import meter, seclude
from pytest_autofl.run.commands import PACKAGE_ROOT
from pytest_autofl.run.prefork_shim import HEADER, SOCKET_ENV

# What every simulator process imports and no candidate changes: the harness never preloads surface code.
SHARDS_ENV = "AUTOFL_SHARDS"  # the run's shard directory, when each client must see only its own shard
PR_SET_CHILD_SUBREAPER = 36
PRELOAD = (
    "numpy",
    "torch",
    "torch._dynamo",
    "torch.optim",
    "aiohttp.web",
    "nvflare.client",
    "nvflare.app_opt.pt",
    "nvflare.app_common.executors.client_api.in_process_backend",
    "nvflare.fuel.f3.drivers.tcp_driver",
    "nvflare.fuel.f3.drivers.aio_conn",
    "nvflare.fuel.f3.drivers.grpc.streamer_pb2_grpc",
    "nvflare.private.fed.app.simulator.simulator_runner",
    "nvflare.private.fed.app.simulator.simulator_worker",
)


def _exit_code(exc: SystemExit) -> int:
    """What the interpreter would exit with for ``sys.exit(code)``."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _pythonpath(env: dict[str, str]) -> list[str]:
    return [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]


def _run_main(module: str, args: list[str]) -> int:
    """``python -m module args`` in this process; the exit code."""
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return _exit_code(exc)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _write_shim(directory: str) -> str:
    """An executable that runs ``shim``; fast to start (``-S``: no site-packages scan, only the stdlib)."""
    path = os.path.join(directory, "python")
    package_parent = str(PACKAGE_ROOT)
    with open(path, "w") as f:
        f.write(
            f"#!{sys.executable} -S\n"
            f"import sys\nsys.path.insert(0, {package_parent!r})\n"
            f"from pytest_autofl.run.prefork_shim import shim\nshim({sys.executable!r})\n"
        )
    os.chmod(path, 0o755)
    return path


# --- the zygote: forks workers on request -----------------------------------------------------------------


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


def _become_worker(request: dict[str, Any], fds: list[int], launch_pythonpath: list[str]) -> None:
    """In the forked child: turn into ``python -m <argv>`` started in a new session; never returns."""
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
        sys.path[:] = [os.getcwd(), *_pythonpath(request["env"]), *own]
        sys.path_importer_cache.clear()
        importlib.invalidate_caches()
        # ``random`` reseeds itself after a fork (os.register_at_fork); numpy's global stream does not
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        code = _run_main(request["argv"][0], request["argv"][1:])
    finally:
        _exit(code)


def _exit(code: int) -> None:
    """End a forked process as interpreter exit would (join threads, atexit, flush), without returning."""
    try:
        import threading

        threading._shutdown()  # type: ignore[attr-defined]
        import atexit

        atexit._run_exitfuncs()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _site(argv: list[str]) -> str:
    """The client a worker's command line runs (``--client NAME``), or "" for anything else."""
    return argv[argv.index("--client") + 1] if "--client" in argv[:-1] else ""


class _Zygote:
    """Forks a worker per request until the launcher goes away; a worker whose shim died is killed. Counts the
    CPU time of every process it reaps, per site, for the harness' meter (``meter``)."""

    def __init__(
        self, listener: socket.socket, launch_pythonpath: list[str], shards: str, meter_fd: int | None
    ) -> None:
        self.listener, self.launch_pythonpath = listener, launch_pythonpath
        self.shards, self.meter_fd = shards, meter_fd
        self.workers: dict[int, socket.socket] = {}
        self.sites: dict[int, str] = {}
        self.cpu: dict[str, float] = {}
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
        site = _site(request["argv"])
        pid = os.fork()
        if pid == 0:
            self._child(conn, wake, site)
            _become_worker(request, fds, self.launch_pythonpath)
        for fd in fds:
            os.close(fd)
        self.workers[pid], self.sites[pid] = conn, site
        self.selector.register(conn, selectors.EVENT_READ, pid)
        conn.sendall(f"pid {pid}\n".encode())

    def _child(self, conn: socket.socket, wake: tuple[int, ...], site: str) -> None:
        """In a new worker, before anything of the request runs: none of the zygote's ends, only its shard."""
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
                seclude.hide(self.shards, f"{site}.npz" if site else None)
            except OSError as exc:
                print(
                    f"[pytest-autofl prefork] cannot hide the other shards: {exc}",
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
            site = self.sites.pop(pid, "")
            self.cpu[site] = self.cpu.get(site, 0.0) + usage.ru_utime + usage.ru_stime
            conn = self.workers.pop(pid, None)
            if conn is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(conn)
            with contextlib.suppress(OSError):
                conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
            conn.close()

    def _end(self) -> None:
        """Kill what is left, reap it all, then report the CPU seconds to the harness' meter."""
        import psutil

        while children := psutil.Process().children(
            recursive=True
        ):  # until nothing is left, zombies included
            for proc in children:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            time.sleep(0.02)
            self._reap(block=False)
        if self.meter_fd is not None:
            meter.report(self.meter_fd, self.cpu)


# --- the launcher -----------------------------------------------------------------------------------------

_PREFIX = "autofl-prefork-"


def _sweep(alive: Callable[[int], bool]) -> None:
    """Remove the socket directories of launchers that were killed (SIGKILL skips their clean-up)."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        pid = name[len(_PREFIX) :].split("-")[0]
        if name.startswith(_PREFIX) and pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def main() -> int:
    args = sys.argv[1:]
    if len(args) < 2 or args[0] != "-m":
        print("usage: python -m pytest_autofl.run.prefork -m MODULE [ARGS...]", file=sys.stderr)
        return 2
    from pytest_autofl.run import ports

    shards, meter_fd = os.environ.pop(SHARDS_ENV, ""), meter.take_fd()
    if shards:  # while single-threaded: imports may start threads, and a user namespace needs one thread
        seclude.own_namespace()
    started = time.monotonic()
    for name in PRELOAD:  # an optimization only: what another nvflare/torch version lacks is imported by need
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    took = time.monotonic() - started
    os.environ[ports.OWNER_ENV] = str(os.getpid())  # this simulation's ports are held until it ends
    try:
        ports.use_in_nvflare()
    except (ImportError, AttributeError) as exc:  # an nvflare whose internals moved: it picks its own ports
        print(f"[pytest-autofl prefork] NVFlare picks its own ports ({exc})", file=sys.stderr, flush=True)
    _sweep(ports.pid_alive)
    # short (a Unix socket path has ~100 bytes) and named for its launcher, so _sweep can tell when it is stale
    directory = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
    try:
        return _launch(args[1:], directory, shards, meter_fd, took)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        ports.release(os.getpid())


def _launch(argv: list[str], directory: str, shards: str, meter_fd: int | None, took: float) -> int:
    """Fork the zygote (it keeps the meter's pipe), then the simulator, hidden from every shard; wait for it."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.path.join(directory, "zygote"))
    listener.listen(64)
    shim_path = _write_shim(directory)
    launch_pythonpath = _pythonpath(dict(os.environ))
    sys.stdout.flush()
    sys.stderr.flush()
    seclude.undumpable()  # the zygote, the simulator and every worker inherit it: none can read another
    zygote = os.fork()
    if zygote == 0:
        try:
            _Zygote(listener, launch_pythonpath, shards, meter_fd).serve(os.getppid())
        finally:
            os._exit(0)
    listener.close()
    if meter_fd is not None:
        os.close(meter_fd)
    print(
        f"[pytest-autofl prefork] torch and nvflare imported once ({took:.1f} s); "
        f"the simulator's worker processes are forked from pid {zygote}",
        file=sys.stderr,
        flush=True,
    )
    signal.signal(signal.SIGINT, lambda *_: None)  # Ctrl-C reaches the simulator itself; we wait for it
    try:
        simulator = os.fork()
        if simulator == 0:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            if shards:
                seclude.hide(shards, None)
            os.environ[SOCKET_ENV] = os.path.join(directory, "zygote")
            sys.executable = shim_path
            _exit(_run_main(argv[0], argv[1:]))
        return os.waitstatus_to_exitcode(os.waitpid(simulator, 0)[1])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(zygote, signal.SIGTERM)
        os.waitpid(zygote, 0)


if __name__ == "__main__":
    sys.exit(main())
