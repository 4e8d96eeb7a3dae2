"""NVFlare's hard-coded waits, shortened in a simulation's own processes (``prefork``).

Each wait in ``infrastructure.WAITS`` is a poll that checks its condition again, a pause before a retry, or a
grace period once the run is over (read from NVFlare 2.9.0's source; ``../shared/notes/nvflare-idle-waits.md``
ranks them): shortening it changes when the simulation moves on, not what it computes (``tests/test_waits.py``
compares the final models with a run on NVFlare's own waits, ``AUTOFL_NVFLARE_WAITS=1``). ``time.sleep`` is
replaced by one that looks up the module that called it and the seconds it asked for; every other sleep, a
candidate's included, is left as it is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping

_SLEEP = time.sleep  # the original, whatever ``shorten`` did


def caller_module(depth: int = 2) -> str:
    """The module name of the code ``depth`` frames up (a module run as ``__main__`` by its real name)."""
    globals_ = sys._getframe(depth).f_globals
    spec = globals_.get("__spec__")
    return str(getattr(spec, "name", None) or globals_.get("__name__", ""))


def shortened(table: Mapping[tuple[str, float], float]) -> Callable[[float], None]:
    """A ``time.sleep`` that waits ``table[(caller's module, seconds)]`` where the table has the pair."""

    def sleep(seconds: float, /) -> None:
        _SLEEP(table.get((caller_module(), seconds), seconds))

    return sleep


def shorten(table: Mapping[tuple[str, float], float]) -> None:
    """From now on, in this process and every process it forks (an empty table changes nothing)."""
    if table:
        time.sleep = shortened(table)  # type: ignore[assignment]  # seconds as floats, as NVFlare passes them
