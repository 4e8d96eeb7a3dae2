"""The harness' check of an exported job before it runs. The export runs candidate code (the model and the
aggregator are built), and candidate code may rewrite what it writes: the client's executor (to one that
reports no compute), the server's filters (no audit), the rounds, the copies of the code FLARE will run. So the
job must be exactly the one the harness asked for: the client side to the byte (the harness' executor,
script and configuration, nothing else), the server side the harness' workflow, persistor and filters with
only the aggregator the candidate's, and every code file it carries the trial's surface as prepared before any
candidate code ran, or the harness' own. Anything else is tampering: the candidate is ``invalid``."""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pytest_autofl.run.commands import PACKAGE_ROOT
from pytest_autofl.run.surface import SURFACE_PACKAGE

EXECUTOR = "pytest_autofl.run.trainer_executor.TrainerExecutor"
MODEL_PATH = f"{SURFACE_PACKAGE}.model.Net"
# What FedAvgRecipe (NVFlare 2.9) puts in every server configuration besides the aggregator and the model.
_SERVER_COMPONENTS = [
    ("json_generator", "nvflare.app_common.widgets.validation_json_generator.ValidationJsonGenerator", {}),
    (
        "model_selector",
        "nvflare.app_common.widgets.intime_model_selector.IntimeModelSelector",
        {"aggregation_weights": {}, "key_metric": "accuracy"},
    ),
    (
        "metrics_artifact_writer",
        "nvflare.app_common.widgets.metrics_artifact_writer.MetricsArtifactWriter",
        {},
    ),
    (
        "persistor",
        "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor",
        None,
    ),  # the model: checked apart
    ("locator", "nvflare.app_opt.pt.file_model_locator.PTFileModelLocator", {"pt_persistor_id": "persistor"}),
]


def digests(surface_parent: Path) -> dict[str, str]:
    """The trial's surface files by name, hashed: taken before any candidate code runs."""
    package = surface_parent / SURFACE_PACKAGE
    return {p.name: _sha(p) for p in sorted(package.glob("*.py"))}


def tampering(spec: dict[str, Any], surface: dict[str, str], script: str) -> str | None:
    """What of the exported job of ``spec`` is not the harness' (the first finding), or None. ``surface``:
    ``digests`` of the trial's surface; ``script``: the client script as the job names it."""
    job = Path(spec["job_root"]) / spec["job_name"]
    found = _layout(Path(spec["job_root"]), job)
    found = found or _same(job / "meta.json", _meta(spec))
    found = found or _same(job / "app" / "config" / "config_fed_client.json", _client(spec, script))
    found = found or _server(spec, job / "app" / "config" / "config_fed_server.json")
    return found or _code(job / "app" / "custom", surface)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _layout(root: Path, job: Path) -> str | None:
    want = {
        root: {job.name},
        job: {"meta.json", "app"},
        job / "app": {"config", "custom"},
        job / "app" / "config": {"config_fed_client.json", "config_fed_server.json"},
    }
    for directory, names in want.items():
        if not directory.is_dir() or directory.is_symlink():
            return f"{directory} is not the directory the export writes"
        there = {p.name for p in directory.iterdir()}
        if there != names:
            return f"{directory} holds {sorted(there)}, the harness' job {sorted(names)}"
    return None


def _load(path: Path) -> Any:
    if path.is_symlink() or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return None


def _same(path: Path, want: Any) -> str | None:
    got = _load(path)
    return None if got == want else f"{path.name} is not the one the harness builds: {json.dumps(got)[:200]}"


def _meta(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": spec["job_name"],
        "resource_spec": {},
        "min_clients": spec["num_clients"],
        "deploy_map": {"app": ["@ALL"]},
    }


def _client(spec: dict[str, Any], script: str) -> dict[str, Any]:
    args = {"script": script, "script_args": f"--config {spec['client_config']}"}
    executor = {
        "path": EXECUTOR,
        "args": {**args, "twin": spec["twin_script"]} if spec.get("twin_script") else args,
    }
    event = {
        "id": "event_to_fed",
        "path": "nvflare.app_common.widgets.convert_to_fed_event.ConvertToFedEvent",
        "args": {"events_to_convert": ["analytix_log_stats"]},
    }
    return {
        "format_version": 2,
        "executors": [{"tasks": ["*"], "executor": executor}],
        "components": [event],
        "task_data_filters": [],
        "task_result_filters": [],
        **(spec.get("flare_client_config") or {}),
    }


