"""Running a command line in this (forked) process as the interpreter would run it, and ending the process as
the interpreter would end it: what prefork's launcher, its zygote and a client's trainer share. Stdlib only.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
import traceback
from collections.abc import Callable


def pythonpath(env: dict[str, str]) -> list[str]:
    return [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]


def run_main(module: str, args: list[str]) -> int:
    """``python -m module args`` in this process; the exit code."""
    sys.argv = [module, *args]
    return run_guarded(lambda: runpy.run_module(module, run_name="__main__", alter_sys=True))


def run_command(args: list[str]) -> int:
    """``python [-u] -m module ...`` in this process; the exit code."""
    if args[:1] == ["-u"]:
        args = args[1:]
        for stream in (sys.stdout, sys.stderr):
            stream.reconfigure(write_through=True)  # type: ignore[union-attr]
    return run_main(args[1], args[2:])


def run_guarded(main: Callable[[], object], raised: str = "") -> int:
    """``main()``'s exit code as the interpreter would give it; an exception's traceback goes to stderr,
    after the line ``raised`` if given."""
    try:
        main()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException:
        if raised:
            print(raised, file=sys.stderr, flush=True)
        traceback.print_exc()
        return 1
    return 0


def exit_process(code: int) -> None:
    """End a process as interpreter exit would (join threads, atexit, flush), without returning and without
    tearing its modules down (with torch and nvflare imported, most of a second)."""
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
