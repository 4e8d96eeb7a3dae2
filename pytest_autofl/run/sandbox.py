"""The operating-system sandbox around every process that runs candidate code: the FLARE job export, the
simulation (server and clients) and the predict process.

With bubblewrap (``bwrap``, Linux namespaces) each such process tree gets: a root with only what it runs on
(``allowlist``: /usr, the interpreter, the distributions of FLARE, torch and numpy; nothing else of the
machine, so no copy of a data set, no workdir, ledger or key); of the harness package only the few modules the
process itself runs (the audit filter, prefork, the job builder, the trainer); the data set's files hidden
where the root would show them; its own seed run's directory as the only writable place (what the harness wrote there for it read-only); its
own /tmp, process and network namespaces (loopback only: the simulation's server and clients talk inside it);
no capabilities; and an environment with only what it needs (no API keys). ``off`` runs the same command
unwrapped: the mode is recorded in every ledger row.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.run import allowlist
from pytest_autofl.run.commands import PACKAGE_ROOT

NOBODY = 65534
BWRAP, OFF, NONE = "bwrap", "off", "none"  # NONE: one was wanted (auto) and none can be made here
PACKAGE = PACKAGE_ROOT / "pytest_autofl"
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "OMP_NUM_THREADS", "PYTHONHASHSEED")
_ENV_PREFIXES = ("NVFLARE_", "AUTOFL_")
# What the sandboxed processes of this package import (each with its package's __init__): the pure rules of
# core/ (no state, no keys: nothing there a candidate could use against the harness) and these run/ modules.
CORE_MODULES = tuple(
    f"core/{p.name}" for p in sorted((PACKAGE / "core").glob("*.py")) if p.name != "__init__.py"
)
# The client's executor and its trainer: built into the job at export, run in the simulation.
TRAINER_MODULES = (
    "run/trainer.py",
    "run/trainer_executor.py",
    "run/trainer_process.py",
    "run/result_bounds.py",
    "run/surface.py",
    "run/wire.py",
    "run/seclude.py",
    "run/prefork_shim.py",
    "run/interpreter.py",
    "run/kernel.py",
)
SIMULATION_MODULES = (
    *CORE_MODULES,
    *TRAINER_MODULES,
    "run/zero_client.py",
    "run/meter.py",
    "run/prefork.py",
    "run/infrastructure.py",
    "run/waits.py",
    "run/zygote.py",
    "run/worker_request.py",
    "run/ports.py",
    "run/commands.py",
    "run/audit.py",
)
EXPORT_MODULES = (
    *CORE_MODULES,
    *TRAINER_MODULES,
    "run/zero_client.py",
    "run/commands.py",
    "run/flare_job.py",
    "run/audit.py",
)
PREDICT_MODULES = ("run/predict.py",)


def probe() -> str | None:
    """Why no bubblewrap sandbox can be made here, or None if one can: a real one is started to find out, and
    one that can make a user namespace inside (each client's own view of the shards, ``seclude``)."""
    path = shutil.which("bwrap")
    if path is None:
        return "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    done = subprocess.run(
        [path, *_namespaces(), "--ro-bind", "/", "/", "true"], capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        return f"bwrap cannot make a sandbox here: {done.stderr.strip()[:200] or f'exit {done.returncode}'}"
    nested = f"import sys; sys.path.insert(0, {str(PACKAGE_ROOT)!r}); import pytest_autofl.run.seclude as s"
    inside = [*_namespaces(), "--cap-drop", "ALL", "--ro-bind", "/", "/", "--proc", "/proc"]
    done = subprocess.run(
        [path, *inside, sys.executable, "-S", "-c", nested + "; s.own_namespace()"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0:  # each client's own view of the shards needs a namespace inside the sandbox
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return f"no user namespace can be made inside a bwrap sandbox here: {last[:200]}"
    return None


def _namespaces() -> list[str]:
    # Our own ids inside; root appears as nobody (65534), the same files and rights: a user namespace nested
    # in the sandbox (``seclude``) may map a non-root user to itself, never root.
    uid, gid = str(os.getuid() or NOBODY), str(os.getgid() or NOBODY)
    return ["--unshare-user", "--uid", uid, "--gid", gid, "--unshare-pid", "--unshare-ipc", "--unshare-uts"]


@dataclass(frozen=True)
class Sandbox:
    """``mode`` is ``bwrap``, ``off`` (by choice) or ``none`` (wanted, none possible: code changes are refused);
    ``hidden`` are the paths no candidate process may see."""

    mode: str = OFF
    hidden: tuple[str, ...] = field(default=())
    why_none: str = ""  # for NONE: why no sandbox can be made here

    @property
    def on(self) -> bool:
        return self.mode == BWRAP

    def refusal(self) -> str | None:
        """Why a code change (patch, replacement files) may not run here, or None: code changes run only in a
        sandbox, or unsandboxed when the user said so (``--autofl-sandbox off``)."""
        if self.mode != NONE:
            return None
        return (
            f"refused: a code change runs only in a sandbox, and none can be made here ({self.why_none}); "
            "install bubblewrap, or pass --autofl-sandbox off to run code changes unsandboxed"
        )

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        """The environment a sandboxed process gets: only what running FLARE and Python needs."""
        if not self.on:
            return dict(env)
        kept = {k: v for k, v in env.items() if k in _ENV_KEEP or k.startswith(_ENV_PREFIXES)}
        return {**kept, "HOME": "/tmp", "TMPDIR": "/tmp"}

    def wrap(
        self,
        argv: Sequence[str],
        *,
        writable: Sequence[Path],
        readable: Sequence[Path] = (),
        protected: Sequence[Path] = (),
        modules: Sequence[str] = (),
        network: bool = False,
    ) -> list[str]:
        """``argv`` run inside the sandbox: ``writable`` and ``readable`` are the only parts of the hidden
        paths it sees (``protected``: parts of a writable one it may only read, and neither move nor delete);
        ``modules`` the only files of this package it can import."""
        if not self.on:
            return list(argv)
        bwrap = shutil.which("bwrap") or "bwrap"
        args = [bwrap, *_namespaces(), "--cap-drop", "ALL", "--die-with-parent"]
        args += [] if network else ["--unshare-net"]
        root = allowlist.root()
        args += root
        for hidden in (*self.hidden, str(PACKAGE)):  # only what the root shows needs hiding
            if not allowlist.mounted(hidden, root):
                continue
            if os.path.isdir(hidden):
                args += ["--tmpfs", hidden]
            elif os.path.exists(hidden):
                args += ["--ro-bind", "/dev/null", hidden]
        shown = {PACKAGE / "__init__.py"} | {PACKAGE / m for m in modules}
        shown |= {(PACKAGE / m).parent / "__init__.py" for m in modules}
        binds = [("--ro-bind", p) for p in sorted(shown) + list(readable)] + [("--bind", p) for p in writable]
        binds += [("--ro-bind", p) for p in protected]
        for flag, path in binds:
            args += [flag, str(path), str(path)]
        return [*args, "--", *argv]


NO_SANDBOX = Sandbox()
CHOICES = ("auto", "on", "off")


def resolve(choice: str, hidden: tuple[str, ...]) -> Sandbox:
    """The sandbox for ``--autofl-sandbox choice``: ``on`` needs bubblewrap (AutoFLError otherwise), ``auto``
    uses it when it works and refuses code changes when it does not, ``off`` never sandboxes."""
    if choice not in CHOICES:
        raise AutoFLError(f"--autofl-sandbox must be one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == OFF:
        return Sandbox(OFF, hidden)
    why = probe()
    if why is None:
        return Sandbox(BWRAP, hidden)
    if choice == "on":
        raise AutoFLError(f"--autofl-sandbox on: {why}")
    return Sandbox(NONE, hidden, why)
