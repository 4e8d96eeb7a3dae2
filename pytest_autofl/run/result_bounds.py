"""What a client's result may carry to the server: the model's own shape, and little else.

The server runs candidate code (the aggregator), so a client result is a channel from a site's data to code
that sees every site: rows sent inside it could be trained on centrally. The harness' executor checks each
result before FLARE sends it on, in the client's FLARE process (which runs no candidate code): the parameters
are arrays keyed and shaped like the model the task brought (a subset of it, for partial updates); the meta is
the step count, a few short scalars and at most one set of model-shaped arrays (a control variate, SCAFFOLD's
``scaffold_c_diff``); the metrics are a few numbers. So a result carries at most twice the model's numbers plus
``MAX_SCALARS`` and ``MAX_METRICS`` values: the update itself stays a channel the size of the model (the
residual the README's threat model states)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

MAX_METRICS = 16
MAX_SCALARS = 8  # meta values besides the model-shaped arrays
MAX_TEXT = 64  # characters of a key or a string value
MAX_ARRAY_SETS = 1
PARAMS_TYPES = (None, "FULL", "DIFF")
_NUMERIC = "biuf"


def excess(received: Any, fields: Any) -> str | None:
    """What of a result's ``fields`` (params, params_type, metrics, meta, current_round) goes beyond the model
    of the task (``received``: its params) — the first finding — or None."""
    if not isinstance(fields, Mapping):
        return "the result is not a mapping"
    shapes = _shapes(received)
    if fields.get("params_type") not in PARAMS_TYPES:
        return f"params_type {str(fields.get('params_type'))[:MAX_TEXT]!r} is none of {PARAMS_TYPES}"
    if not _is_scalar(fields.get("current_round")):
        return "current_round is not a number"
    found = None if fields.get("params") is None else _arrays("params", fields["params"], shapes)
    return found or _metrics(fields.get("metrics")) or _meta(fields.get("meta"), shapes)


def _shapes(params: Any) -> dict[str, tuple[int, ...]]:
    if not isinstance(params, Mapping):
        return {}
    return {str(k): tuple(np.shape(v)) for k, v in params.items()}


def _arrays(where: str, value: Any, shapes: dict[str, tuple[int, ...]]) -> str | None:
    """``value``: arrays keyed and shaped like (part of) the task's model."""
    if not isinstance(value, Mapping) or not value:
        return f"{where} is not a mapping of the model's arrays"
    for key, array in value.items():
        if key not in shapes:
            return f"{where}[{str(key)[:MAX_TEXT]!r}] is not a parameter of the model the task brought"
        if not isinstance(array, np.ndarray) or array.dtype.kind not in _NUMERIC:
            return f"{where}[{key!r}] is not a numeric array"
        if array.shape != shapes[key]:
            return f"{where}[{key!r}] has shape {array.shape}, the model's {shapes[key]}"
    return None


def _is_scalar(value: Any) -> bool:
    """A number, None, or a 0-d numeric array (a torch scalar crosses the wire as one)."""
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in _NUMERIC
    return value is None or isinstance(value, (bool, int, float))


def _text_ok(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT


def _metrics(metrics: Any) -> str | None:
    if metrics is None:
        return None
    if not isinstance(metrics, Mapping) or len(metrics) > MAX_METRICS:
        return f"the metrics are not a mapping of at most {MAX_METRICS} numbers"
    for key, value in metrics.items():
        if not _text_ok(key) or not _is_scalar(value):
            return f"metric {str(key)[:MAX_TEXT]!r} is not a number under a short name"
    return None


def _meta(meta: Any, shapes: dict[str, tuple[int, ...]]) -> str | None:
    if meta is None:
        return None
    if not isinstance(meta, Mapping):
        return "the meta is not a mapping"
    sets = {k: v for k, v in meta.items() if isinstance(v, Mapping)}
    scalars = {k: v for k, v in meta.items() if k not in sets}
    if len(sets) > MAX_ARRAY_SETS:
        return f"the meta carries {len(sets)} sets of arrays, at most {MAX_ARRAY_SETS} (a control variate)"
    if len(scalars) > MAX_SCALARS:
        return f"the meta carries {len(scalars)} values besides its arrays, at most {MAX_SCALARS}"
    for key, value in scalars.items():
        if not _text_ok(key) or not (_is_scalar(value) or _text_ok(value)):
            return f"meta[{str(key)[:MAX_TEXT]!r}] is not a number or a short string"
    for key, value in sets.items():
        if found := _arrays(f"meta[{str(key)[:MAX_TEXT]!r}]", value, shapes):
            return found
    return None
