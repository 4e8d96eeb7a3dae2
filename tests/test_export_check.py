"""The harness' check of an exported job: a real export of digits-smoke passes it (a knob candidate with
non-default knobs, its zero-update control too, and a code change's run with its twin), and each change candidate code could make to what the export
left — the client's executor, its configuration, the server's filters, workflow, aggregator and model, the code
the job carries, the job's layout — is found and named."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.core.contract import Contract, load_contract
from pytest_autofl.core.schema import load_schema
from pytest_autofl.run import export_check
from pytest_autofl.run.flare_job import client_script
from pytest_autofl.run.job import CONTROL_TAG, export_jobs, seed_spec
from pytest_autofl.run.seedrun import JOB_NAME
from pytest_autofl.run.surface import prepare_surface

pytestmark = pytest.mark.subprocess  # one real export (torch and FLARE imported): seconds


def _with_flare_defaults(repo: Path, tmp: Path) -> Contract:
    """digits-smoke with FedAvg's default clients and rounds (3, 5), which FLARE leaves out of the job."""
    shutil.copytree(repo / "benchmarks" / "digits-smoke", tmp / "benchmarks" / "defaults")
    path = tmp / "benchmarks" / "defaults" / "contract.json"
    raw = json.loads(path.read_text())
    raw["name"], raw["split"]["num_clients"], raw["budget"]["rounds"] = "defaults", 3, 5
    path.write_text(json.dumps(raw))
    return load_contract(tmp / "benchmarks", "defaults")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The specs of a real export (seed 3, FedAvgM with non-default knobs; its control run; the run of a
    contract with FedAvg's default clients and rounds; a code change's run, the unchanged surface its clients'
    twin) and the digests of the trial's surface."""
    repo = Path(__file__).resolve().parent.parent
    tmp = tmp_path_factory.mktemp("export")
    smoke = load_contract(repo / "benchmarks", "digits-smoke")
    params = {**load_schema(repo / "surfaces").defaults(), "aggregator": "fedavgm", "server_momentum": 0.6}
    candidate = Candidate(params=params, family="fedavgm", description="knobs")
    parent = prepare_surface(repo / "surfaces", tmp)
    reference = prepare_surface(repo / "surfaces", tmp / "c" / "reference")
    runs = [
        (smoke, "", tmp / "a", None),
        (smoke, CONTROL_TAG, tmp / "a", None),
        (_with_flare_defaults(repo, tmp), "", tmp / "b", None),
        (smoke, "", tmp / "c", reference),
    ]
    specs = [
        seed_spec(candidate, c, 3, tag, parent, tmp / "shards", trial, reference=ref)
        for c, tag, trial, ref in runs
    ]
    assert [bool(s["twin_script"]) for s in specs] == [False, False, False, True]
    assert export_jobs(specs, parent, tmp / "export.log") is None, (tmp / "export.log").read_text()[-2000:]
    return specs, export_check.digests(parent)


def _config(job: Path, side: str) -> tuple[Path, dict]:
    path = job / "app" / "config" / f"config_fed_{side}.json"
    return path, json.loads(path.read_text())


