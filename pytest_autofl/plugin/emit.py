"""Progress lines that reach the terminal while pytest captures the test's output."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable

import pytest

from pytest_autofl.plugin.options import worker_input

_LOCK = threading.Lock()


def emitter(config: pytest.Config) -> Callable[[str], None]:
    """Whole lines, also from the threads of side-by-side seed runs. An xdist worker has no terminal of its
    own: its lines go to the stderr it shares with the controller, tagged with the worker id."""
    worker = worker_input(config)

    def emit(line: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capman = config.pluginmanager.get_plugin("capturemanager")
        ctx = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
        with _LOCK, ctx:
            if worker is not None:
                os.write(2, f"[{worker['workerid']}] {line}\n".encode())
            elif reporter is not None:
                reporter.ensure_newline()
                reporter.write_line(line)

    return emit
