"""The mutation schema (``surfaces/mutation_schema.yaml``): every knob with its type, bounds and default,
and the surface files a patch may touch. A candidate that leaves these bounds is rejected before it runs."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeGuard

import yaml

from pytest_autofl.core.errors import SchemaError

SCHEMA_FILE = "mutation_schema.yaml"
_TYPES = ("float", "int", "choice", "bool")


@dataclass(frozen=True)
class Knob:
    name: str
    type: str
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    log: bool = False
    doc: str = ""
    applies: tuple[
        tuple[str, tuple[Any, ...]], ...
    ] = ()  # only matters when these choice knobs take these values

    def matters_for(self, params: Mapping[str, Any]) -> bool:
        return all(params.get(name) in values for name, values in self.applies)

    def check(self, value: Any) -> str | None:
        """Why ``value`` is not allowed for this knob, or None if it is."""
        if self.type == "choice":
            return None if value in self.choices else f"must be one of {list(self.choices)}"
        if self.type == "bool":
            return None if isinstance(value, bool) else "must be true or false"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {type(value).__name__}"
        if self.type == "int" and int(value) != value:
            return "must be an integer"
        if not math.isfinite(value):
            return "must be finite"
        assert self.low is not None and self.high is not None
        if not self.low <= value <= self.high:
            return f"is out of bounds [{self.low:g}, {self.high:g}]"
        return None

    def normalize(self, value: Any) -> Any:
        if self.type == "float":
            return float(value)
        if self.type == "int":
            return int(value)
        return value

    def sample(self, rng: random.Random) -> Any:
        if self.type == "choice":
            return rng.choice(self.choices)
        if self.type == "bool":
            return rng.random() < 0.5
        assert self.low is not None and self.high is not None
        if self.type == "int":
            return rng.randint(int(self.low), int(self.high))
        if self.log and self.low > 0:
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)


@dataclass(frozen=True)
class Schema:
    knobs: dict[str, Knob]
    files: tuple[str, ...] = field(default_factory=tuple)
    zero_meta: tuple[str, ...] = ()  # meta entries the zero-update control's client sends as zeros

    def defaults(self) -> dict[str, Any]:
        return {name: knob.default for name, knob in sorted(self.knobs.items())}

    def problems(self, params: Mapping[str, Any]) -> list[str]:
        out = [f"unknown knob {name!r}" for name in sorted(params) if name not in self.knobs]
        for name, value in sorted(params.items()):
            if name in self.knobs and (why := self.knobs[name].check(value)):
                out.append(f"knob {name!r} = {value!r} {why}")
        return out

    def complete(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``params``, validated and normalized; raises SchemaError naming every problem."""
        if problems := self.problems(params):
            raise SchemaError("; ".join(problems))
        full = self.defaults()
        full.update({k: self.knobs[k].normalize(v) for k, v in params.items()})
        return full

    def sample(self, rng: random.Random) -> dict[str, Any]:
        return {name: knob.sample(rng) for name, knob in sorted(self.knobs.items())}

    def free_knobs(self) -> list[str]:
        """The knobs that can take more than one value (a program may fix the others at their defaults)."""
        return [
            name
            for name, k in self.knobs.items()
            if k.type == "bool"
            or len(k.choices) > 1
            or (k.low is not None and k.high is not None and k.low < k.high)
        ]

    def numeric_knobs(self, params: Mapping[str, Any]) -> list[str]:
        """The float and int knobs that matter for ``params``, in schema order."""
        return [
            name
            for name, knob in self.knobs.items()
            if knob.type in ("float", "int") and knob.matters_for(params)
        ]


_KNOB_KEYS = ("type", "default", "low", "high", "choices", "log", "applies", "doc")
_TOP_KEYS = ("version", "files", "control", "knobs")
_SCALAR = (str, int, float, bool)


def _scalars(values: Any) -> TypeGuard[list[Any]]:
    """A non-empty list of YAML scalars (what a choice takes and a ledger row can hold)."""
    return isinstance(values, list) and bool(values) and all(isinstance(v, _SCALAR) for v in values)


