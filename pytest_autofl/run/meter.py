"""The harness' own measure of the clients' compute, which no candidate can misreport.

Candidate code may report anything about its work (steps, epochs); the kernel's CPU accounting it cannot.
``prefork``'s zygote forks every client worker of a simulation and reaps it with ``wait4``: the CPU seconds
of the worker and of everything it started (the zygote is the subreaper of the workers' orphans). At the end
it writes one JSON line, CPU seconds per site and the workers killed by a signal it did not relay or send
itself (``outcome``: a client killed mid-run is the candidate's doing, not the machine's), to a pipe only the
harness reads: the pipe's write end goes
from the harness to the launcher (``AUTOFL_METER_FD``), which hands it to the zygote before any candidate
code runs and closes its own; the zygote is undumpable (``seclude``) and its workers close it, so no process
of the run can write to it. No line (the zygote was killed) means no measurement.

On the benchmarks' small models, a client's CPU is mostly FLARE's own work (polling, messages): the measure
is coarse, and the contract's ``max_cpu_ratio`` says how far above the baseline's a code change may go.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

ENV = "AUTOFL_METER_FD"


@dataclass(frozen=True)
class Measurement:
    cpu_seconds: dict[
        str, float
    ]  # the candidate's code per site: its trainers ("": orphans of no known site)
    flare_seconds: dict[str, float] = field(default_factory=dict)  # each client's FLARE process
    task_seconds: dict[str, list[float]] = field(default_factory=dict)  # each trainer's CPU per task
    killed: dict[str, str] = field(default_factory=dict)  # site -> the signal that killed its worker


class Meter:
    """One measurement, harness side: the pipe; pass ``fds`` and ``env`` to the run, then ``read()``."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()

    @property
    def fds(self) -> tuple[int, ...]:
        return (self._write,)

    @property
    def env(self) -> dict[str, str]:
        return {ENV: str(self._write)}

    def read(self) -> Measurement | None:
        """What the zygote measured, or None if nothing came."""
        os.set_blocking(self._read, False)
        with os.fdopen(self._read, "rb") as reader:
            data = reader.read() or b""
        try:
            line = json.loads(data.decode())
            return Measurement(
                {str(site): float(seconds) for site, seconds in line["cpu_seconds"].items()},
                {str(site): float(seconds) for site, seconds in line["flare_seconds"].items()},
                {str(site): [float(s) for s in tasks] for site, tasks in line["task_seconds"].items()},
                {str(site): str(name) for site, name in line["killed"].items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def take_fd() -> int | None:
    """The launcher's side: the meter's write end, if the harness passed one (and out of the environment)."""
    value = os.environ.pop(ENV, "")
    return int(value) if value.isdigit() else None


def report(
    fd: int,
    cpu_seconds: dict[str, float],
    flare_seconds: dict[str, float],
    task_seconds: dict[str, list[float]],
    killed: dict[str, str],
) -> None:
    """The zygote's side: the one line, then the pipe is closed."""
    line = {"cpu_seconds": cpu_seconds, "flare_seconds": flare_seconds, "task_seconds": task_seconds}
    line["killed"] = killed
    try:
        os.write(fd, json.dumps(line).encode() + b"\n")
    finally:
        os.close(fd)
