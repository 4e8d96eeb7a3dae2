"""``--autofl-env poc``: a real NVFlare deployment on this machine that each candidate-seed is submitted to as
a job.

One POC deployment per session (server and client processes over loopback), provisioned from a project file
with free ports and its own workspace and HOME under the workdir, started once with ``nvflare poc start``
(which waits for the clients) and stopped at the end of the session. A watchdog process (``poc_watchdog``)
stops it if pytest dies without cleaning up (SIGKILL, a crash). The job, the contract, the audit filter and
the evaluator are the ones SimEnv runs use.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import psutil
import yaml

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.core.contract import Contract, site_names
from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.core.progress import Progress
from pytest_autofl.run.commands import NVFLARE_CLI, POC_WATCHDOG, python_module
from pytest_autofl.run.envs import EnvironmentSetup
from pytest_autofl.run.flare_job import ADMIN
from pytest_autofl.run.processes import python_env
from pytest_autofl.run.runner import CandidateRunner, Runner, RunnerFactory

PROJECT = "autofl"
COMMAND_TIMEOUT = 180.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def project_file(path: Path, num_clients: int) -> Path:
    """A POC project: server on two free loopback ports (never NVFlare's fixed 8002/8003), site-1..N, one admin."""
    participants = [
        {
            "name": "localhost",
            "type": "server",
            "org": "autofl",
            "fed_learn_port": _free_port(),
            "admin_port": _free_port(),
        }
    ]
    participants += [{"name": site, "type": "client", "org": "autofl"} for site in site_names(num_clients)]
    participants.append({"name": ADMIN, "type": "admin", "org": "autofl", "role": "project_admin"})
    builders = [
        {
            "path": "nvflare.lighter.impl.workspace.WorkspaceBuilder",
            "args": {"template_file": ["master_template.yml"]},
        },
        {"path": "nvflare.lighter.impl.static_file.StaticFileBuilder", "args": {"config_folder": "config"}},
        {"path": "nvflare.lighter.impl.cert.CertBuilder"},
        {"path": "nvflare.lighter.impl.signature.SignatureBuilder"},
    ]
    text = yaml.safe_dump(
        {
            "api_version": 3,
            "name": PROJECT,
            "description": "pytest-autofl POC",
            "participants": participants,
            "builders": builders,
        },
        sort_keys=False,
    )
    path.write_text(text)
    return path


class PocDeployment:
    """A POC deployment owned by one session."""

    def __init__(self, root: Path, num_clients: int):
        self.root, self.num_clients = root, num_clients
        self.workspace = root / "ws"
        self.env = python_env([], NVFLARE_POC_WORKSPACE=str(self.workspace), HOME=str(root / "home"))
        self._watchdog: subprocess.Popen[bytes] | None = None

    @property
    def admin_kit(self) -> Path:
        return self.workspace / PROJECT / "prod_00" / ADMIN

    def _nvflare(self, *args: str) -> str:
        done = subprocess.run(
            python_module(NVFLARE_CLI, "poc", *args, unbuffered=False),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        output = done.stdout + done.stderr
        with (self.root / "poc.log").open("a") as log:
            log.write(f"$ nvflare poc {' '.join(args)}\n{output}\n")
        if done.returncode != 0:
            tail = output.strip().splitlines()[-1:] or ["(no output)"]
            raise AutoFLError(
                f"nvflare poc {args[0]} failed (exit {done.returncode}): {tail[0]}; log: {self.root / 'poc.log'}"
            )
        return output

    def start(self) -> None:
        (self.root / "home").mkdir(parents=True, exist_ok=True)
        project = project_file(self.root / "project.yml", self.num_clients)
        self._nvflare("prepare", "-i", str(project), "--force")
        # Started before the services, so that they never run unwatched.
        self._watchdog = subprocess.Popen(
            python_module(POC_WATCHDOG, str(os.getpid()), str(self.root), unbuffered=False),
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._nvflare("start")
        if not self.admin_kit.is_dir():
            raise AutoFLError(f"the POC admin startup kit is missing at {self.admin_kit}")

    def stop(self) -> int:
        """Stop the services and anything else still running from this deployment; return how many processes
        had to be killed."""
        with contextlib.suppress(AutoFLError, subprocess.TimeoutExpired):
            self._nvflare("stop")
        killed = kill_leftovers(self.root)
        if self._watchdog is not None and self._watchdog.poll() is None:
            self._watchdog.kill()
            self._watchdog.wait()
        return killed


class PocEnvironment:
    """``--autofl-env poc``: one POC deployment per session, started on first use (collecting or checking
    starts nothing) and stopped by ``close``; its job scheduler runs the seeds side by side."""

    supports_xdist = False

    def __init__(self, setup: EnvironmentSetup):
        self.workdir, self.num_clients, self.sandbox = setup.workdir, setup.num_clients, setup.sandbox
        self._poc: PocDeployment | None = None
        self._failed = ""
        self._lock = threading.Lock()

    def kit(self) -> Path:
        """The admin startup kit of the deployment, started now if it is not running yet."""
        with self._lock:
            if self._poc is None:
                self._poc = PocDeployment(self.workdir / "poc" / f"{os.getpid()}", self.num_clients)
                try:
                    self._poc.start()
                except (AutoFLError, OSError, subprocess.SubprocessError) as exc:
                    self._failed = f"the POC deployment did not start: {exc}"
            if self._failed:
                raise AutoFLError(self._failed)
            return self._poc.admin_kit

    def runner_factory(self) -> RunnerFactory:
        def make(
            candidate: Candidate,
            contract: Contract,
            surface_dir: Path,
            shard_dir: Path,
            trial_dir: Path,
            progress: Progress,
        ) -> Runner:
            kit = self.kit()
            return CandidateRunner(
                candidate,
                contract,
                surface_dir,
                shard_dir,
                trial_dir,
                progress,
                startup_kit=kit,
                sandbox=self.sandbox,
            )

        return make

    def close(self) -> int:
        """Stop the deployment this environment started; how many leftover processes had to be killed."""
        with self._lock:
            poc, self._poc = self._poc, None
        return poc.stop() if poc is not None else 0


def kill_leftovers(root: Path, grace: float = 10.0) -> int:
    """Every process whose command line mentions the deployment's directory: what `poc stop` left behind."""
    deadline = time.monotonic() + grace
    marker = str(root)
    me = {os.getpid(), os.getppid()}
    while True:
        procs = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            # the watchdog is stopped by its owner, not here
            if proc.pid not in me and marker in cmdline and POC_WATCHDOG not in cmdline:
                procs.append(proc)
        if not procs or time.monotonic() > deadline:
            break
        time.sleep(1.0)  # `poc stop` returns before the client watchdogs exit
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    return len(procs)