def _knob(name: str, spec: Any, where: str) -> Knob:
    if not isinstance(spec, dict):
        raise SchemaError(f"{where}: knob {name!r} must be a mapping")
    if unknown := sorted(str(k) for k in spec if k not in _KNOB_KEYS):
        raise SchemaError(f"{where}: knob {name!r} has unknown key(s) {unknown}; known: {list(_KNOB_KEYS)}")
    kind = spec.get("type")
    if kind not in _TYPES:
        raise SchemaError(f"{where}: knob {name!r} has type {kind!r}; expected one of {list(_TYPES)}")
    if "default" not in spec:
        raise SchemaError(f"{where}: knob {name!r} has no default")
    if not isinstance(spec.get("log", False), bool):
        raise SchemaError(f"{where}: knob {name!r} has 'log' {spec['log']!r}; expected true or false")
    if kind == "choice":
        choices = spec.get("choices")
        if not _scalars(choices):
            raise SchemaError(f"{where}: choice knob {name!r} needs a non-empty 'choices' list of values")
        knob = Knob(name, kind, spec["default"], choices=tuple(choices), doc=str(spec.get("doc", "")))
    elif kind == "bool":
        knob = Knob(name, kind, spec["default"], doc=str(spec.get("doc", "")))
    else:
        low: Any = spec.get("low")
        high: Any = spec.get("high")
        if (
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
            or not (math.isfinite(low) and math.isfinite(high))
            or low > high
        ):
            raise SchemaError(f"{where}: knob {name!r} needs finite numeric bounds with low <= high")
        log = spec.get("log", False)
        if log and low <= 0:
            raise SchemaError(f"{where}: log-scale knob {name!r} needs low > 0")
        knob = Knob(
            name, kind, spec["default"], float(low), float(high), log=log, doc=str(spec.get("doc", ""))
        )
    applies = spec.get("applies", {})
    if not isinstance(applies, dict) or not all(_scalars(v) for v in applies.values()):
        raise SchemaError(f"{where}: knob {name!r} has 'applies' that is not a mapping of knob: [values]")
    knob = replace(knob, applies=tuple((str(k), tuple(v)) for k, v in applies.items()))
    if why := knob.check(knob.default):
        raise SchemaError(f"{where}: default of knob {name!r} = {knob.default!r} {why}")
    return knob


def load_schema(surface_dir: Path) -> Schema:
    path = surface_dir / SCHEMA_FILE
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SchemaError(f"{path}: cannot read the mutation schema: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("knobs"), dict) or not raw["knobs"]:
        raise SchemaError(f"{path}: expected a mapping with a non-empty 'knobs' mapping")
    if unknown := sorted(str(k) for k in raw if k not in _TOP_KEYS):
        raise SchemaError(f"{path}: unknown key(s) {unknown}; known: {list(_TOP_KEYS)}")
    if raw.get("version", 1) != 1:
        raise SchemaError(f"{path}: 'version' is {raw['version']!r}; this pytest-autofl reads version 1")
    files = raw.get("files", [])
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise SchemaError(f"{path}: 'files' must be a list of file names")
    for name in files:
        if any(c in name for c in "/\\\0") or name.startswith(".") or not (surface_dir / name).is_file():
            raise SchemaError(
                f"{path}: 'files' entry {name!r} must name a file directly inside {surface_dir}"
            )
    control = raw.get("control") or {}
    if not isinstance(control, dict):
        raise SchemaError(f"{path}: 'control' must be a mapping (zero_meta: [...])")
    zero_meta = control.get("zero_meta", [])
    if not isinstance(zero_meta, list) or not all(isinstance(m, str) for m in zero_meta):
        raise SchemaError(f"{path}: 'control.zero_meta' must be a list of meta entry names")
    knobs = {str(n): _knob(str(n), s, str(path)) for n, s in raw["knobs"].items()}
    for knob in knobs.values():
        for other, values in knob.applies:
            target = knobs.get(other)
            if target is None or target.type != "choice" or not set(values) <= set(target.choices):
                raise SchemaError(
                    f"{path}: knob {knob.name!r} applies when {other!r} is one of {list(values)}, "
                    f"but {other!r} is not a choice knob with those choices"
                )
    return Schema(knobs=knobs, files=tuple(files), zero_meta=tuple(zero_meta))
