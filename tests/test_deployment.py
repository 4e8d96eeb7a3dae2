"""--autofl-env: the POC project file, environment checks, and leftover cleanup (the real POC run is in e2e)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import yaml

from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.run.envs import ENVIRONMENTS, EnvironmentSetup
from pytest_autofl.run.envs.poc import ADMIN, kill_leftovers, project_file
from pytest_autofl.run.sandbox import BWRAP, Sandbox

pytestmark = pytest.mark.subprocess  # process trees, prefork, the evaluator: seconds each


def test_the_poc_project_uses_free_loopback_ports_and_the_contract_clients(tmp_path):
    first = yaml.safe_load(project_file(tmp_path / "a.yml", 4).read_text())
    second = yaml.safe_load(project_file(tmp_path / "b.yml", 4).read_text())
    (server,) = [p for p in first["participants"] if p["type"] == "server"]
    ports = {server["fed_learn_port"], server["admin_port"]}
    assert len(ports) == 2 and not ports & {8002, 8003}  # never NVFlare's fixed defaults
    (other,) = [p for p in second["participants"] if p["type"] == "server"]
    assert not ports & {other["fed_learn_port"], other["admin_port"]}  # two sessions never clash
    assert [p["name"] for p in first["participants"] if p["type"] == "client"] == [
        f"site-{i}" for i in range(1, 5)
    ]
    assert [p["name"] for p in first["participants"] if p["type"] == "admin"] == [ADMIN]


def test_environment_choices_are_checked(tmp_path):
    with pytest.raises(AutoFLError, match="unknown environment 'cloud'; choose one of poc, prod, sim"):
        ENVIRONMENTS.get("cloud")
    with pytest.raises(AutoFLError, match="--autofl-env prod needs --autofl-startup-kit"):
        ENVIRONMENTS.get("prod")(EnvironmentSetup(tmp_path, 2))
    with pytest.raises(AutoFLError, match="--autofl-env prod needs --autofl-startup-kit"):
        ENVIRONMENTS.get("prod")(EnvironmentSetup(tmp_path, 2, tmp_path / "missing"))
    sandbox = Sandbox(BWRAP, ("/hidden",))
    sim = ENVIRONMENTS.get("sim")(EnvironmentSetup(tmp_path, 2, preload=False, sandbox=sandbox))
    assert sim.runner_factory().keywords == {"preload": False, "sandbox": sandbox} and sim.supports_xdist
    prod = ENVIRONMENTS.get("prod")(EnvironmentSetup(tmp_path, 2, tmp_path, sandbox=sandbox))
    assert prod.runner_factory().keywords == {"startup_kit": tmp_path, "sandbox": sandbox}
    assert not prod.supports_xdist
    assert (
        ENVIRONMENTS.get("poc")(EnvironmentSetup(tmp_path, 2)).close() == 0
    )  # never started: nothing to stop


def test_leftovers_of_a_deployment_are_killed(tmp_path):
    marker = tmp_path / "poc-root"
    marker.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; time.sleep(600)", str(marker / "ws")],
        start_new_session=True,
    )
    time.sleep(0.5)
    assert kill_leftovers(marker, grace=0.0) == 1
    assert proc.wait(10) != 0
    assert kill_leftovers(marker, grace=0.0) == 0
