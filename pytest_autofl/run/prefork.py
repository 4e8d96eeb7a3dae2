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
(``seclude``); the simulator itself sees none. The zygote lives in ``zygote``.

Every process stays inside the tree ``processes.run_tree`` watches (launcher -> zygote -> workers, launcher ->
simulator -> its children -> shims), so the wall-clock cap, Ctrl-C and ``guard`` reach all of them. The zygote is
per simulation: nothing is shared between two runs. Anything that is not a ``-m`` command, or a shim that
cannot reach the zygote, falls back to the real interpreter. Only the standard library is imported at the top.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable

from pytest_autofl.run import infrastructure, meter, seclude, waits
from pytest_autofl.run.commands import PACKAGE_ROOT, TRAINER_PYTHON
from pytest_autofl.run.interpreter import exit_process, pythonpath, run_main
from pytest_autofl.run.prefork_shim import SOCKET_ENV
from pytest_autofl.run.worker_request import JOB_ENV, Job
from pytest_autofl.run.zygote import Zygote

SHARDS_ENV = "AUTOFL_SHARDS"  # the run's shard directory, when each client must see only its own shard
# What every simulator process imports and no candidate changes: the harness never preloads surface code.
PRELOAD = (
    "numpy",
    "torch",
    "torch._dynamo",
    "torch.optim",
    "aiohttp.web",
    "nvflare.client",
    "nvflare.app_opt.pt",
    "nvflare.app_common.utils.fl_model_utils",  # the client's executor (``trainer_executor``), its trainer
    "nvflare.fuel.f3.drivers.tcp_driver",
    "nvflare.fuel.f3.drivers.aio_conn",
    "nvflare.fuel.f3.drivers.grpc.streamer_pb2_grpc",
    "nvflare.private.fed.app.simulator.simulator_runner",
    "nvflare.private.fed.app.simulator.simulator_worker",
)


def _warm_torch() -> None:
    """One training step on a throwaway model: what torch does once per process the first time a model trains
    (lazy set-ups of autograd and the optimizer, some milliseconds) is done here, before anything forks, so no
    trainer pays it in its first task (where it diluted the meter's view of the candidate's own work) and every
    fork shares it. No random number is drawn (the generator's state is restored all the same): what candidate
    code computes is unchanged, bit for bit."""
    import torch

    state = torch.get_rng_state()
    try:
        weight = torch.zeros(4, 3, requires_grad=True)
        optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
        for _ in range(2):
            optimizer.zero_grad()
            out = torch.nn.functional.relu(torch.nn.functional.linear(torch.zeros(2, 3), weight))
            loss = torch.nn.functional.cross_entropy(out, torch.zeros(2, dtype=torch.long))
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            float(torch.nn.functional.linear(torch.zeros(2, 3), weight).argmax(1).float().mean())
    finally:
        torch.set_rng_state(state)


def _write_shim(directory: str) -> str:
    """An executable that runs ``shim``; fast to start (``-S``: no site-packages scan, only the stdlib). Also
    the directory's ``python3``, the trainer command's interpreter (``commands.TRAINER_COMMAND``)."""
    path = os.path.join(directory, "python")
    package_parent = str(PACKAGE_ROOT)
    with open(path, "w") as f:
        f.write(
            f"#!{sys.executable} -S\n"
            f"import sys\nsys.path.insert(0, {package_parent!r})\n"
            f"from pytest_autofl.run.prefork_shim import shim\nshim({sys.executable!r})\n"
        )
    os.chmod(path, 0o755)
    os.symlink("python", os.path.join(directory, TRAINER_PYTHON))
    return path


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
    job = Job.from_env(os.environ.pop(JOB_ENV)) if JOB_ENV in os.environ else None
    if shards:  # while single-threaded: imports may start threads, and a user namespace needs one thread
        seclude.own_namespace()
    started = time.monotonic()
    for name in PRELOAD:  # an optimization only: what another nvflare/torch version lacks is imported by need
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    with contextlib.suppress(ImportError):
        _warm_torch()
    gc.collect()
    gc.freeze()  # what was imported stays out of every fork's collections: they neither walk nor copy it
    took = time.monotonic() - started
    table, env = infrastructure.waits_in_force()
    waits.shorten(table)  # before anything forks: the simulator and every worker inherit them
    os.environ.update(env)
    os.environ[ports.OWNER_ENV] = str(os.getpid())  # this simulation's ports are held until it ends
    try:
        ports.use_in_nvflare()
    except (ImportError, AttributeError) as exc:  # an nvflare whose internals moved: it picks its own ports
        print(f"[pytest-autofl prefork] NVFlare picks its own ports ({exc})", file=sys.stderr, flush=True)
    _sweep(ports.pid_alive)
    # short (a Unix socket path has ~100 bytes) and named for its launcher, so _sweep can tell when it is stale
    directory = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
    try:
        return _launch(args[1:], directory, shards, meter_fd, took, job)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        ports.release(os.getpid())


def _launch(
    argv: list[str], directory: str, shards: str, meter_fd: int | None, took: float, job: Job | None
) -> int:
    """Fork the zygote (it keeps the meter's pipe), then the simulator, hidden from every shard; wait for it."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.path.join(directory, "zygote"))
    listener.listen(64)
    shim_path = _write_shim(directory)
    launch_pythonpath = pythonpath(dict(os.environ))
    sys.stdout.flush()
    sys.stderr.flush()
    seclude.undumpable()  # the zygote, the simulator and every worker inherit it: none can read another
    zygote = os.fork()
    if zygote == 0:
        try:
            Zygote(listener, launch_pythonpath, shards, meter_fd, job).serve(os.getppid())
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
            os.environ["PATH"] = os.pathsep.join([directory, os.environ.get("PATH", "")])
            sys.executable = shim_path
            exit_process(run_main(argv[0], argv[1:]))
        return os.waitstatus_to_exitcode(os.waitpid(simulator, 0)[1])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(zygote, signal.SIGTERM)
        os.waitpid(zygote, 0)


if __name__ == "__main__":
    exit_process(main())
