"""What the zygote runs as a client's FLARE process (pure logic): the simulator's worker of an expected site,
once, with the harness' logging configuration, environment and import path; anything else is refused."""

from __future__ import annotations

import pytest

from pytest_autofl.run.prefork_shim import SOCKET_ENV
from pytest_autofl.run.worker_request import LOG_CONFIG, WORKER_MODULE, Job, flare_env, flare_worker

JOB = Job("/r/seed-0/ws/trial", "/r/seed-0/job/trial/app", "/r/seed-0/site-local", 2)


def _argv(site: str = "site-1", **changed: str) -> list[str]:
    """The command the simulator (NVFlare 2.9) gives a worker, as the zygote received it in a real run."""
    options = {
        "-o": f"{JOB.workspace}/{site}",
        "--logging_config": "concise",
        "--client": site,
        "--token": "e4b0c03a",
        "--port": "24780",
        "--parent_pid": "25345",
        "--simulator_root": JOB.workspace,
        "--root_url": "tcp://localhost:26295",
        "--parent_url": "None",
        "--task_name": "task_exec",
        "--decomposer_module": "None",
        **changed,
    }
    return ["-m", WORKER_MODULE, *(x for kv in options.items() for x in kv)]


def test_the_simulators_worker_runs_with_the_harness_logging_configuration_and_parent():
    started: set[str] = set()
    asked = _argv(**{"--logging_config": "/r/seed-0/my_log.json", "--parent_pid": "99999"})
    argv, site = flare_worker(asked, JOB, started, 4321)
    assert site == "site-1" and argv == _argv(**{"--logging_config": LOG_CONFIG, "--parent_pid": "4321"})
    assert flare_worker(["-u", *_argv("site-2")], JOB, started, 4321)[0][:3] == ["-u", "-m", WORKER_MODULE]


@pytest.mark.parametrize(
    "argv, reason",
    [
        (["-m", "json.tool", "--client", "site-1"], "not the simulator's worker command"),
        (_argv() + ["--gpu", "0"], "options"),
        (_argv()[:-2], "options"),
        (_argv() + ["--client", "site-2"], "options"),  # an option twice
        (_argv("site-3", **{"-o": f"{JOB.workspace}/site-3"}), "not one of the 2 sites"),
        (_argv(**{"-o": "/r/seed-0/elsewhere"}), "outside the run's workspace"),
        (_argv(**{"--simulator_root": "/tmp"}), "outside the run's workspace"),
        (_argv(**{"--decomposer_module": "autofl_surface.model"}), "would import"),
    ],
)
def test_anything_else_is_refused_with_its_reason(argv, reason):
    with pytest.raises(ValueError, match=reason):
        flare_worker(argv, JOB, set(), 4321)


def test_a_site_runs_one_flare_process():
    with pytest.raises(ValueError, match="started already"):
        flare_worker(_argv(), JOB, {"site-1"}, 4321)


def test_its_environment_and_import_path_are_the_launchers_not_the_requests():
    launch = {"PATH": "/usr/bin", "PYTHONPATH": "/r:/work/main", "HOME": "/tmp"}
    env = flare_env(launch, JOB, "site-1", "/tmp/autofl-prefork-1-x/zygote")
    assert env["PYTHONPATH"].split(":") == [
        "/r",
        "/work/main",
        f"{JOB.workspace}/site-1/simulate_job/app_site-1/custom",
    ]
    assert (
        env["PATH"] == "/tmp/autofl-prefork-1-x:/usr/bin"
        and env[SOCKET_ENV] == "/tmp/autofl-prefork-1-x/zygote"
    )
    assert env["HOME"] == "/tmp"


def test_each_site_sees_the_checked_job_and_the_harness_local_folder():
    app = f"{JOB.workspace}/site-2/simulate_job/app_site-2"
    assert JOB.pins("site-2") == [
        (f"{JOB.app}/config", f"{app}/config"),
        (f"{JOB.app}/custom", f"{app}/custom"),
        (JOB.local, f"{JOB.workspace}/site-2/local"),
    ]
    assert Job.from_env(JOB.to_env()) == JOB
