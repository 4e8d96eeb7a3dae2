"""prefork's shim: the process NVFlare starts instead of the interpreter (``sys.executable`` for the simulator's
workers, ``python3`` on ``PATH`` for each client's trainer). It asks the zygote (``prefork``) for a forked
process running its ``-m`` command, relays signals to it and exits as it exits. Stdlib only and
started with ``python -S``: it must start in milliseconds."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

SOCKET_ENV = "AUTOFL_PREFORK_SOCKET"
HEADER = struct.Struct("!I")  # a request is its length, then its JSON
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def forkable(args: list[str]) -> bool:
    """An interpreter command line the zygote can run: ``[-u] -m MODULE ...``."""
    rest = args[1:] if args[:1] == ["-u"] else args
    return len(rest) >= 2 and rest[0] == "-m"


def shim(real_python: str) -> None:
    """Ask the zygote for a worker running ``sys.argv``; relay signals; exit as the worker exits."""
    args = sys.argv[1:]
    path = os.environ.get(SOCKET_ENV)
    if not forkable(args) or not path:
        os.execv(real_python, [real_python, *args])
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        os.execv(real_python, [real_python, *args])
    request = json.dumps({"argv": args, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    socket.send_fds(conn, [HEADER.pack(len(request)) + request], [0, 1, 2])
    replies = conn.makefile("r")
    first = replies.readline().split()
    if first[:1] != ["pid"]:
        sys.exit(f"pytest-autofl prefork: the zygote refused {' '.join(args)[:200]}: {' '.join(first)}")
    pid = int(first[1])
    for sig in _FORWARDED:
        signal.signal(sig, lambda signum, _frame: os.kill(pid, signum))
    last = replies.readline().split()
    if last[:1] != ["exit"]:
        sys.exit(f"pytest-autofl prefork: lost the worker {pid} of {' '.join(args)[:200]}")
    code = int(last[1])
    if code < 0:  # killed by a signal: die the same way, so the caller sees the same return code
        if -code not in (signal.SIGKILL, signal.SIGSTOP):  # those two take no handler (and need none)
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)
