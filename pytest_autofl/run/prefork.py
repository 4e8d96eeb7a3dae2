"""Run NVFlare's simulator with its heavy imports done once per simulation instead of once per process.

A simulation of N clients starts N + 1 Python processes, and each imports torch, torch._dynamo, numpy and
nvflare: about 3 s of CPU per process, against about 0.03 s of training per client round on our benchmarks.
``python -m pytest_autofl.run.prefork -m nvflare.private.fed.app.simulator.simulator ARGS`` imports them
once, forks a small fork server (the *zygote*), then runs the simulator module in this process exactly as
``python -m`` would, with ``sys.executable`` pointing at a shim (``prefork_shim``). When the simulator starts a
worker (``sys.executable -m ...simulator_worker ...`` in a new session), the shim hands its command line,
environment, working directory and standard streams to the zygote, which forks a child that becomes that
worker: its own process and session, the module run as ``__main__``; only the already-imported modules are
shared, copy-on-write. The shim relays signals and exits with the worker's status, so the simulator sees an
ordinary child. The simulator's ports come from ``ports.reserve``, not NVFlare's pick-then-bind.

Every process stays inside the tree ``processes.run_tree`` watches (launcher -> zygote -> workers, launcher ->
simulator children -> shims), so the wall-clock cap, Ctrl-C and ``guard`` reach all of them. The zygote is
per simulation: nothing is shared between two runs. Anything that is not a ``-m`` command, or a shim that
cannot reach the zygote, falls back to the real interpreter. Only the standard library is imported at the top.
"""

from __future__ import annotations

import contextlib
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

from pytest_autofl.run.commands import PACKAGE_ROOT
from pytest_autofl.run.prefork_shim import HEADER, SOCKET_ENV

# What every simulator process imports and no candidate changes: the harness never preloads surface code.
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
        import threading

        threading._shutdown()  # type: ignore[attr-defined]  # what interpreter exit does: join threads, atexit
        import atexit

        atexit._run_exitfuncs()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _serve(listener: socket.socket, parent: int, launch_pythonpath: list[str]) -> None:
    """Fork a worker per request until the launcher goes away; a worker whose shim died is killed."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)  # Ctrl-C is for the simulator; we end when it does
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the launcher is done: clean up on the way out
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_r, selectors.EVENT_READ, "wake")
    workers: dict[int, socket.socket] = {}
    try:
        while os.getppid() == parent:
            for key, _ in selector.select(timeout=0.5):
                if key.data == "accept":
                    conn, _ = listener.accept()
                    try:
                        request, fds = _receive(conn)
                    except (OSError, ValueError) as exc:
                        with contextlib.suppress(OSError):
                            conn.sendall(f"error {exc}\n".encode())
                        conn.close()
                        continue
                    pid = os.fork()
                    if pid == 0:
                        selector.close()
                        listener.close()
                        signal.set_wakeup_fd(-1)
                        for sig in (signal.SIGCHLD, signal.SIGTERM):
                            signal.signal(sig, signal.SIG_DFL)
                        signal.signal(signal.SIGINT, signal.default_int_handler)
                        for other in workers.values():
                            other.close()
                        conn.close()
                        os.close(wake_r)
                        os.close(wake_w)
                        _become_worker(request, fds, launch_pythonpath)
                    for fd in fds:
                        os.close(fd)
                    workers[pid] = conn
                    selector.register(conn, selectors.EVENT_READ, pid)
                    conn.sendall(f"pid {pid}\n".encode())
                elif key.data == "wake":
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
                elif not key.fileobj.recv(1):  # type: ignore[union-attr]  # the shim is gone
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(key.data, signal.SIGKILL)
                    selector.unregister(key.fileobj)
            _reap(workers, selector)
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in list(workers):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _reap(workers: dict[int, socket.socket], selector: selectors.BaseSelector) -> None:
    """Tell each finished worker's shim how it ended."""
    while workers:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = workers.pop(pid, None)
        if conn is None:
            continue
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(conn)
        with contextlib.suppress(OSError):
            conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
        conn.close()


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
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(os.path.join(directory, "zygote"))
        listener.listen(64)
        shim_path = _write_shim(directory)
        launch_pythonpath = _pythonpath(dict(os.environ))
        sys.stdout.flush()
        sys.stderr.flush()
        zygote = os.fork()
        if zygote == 0:
            try:
                _serve(listener, os.getppid(), launch_pythonpath)
            finally:
                os._exit(0)
        listener.close()
        print(
            f"[pytest-autofl prefork] torch and nvflare imported once ({took:.1f} s); "
            f"the simulator's worker processes are forked from pid {zygote}",
            file=sys.stderr,
            flush=True,
        )
        os.environ[SOCKET_ENV] = os.path.join(directory, "zygote")
        sys.executable = shim_path
        try:
            return _run_main(args[1], args[2:])
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(zygote, signal.SIGTERM)
            os.waitpid(zygote, 0)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        ports.release(os.getpid())


if __name__ == "__main__":
    sys.exit(main())
