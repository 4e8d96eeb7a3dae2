"""The exported FLARE job carries the harness' infrastructure settings where NVFlare reads them."""

from __future__ import annotations

import json

import pytest

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.core.schema import load_schema
from pytest_autofl.run import infrastructure
from pytest_autofl.run.job import export_jobs, seed_spec
from pytest_autofl.run.seedrun import JOB_NAME
from pytest_autofl.run.surface import prepare_surface

pytestmark = pytest.mark.subprocess  # process trees, prefork, the evaluator: seconds each


def test_the_infrastructure_settings_land_where_the_server_and_clients_read_them(
    repo, smoke_contract, tmp_path
):
    params = load_schema(repo / "surfaces").defaults()
    candidate = Candidate(params=params, family="fedavg", description="baseline")
    parent = prepare_surface(repo / "surfaces", tmp_path)
    spec = seed_spec(candidate, smoke_contract, 0, "", parent, tmp_path / "shards", tmp_path)
    assert export_jobs([spec], parent, tmp_path / "export.log") is None
    (config,) = (tmp_path / "seed-0" / "job" / JOB_NAME).rglob("config_fed_server.json")
    server = json.loads(config.read_text())
    # NVFlare's ServerJsonConfigurator only honours the path "server.task_request_interval"; a top-level key
    # is silently ignored (and the server keeps its 2 s default).
    assert server["server"]["task_request_interval"] == 0.1
    assert "task_request_interval" not in server
    # The clients' message timeouts are ConfigService variables: top-level keys of config_fed_client.json.
    (config,) = (tmp_path / "seed-0" / "job" / JOB_NAME).rglob("config_fed_client.json")
    client = json.loads(config.read_text())
    assert {k: client[k] for k in infrastructure.CLIENT_CONFIG} == infrastructure.CLIENT_CONFIG
    assert client["task_check_timeout"] == 60.0