def _filters(path: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"tasks": ["train"], "filters": [{"path": path, "args": args}]}]


def _paths(tree: Any) -> Iterator[Any]:
    """Every component path in a configuration subtree (FLARE builds any ``{"path": ...}`` it meets)."""
    if isinstance(tree, dict):
        if "path" in tree:
            yield tree["path"]
        for value in tree.values():
            yield from _paths(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _paths(value)


def _server(spec: dict[str, Any], path: Path) -> str | None:
    from nvflare.app_common.workflows.fedavg import FedAvg  # here: FLARE's import costs 0.4 s

    got = _load(path)
    if not isinstance(got, dict) or not isinstance(got.get("workflows"), list) or len(got["workflows"]) != 1:
        return f"{path.name} is not the one the harness builds (one FedAvg workflow)"
    flow = got["workflows"][0]
    args = flow.get("args") if isinstance(flow, dict) else None
    aggregator = args.get("aggregator") if isinstance(args, dict) else None
    strays = [p for p in _paths(aggregator) if not str(p).startswith(f"{SURFACE_PACKAGE}.")]
    if aggregator is None or strays:
        return f"{path.name}: the aggregator may only be the surface's code, it names {strays or [None]}"
    components = got.get("components")
    model = _model(components)
    allowed = {"arch": spec["knobs"].get("arch"), "seed": spec["seed"], **spec["task"]}
    if (
        not isinstance(model, dict)
        or model.get("path") != MODEL_PATH
        or not isinstance(model.get("args"), dict)
    ):
        return f"{path.name}: the persistor's model is not {MODEL_PATH}"
    if any(key not in allowed or allowed[key] != value for key, value in model["args"].items()):
        return f"{path.name}: the model is built with {model['args']}, the spec's are {allowed}"
    want = {
        "format_version": 2,
        "workflows": [
            {
                "id": "controller",
                "path": "nvflare.app_common.workflows.fedavg.FedAvg",
                "args": _unless_default(
                    FedAvg,
                    {
                        "aggregator": aggregator,
                        "aggregation_weights": {},
                        "num_clients": spec["num_clients"],
                        "num_rounds": spec["rounds"],
                    },
                ),
            }
        ],
        "components": [
            {"id": cid, "path": cpath, "args": {"model": model} if cargs is None else cargs}
            for cid, cpath, cargs in _SERVER_COMPONENTS
        ],
        "task_data_filters": _filters(
            "pytest_autofl.run.audit.RoundModels", {"directory": spec["rounds_dir"]}
        ),
        "task_result_filters": _filters(
            "pytest_autofl.run.audit.AuditFilter", {"audit_path": spec["audit_path"]}
        ),
        **(spec.get("flare_server_config") or {}),
    }
    return None if got == want else f"{path.name} is not the one the harness builds: {json.dumps(got)[:300]}"


def _unless_default(cls: type, args: dict[str, Any]) -> dict[str, Any]:
    """``args`` as FLARE's job config writes them for ``cls``: without those equal to the constructor's default
    (FedAvg's 3 clients, 5 rounds)."""
    defaults = {
        name: param.default
        for klass in reversed(cls.__mro__)
        if "__init__" in vars(klass)
        for name, param in inspect.signature(vars(klass)["__init__"]).parameters.items()
        if param.default is not inspect.Parameter.empty
    }
    return {k: v for k, v in args.items() if k not in defaults or defaults[k] != v}


def _model(components: Any) -> Any:
    for component in components if isinstance(components, list) else []:
        if isinstance(component, dict) and component.get("id") == "persistor":
            args = component.get("args")
            return args.get("model") if isinstance(args, dict) else None
    return None


def _code(custom: Path, surface: dict[str, str]) -> str | None:
    """Each file under ``custom/``: a file of the trial's surface or of the harness package, byte for byte."""
    for path in sorted(custom.rglob("*")):
        name = path.relative_to(custom)
        if path.is_symlink():
            return f"custom/{name} is a symbolic link"
        if path.is_dir():
            continue
        if name.parts[0] == SURFACE_PACKAGE and len(name.parts) == 2:
            if surface.get(name.name) != _sha(path):
                return f"custom/{name} is not the trial's surface file as prepared"
        elif name.parts[0] == "pytest_autofl":
            own = PACKAGE_ROOT / name
            if not own.is_file() or _sha(own) != _sha(path):
                return f"custom/{name} is not the harness' own file"
        else:
            return f"custom/{name} is neither the surface's nor the harness' code"
    return None
