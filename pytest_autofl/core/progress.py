"""What a search reports while it runs: lines for the scroll-back, and a seed run's rounds as structured
events, so that a live display can draw them as bars and a plain log can leave them out (shown with -v)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Round:
    """A seed run started (``done`` 0) or finished a round."""

    seed: str  # the seed run's name: "0", "0-repeat", "1-control", ...
    done: int
    total: int
    clients: int = 0
    label: str = ""  # the candidate's label, set where the candidate is known

    def __str__(self) -> str:
        head = f"{self.label} " if self.label else ""
        if self.done == 0:
            return f"{head}seed {self.seed}: starting NVFlare SimEnv ({self.clients} clients x {self.total} rounds)"
        return f"{head}seed {self.seed}: round {self.done}/{self.total}"


Event = str | Round
Progress = Callable[[Event], None]


def labelled(progress: Progress, label: str) -> Progress:
    """``progress`` with the candidate's label in front of every line and on every round."""

    def tell(event: Event) -> None:
        progress(replace(event, label=label) if isinstance(event, Round) else f"{label} {event}")

    return tell
