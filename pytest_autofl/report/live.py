"""The live view of a search on a terminal: one line per running candidate (its seed runs' rounds as a bar,
the time it has run, its seeds and the round of the latest), and a status line (candidates done of the
session's total, the incumbent and its score, the measured seconds per simulation, the time left). Lines for
the scroll-back (verdicts, scores) are printed above it and stay.

``Board`` is the bookkeeping, plain and testable; ``LiveView`` draws it with rich on a terminal the caller
hands over."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from pytest_autofl.core.progress import Round


def clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class Running:
    """A candidate in flight: its seed runs' (done, total) rounds, in the order they started."""

    label: str
    started: float
    seeds: dict[str, tuple[int, int]] = field(default_factory=dict)
    latest: str = ""

    @property
    def done(self) -> int:
        return sum(d for d, _ in self.seeds.values())

    @property
    def total(self) -> int:
        return sum(t for _, t in self.seeds.values())

    def look(self) -> str:
        done, total = self.seeds[self.latest]
        where = f"seed {self.latest}: round {done}/{total}"
        if len(self.seeds) == 1:
            return where
        seeds = f"seeds {', '.join(self.seeds)}" if len(self.seeds) <= 3 else f"{len(self.seeds)} seed runs"
        return f"{seeds} | {where}"


class Board:
    """What the live view shows, fed by round events and finished candidates; ``now`` is injectable."""

    def __init__(self, total: int, now: Callable[[], float] = time.monotonic):
        self.total, self.now = total, now
        self.finished = 0
        self.incumbent = ""
        self.running: dict[str, Running] = {}
        self._run_started: dict[tuple[str, str], float] = {}
        self.simulation_seconds: list[float] = []
        self.candidate_seconds: list[float] = []
        self._lock = threading.Lock()

    def round(self, event: Round) -> None:
        with self._lock:
            now = self.now()
            running = self.running.setdefault(event.label, Running(event.label, now))
            running.seeds[event.seed], running.latest = (event.done, event.total), event.seed
            key = (event.label, event.seed)
            if event.done == 0:
                self._run_started[key] = now
            elif event.done == event.total and key in self._run_started:
                self.simulation_seconds.append(now - self._run_started.pop(key))

    def candidate_finished(self, incumbent: str) -> None:
        """One candidate item of the session is over (whatever its verdict); nothing is running in between."""
        with self._lock:
            now = self.now()
            started = [r.started for r in self.running.values()]
            if started:
                self.candidate_seconds.append(now - min(started))
            self.running.clear()
            self._run_started.clear()  # a seed run that crashed never reached its last round
            self.finished += 1
            self.incumbent = incumbent

    def eta(self) -> float | None:
        """Seconds left: the candidates to go times the measured seconds per candidate, less the running
        one's time so far; None before a candidate has finished."""
        if not self.candidate_seconds:
            return None
        per = sum(self.candidate_seconds) / len(self.candidate_seconds)
        left = max(0, self.total - self.finished) * per
        ran = max((self.now() - r.started for r in self.running.values()), default=0.0)
        return max(0.0, left - min(ran, per))

    def status(self) -> str:
        with self._lock:
            parts = [f"done {self.finished}/{self.total}"]
            parts.append(f"incumbent {self.incumbent}" if self.incumbent else "no incumbent yet")
            if self.simulation_seconds:
                mean = sum(self.simulation_seconds) / len(self.simulation_seconds)
                parts.append(f"{mean:.1f} s/simulation")
            eta = self.eta()
            parts.append(f"ETA {clock(eta)}" if eta is not None else "ETA after the first candidate")
            return " | ".join(parts)

    def rows(self) -> list[tuple[str, int, int, str, str]]:
        """(label, rounds done, rounds started, elapsed, look) per running candidate."""
        with self._lock:
            now = self.now()
            return [
                (r.label, r.done, r.total, clock(now - r.started), r.look()) for r in self.running.values()
            ]


class LiveView:
    """The board drawn below the scroll-back with rich, refreshed twice a second, erased when stopped (so that
    what pytest writes next starts on a clean line)."""

    def __init__(self, board: Board, terminal: IO[str]):
        from rich.console import Console

        self.board = board
        try:  # the terminal's own width: pytest's capture hides it from rich's usual probes
            width: int | None = os.get_terminal_size(terminal.fileno()).columns or None  # 0: a pty unsized
        except (OSError, ValueError):
            width = None  # rich's fallback: $COLUMNS, else 80
        self.console = Console(file=terminal, force_terminal=True, highlight=False, width=width)
        self._live: Any = None
        self._lock = threading.Lock()

    def _renderable(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, overflow="ellipsis", max_width=60)  # the label gives way, nothing wraps
        for _ in range(3):
            grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True, overflow="ellipsis")
        for label, done, total, elapsed, look in self.board.rows():
            bar = ProgressBar(total=max(total, 1), completed=done, width=24)
            grid.add_row(Text(label, style="bold"), bar, f"{done}/{total} rounds", elapsed, look)
        return Group(grid, Text(self.board.status(), style="cyan"))

    def print(self, line: str) -> None:
        """A line for the scroll-back, above the live lines."""
        with self._lock:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)  # the terminal wraps

    def show(self) -> None:
        from rich.live import Live

        with self._lock:
            if self._live is None:
                self._live = Live(
                    get_renderable=self._renderable,
                    console=self.console,
                    refresh_per_second=2,
                    transient=True,
                    redirect_stdout=False,
                    redirect_stderr=False,
                )
                self._live.start(refresh=True)

    def hide(self) -> None:
        with self._lock:
            if self._live is not None:
                self._live.stop()
                self._live = None
