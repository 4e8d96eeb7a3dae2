"""Every command line the harness starts, in one place: the ``python -m`` entry points of this package (each
runs apart from pytest: the guard, the job exporter, the evaluator, prefork, the POC watchdog) and NVFlare's.

Stdlib only: prefork's shim imports this module with ``python -S``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from pytest_autofl.core.contract import site_names

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding ``pytest_autofl``
GUARD = "pytest_autofl.run.guard"
PREFORK = "pytest_autofl.run.prefork"
FLARE_JOB = "pytest_autofl.run.flare_job"
EVALUATE = "pytest_autofl.run.evaluate"
POC_WATCHDOG = "pytest_autofl.run.envs.poc_watchdog"
SIMULATOR = "nvflare.private.fed.app.simulator.simulator"
NVFLARE_CLI = "nvflare.cli"
# Each client's training script runs in a process of its own (FLARE's external-process Client API), started
# as this command found on ``PATH``: prefork's shim (a process forked from the warm zygote, metered alone),
# else the harness' own interpreter (``interpreter_path``).
TRAINER_PYTHON = "python3"
TRAINER_COMMAND = f"{TRAINER_PYTHON} -u"


def python_module(module: str, *args: str, unbuffered: bool = True) -> list[str]:
    """``python [-u] -m module args`` with this interpreter."""
    return [sys.executable, *(["-u"] if unbuffered else []), "-m", module, *args]


def interpreter_path(path: str) -> str:
    """``PATH`` with this interpreter's directory first: the trainer command runs this interpreter."""
    return os.pathsep.join([os.path.dirname(sys.executable), path])


def guarded(parent_pid: int, argv: Sequence[str], rlimits: Mapping[str, int] | None = None) -> list[str]:
    """``argv`` under the guard, which kills its tree if ``parent_pid`` dies first; ``rlimits`` (``AS``,
    ``FSIZE``: ``resource.RLIMIT_<name>``) are set on the guard and so inherited by every process of the tree."""
    limits = [f"{name}={value}" for name, value in (rlimits or {}).items()]
    return python_module(GUARD, str(parent_pid), *limits, "--", *argv, unbuffered=False)


def preforked(argv: Sequence[str]) -> list[str]:
    """A ``python -m`` command run through prefork (torch and nvflare imported once for all its processes)."""
    return [argv[0], "-m", PREFORK, *argv[1:]]


def simulator(job_dir: Path, workspace: Path, num_clients: int) -> list[str]:
    """The command ``SimEnv`` runs (``FedJobConfig.simulator_run``): every client in its own worker thread."""
    n = str(num_clients)
    clients = ",".join(site_names(num_clients))
    return python_module(
        SIMULATOR, str(job_dir), "-w", str(workspace), "-c", clients, "-n", n, "-t", n, unbuffered=False
    )