def _edit(side: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def tamper(job: Path) -> None:
        path, config = _config(job, side)
        change(config)
        path.write_text(json.dumps(config))

    return tamper


def _executor(config: dict) -> None:
    config["executors"][0]["executor"]["path"] = "autofl_surface.model.QuietExecutor"


def _budget(config: dict) -> None:
    config["executors"][0]["executor"]["args"]["script_args"] = "--config /tmp/my-own-budget.json"


def _no_audit(config: dict) -> None:
    config["task_result_filters"] = []


def _rounds(config: dict) -> None:
    config["workflows"][0]["args"]["num_rounds"] += 5


def _aggregator(config: dict) -> None:
    config["workflows"][0]["args"]["aggregator"]["args"]["helper"] = {
        "path": "pytest_autofl.run.audit.AuditFilter"
    }


def _model(config: dict) -> None:
    persistor = next(c for c in config["components"] if c["id"] == "persistor")
    persistor["args"]["model"]["args"]["seed"] = 99


def _extra_component(config: dict) -> None:
    config["components"].append({"id": "x", "path": "autofl_surface.model.Spy", "args": {}})


def _surface_file(job: Path) -> None:
    with open(job / "app" / "custom" / "autofl_surface" / "client_train.py", "a") as fh:
        fh.write("\n# trains twice\n")


def _harness_file(job: Path) -> None:
    with open(job / "app" / "custom" / "pytest_autofl" / "run" / "trainer_executor.py", "a") as fh:
        fh.write("\n# reports nothing\n")


def _extra_code(job: Path) -> None:
    (job / "app" / "custom" / "sitecustomize.py").write_text("import os\n")


def _second_job(job: Path) -> None:
    shutil.copytree(job, job.with_name("other"))


def _meta(job: Path) -> None:
    meta = json.loads((job / "meta.json").read_text())
    meta["min_clients"] = 1
    (job / "meta.json").write_text(json.dumps(meta))


def _linked(job: Path) -> None:
    path, config = _config(job, "client")
    elsewhere = job.parents[2] / "elsewhere.json"  # outside the job: where the export cannot be checked
    elsewhere.write_text(json.dumps(config))
    path.unlink()
    path.symlink_to(elsewhere)


TAMPERING = {  # what candidate code in the export might change -> what the finding names
    "executor": (_edit("client", _executor), "config_fed_client.json"),
    "budget file": (_edit("client", _budget), "config_fed_client.json"),
    "timeouts": (_edit("client", lambda c: c.update(task_check_timeout=0.5)), "config_fed_client.json"),
    "audit removed": (_edit("server", _no_audit), "config_fed_server.json"),
    "rounds": (_edit("server", _rounds), "config_fed_server.json"),
    "aggregator's helper": (_edit("server", _aggregator), "pytest_autofl.run.audit.AuditFilter"),
    "model seed": (_edit("server", _model), "the model is built with"),
    "extra component": (_edit("server", _extra_component), "config_fed_server.json"),
    "surface copy": (_surface_file, "custom/autofl_surface/client_train.py"),
    "harness copy": (_harness_file, "custom/pytest_autofl/run/trainer_executor.py"),
    "extra code": (_extra_code, "custom/sitecustomize.py"),
    "second job": (_second_job, "holds ['other', 'trial']"),
    "meta": (_meta, "meta.json"),
    "symlinked config": (_linked, "config_fed_client.json"),
}


def _copy(spec: dict, target: Path) -> dict:
    shutil.copytree(Path(spec["job_root"]), target / "job")
    return {**spec, "job_root": str(target / "job")}


def test_the_job_a_real_export_leaves_is_the_harness_one(exported):
    specs, surface = exported
    for spec in specs:
        assert export_check.tampering(spec, surface, client_script(spec)[1]) is None
    workspace = Path(specs[0]["workspace_root"]) / JOB_NAME
    assert [p.name for p in workspace.rglob("*") if p.is_file()] == ["resources.json.default"]


@pytest.mark.parametrize("what", sorted(TAMPERING))
def test_each_change_to_the_exported_job_is_found_and_named(exported, tmp_path, what):
    specs, surface = exported
    tamper, named = TAMPERING[what]
    spec = _copy(specs[0], tmp_path)
    assert export_check.tampering(spec, surface, client_script(spec)[1]) is None  # the copy is intact
    tamper(Path(spec["job_root"]) / JOB_NAME)
    found = export_check.tampering(spec, surface, client_script(spec)[1])
    assert found is not None and named in found, found


@pytest.mark.parametrize("twin", ["", "/tmp/my-own-twin/autofl_surface/client_train.py"])
def test_a_code_change_s_twin_cannot_be_dropped_or_replaced(exported, tmp_path, twin):
    specs, surface = exported
    spec = _copy(specs[3], tmp_path)

    def retwin(config: dict) -> None:
        args = config["executors"][0]["executor"]["args"]
        assert args["twin"] == spec["twin_script"]
        args.update(twin=twin) if twin else args.pop("twin")

    _edit("client", retwin)(Path(spec["job_root"]) / JOB_NAME)
    found = export_check.tampering(spec, surface, client_script(spec)[1])
    assert found is not None and "config_fed_client.json" in found, found
