"""The harness' own measure of the clients' compute, which no candidate can misreport.

Candidate code may report anything about its work (steps, epochs); the kernel's CPU accounting it cannot.
``prefork``'s zygote forks every client's FLARE process and every client's trainer (the process that runs the
client script, ``trainer``) and reaps each with ``wait4``: the CPU seconds of the process and of everything
it started (the zygote is the subreaper of orphans). Each client's executor (``trainer_executor``) reads its
trainer's CPU clock around every task and gives the zygote those task windows, the compute bound's measure. At
the end the zygote writes one JSON line (whole-process CPU of trainers and FLARE processes per site, the task
windows and a code change's twin's — the unchanged surface's client, task by task beside it — and the
processes killed by a signal it did not relay or send itself: ``outcome``, a client killed mid-run is the
candidate's doing) to a pipe only the harness reads: the pipe's write end goes from the harness
to the launcher (``AUTOFL_METER_FD``), which hands it to the zygote before any candidate code runs and closes
its own; the zygote is undumpable (``seclude``) and its children close it, so no process of the run can write
to it. No line (the zygote was killed) means no measurement.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

ENV = "AUTOFL_METER_FD"


@dataclass(frozen=True)
class Measurement:
    # the candidate's code per site, whole processes: its trainers ("": orphans of no known site)
    cpu_seconds: dict[str, float]
    flare_seconds: dict[str, float] = field(default_factory=dict)  # each client's FLARE process
    task_seconds: dict[str, list[float]] = field(default_factory=dict)  # each trainer's CPU per task
    twin_seconds: dict[str, list[float]] = field(default_factory=dict)  # each twin's (``trainer_executor``)
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
                {str(site): [float(s) for s in tasks] for site, tasks in line["twin_seconds"].items()},
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
    twin_seconds: dict[str, list[float]],
    killed: dict[str, str],
) -> None:
    """The zygote's side: the one line, then the pipe is closed."""
    line = {
        "cpu_seconds": cpu_seconds,
        "flare_seconds": flare_seconds,
        "task_seconds": task_seconds,
        "twin_seconds": twin_seconds,
        "killed": killed,
    }
    try:
        os.write(fd, json.dumps(line).encode() + b"\n")
    finally:
        os.close(fd)
