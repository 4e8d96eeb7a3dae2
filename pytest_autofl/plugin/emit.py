"""Progress that reaches the terminal while pytest captures the test's output: a live view when a search
runs on a terminal, plain lines otherwise (a file, CI, ``-p no:terminal``, xdist workers)."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

import pytest

from pytest_autofl.core.progress import Event, Progress, Round
from pytest_autofl.plugin.options import SETTINGS, uses_xdist, worker_input

_LOCK = threading.Lock()
_CHOOSING = threading.Lock()
DISPLAY = pytest.StashKey[Any]()  # this process' Plain or Live display


def _capture_off(config: pytest.Config) -> Any:
    capman = config.pluginmanager.get_plugin("capturemanager")
    return capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()


class Plain:
    """Whole lines, also from the threads of side-by-side seed runs; a seed run's rounds only with -v. An
    xdist worker has no terminal of its own: its lines go to the stderr it shares with the controller,
    tagged with the worker id."""

    def __init__(self, config: pytest.Config):
        self.config, self.worker = config, worker_input(config)
        self.rounds = config.get_verbosity() > 0

    def emit(self, event: Event) -> None:
        if isinstance(event, Round) and not self.rounds:
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        with _LOCK, _capture_off(self.config):
            if self.worker is not None:
                os.write(2, f"[{self.worker['workerid']}] {event}\n".encode())
            elif reporter is not None:
                reporter.ensure_newline()
                reporter.write_line(str(event))

    def candidate_finished(self, incumbent: str) -> None:
        """Nothing to redraw: the verdict line said it."""

    def close(self) -> None:
        """Nothing to erase."""


class Live:
    """The live view (``report.live``) on a copy of the terminal's descriptor, taken while pytest's capture
    is off, so it draws during a candidate's call phase; stopped before pytest writes an outcome."""

    def __init__(self, config: pytest.Config, reporter: Any, total: int):
        from pytest_autofl.report.live import Board, LiveView

        self.config, self.reporter, self._fresh = config, reporter, True
        with _capture_off(config):
            terminal = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")
        self.view = LiveView(Board(total), terminal)

    def emit(self, event: Event) -> None:
        with _LOCK:
            if self._fresh:  # a candidate's first line starts below what pytest wrote (its file name)
                with _capture_off(self.config):
                    self.reporter.ensure_newline()
                self._fresh = False
        if isinstance(event, Round):
            self.view.board.round(event)
            self.view.show()
        else:
            self.view.print(str(event))

    def candidate_finished(self, incumbent: str) -> None:
        self.view.board.candidate_finished(incumbent)
        self.view.hide()
        self._fresh = True

    def close(self) -> None:
        """The view is erased; a line that still comes (the summary's) prints plainly on the same terminal."""
        self.view.hide()


def display(config: pytest.Config) -> Plain | Live:
    """This process' display, chosen once (the first events come from several seed runs' threads at once):
    live for a search on a terminal, plain otherwise."""
    with _CHOOSING:
        if DISPLAY not in config.stash:
            config.stash[DISPLAY] = _chosen(config)
    return config.stash[DISPLAY]


def _chosen(config: pytest.Config) -> Plain | Live:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    settings = config.stash[SETTINGS]
    live = (
        settings.searching
        and reporter is not None
        and bool(reporter.isatty())
        and os.environ.get("TERM") != "dumb"
        and not uses_xdist(config)
    )
    total = settings.iterations or 1  # a rerun is one candidate
    return Live(config, reporter, total) if live else Plain(config)


def emitter(config: pytest.Config) -> Progress:
    """The display's ``emit``, chosen at the first event (a search may be built before the terminal is)."""

    def emit(event: Event) -> None:
        display(config).emit(event)

    return emit
