"""What the zygote runs as a client's FLARE process. The simulator runs the candidate's aggregator in its own
process, and that process asks for the clients' FLARE processes: whatever it sends — the command line, the
environment, the working directory — may come from candidate code, and a FLARE process is the one the harness
trusts to report its trainer's compute. So a request is run as a FLARE process only as the simulator's worker
of one expected site, once per site; its logging configuration, environment and import path are the
harness', not the request's; and it sees the job's checked configuration and code, and the harness' own
``local`` folder, read-only over what the simulator deployed for it (``seclude.hide``'s pins)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from pytest_autofl.run.prefork_shim import SOCKET_ENV

WORKER_MODULE = "nvflare.private.fed.app.simulator.simulator_worker"
JOB_ENV = "AUTOFL_JOB"  # set by the harness for prefork's launcher: this run's ``Job``, as JSON
LOG_CONFIG = "concise"  # the simulator's own default; a path or JSON here could run code (dictConfig "()")
# Every option the simulator (NVFlare 2.9) gives a worker; --decomposer_module names a module it imports.
_OPTIONS = (
    "-o",
    "--logging_config",
    "--client",
    "--token",
    "--port",
    "--parent_pid",
    "--simulator_root",
    "--root_url",
    "--parent_url",
    "--task_name",
    "--decomposer_module",
)
_DECOMPOSERS = ("None",)


@dataclass(frozen=True)
class Job:
    """The run as the harness set it up: the simulation's workspace, the checked job's app folder, the
    harness' ``local`` folder for each client, and how many clients there are."""

    workspace: str
    app: str
    local: str
    sites: int

    def to_env(self) -> str:
        return json.dumps([self.workspace, self.app, self.local, self.sites])

    @classmethod
    def from_env(cls, value: str) -> Job:
        workspace, app, local, sites = json.loads(value)
        return cls(str(workspace), str(app), str(local), int(sites))

    def deployed(self, site: str) -> str:
        return os.path.join(self.workspace, site, "simulate_job", f"app_{site}")

    def pins(self, site: str) -> list[tuple[str, str]]:
        """What a site's FLARE process sees read-only, each over the place the simulator deployed it to."""
        app = self.deployed(site)
        return [
            (os.path.join(self.app, "config"), os.path.join(app, "config")),
            (os.path.join(self.app, "custom"), os.path.join(app, "custom")),
            (self.local, os.path.join(self.workspace, site, "local")),
        ]


def flare_worker(argv: list[str], job: Job, started: set[str], parent: int) -> tuple[list[str], str]:
    """The command line to run for a request that claims to be a client's FLARE process (its logging
    configuration the harness', its parent ``parent``: prefork's launcher), and its site; ValueError with the
    reason when it is not one. FLARE's worker kills its own process group with SIGKILL within a second of its
    ``--parent_pid`` going away: the simulator's process, which named itself, may end while a worker still
    cleans up (a kill the harness counted against the candidate), and the aggregator that runs there could
    name any pid; the launcher outlives every worker, and what is left when it ends is the zygote's to end."""
    rest = argv[1:] if argv[:1] == ["-u"] else argv
    if rest[:2] != ["-m", WORKER_MODULE] or len(rest) % 2:
        raise ValueError(f"not the simulator's worker command: {' '.join(argv)[:200]}")
    options = dict(zip(rest[2::2], rest[3::2], strict=True))
    if sorted(options) != sorted(_OPTIONS) or len(options) != len(rest[2:]) // 2:
        raise ValueError(
            f"a worker command with options {sorted(options)}, the simulator's are {sorted(_OPTIONS)}"
        )
    site = options["--client"]
    if site not in {f"site-{k}" for k in range(1, job.sites + 1)} or site in started:
        raise ValueError(
            f"a FLARE process for {site!r}: not one of the {job.sites} sites, or started already"
        )
    if options["-o"] != os.path.join(job.workspace, site) or options["--simulator_root"] != job.workspace:
        raise ValueError(f"a worker for {site} outside the run's workspace {job.workspace}")
    if options["--decomposer_module"] not in _DECOMPOSERS:
        raise ValueError(f"a worker that would import {options['--decomposer_module']!r}")
    options["--logging_config"], options["--parent_pid"] = LOG_CONFIG, str(parent)
    return [
        *argv[: len(argv) - len(rest)],
        "-m",
        WORKER_MODULE,
        *(x for kv in options.items() for x in kv),
    ], site


def flare_env(launch_env: dict[str, str], job: Job, site: str, socket_path: str) -> dict[str, str]:
    """A FLARE process' environment: the launcher's (from before any candidate code ran), with the zygote's
    socket and shim first on PATH (how its trainer is started), and an import path of the harness' only:
    the launch PYTHONPATH, then the site's deployed (pinned) code."""
    path = os.pathsep.join([os.path.dirname(socket_path), launch_env.get("PATH", "")])
    imports = [p for p in launch_env.get("PYTHONPATH", "").split(os.pathsep) if p]
    imports.append(os.path.join(job.deployed(site), "custom"))
    return {**launch_env, SOCKET_ENV: socket_path, "PATH": path, "PYTHONPATH": os.pathsep.join(imports)}
