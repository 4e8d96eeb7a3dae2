"""What a client's result may carry to the server: the surface's own results pass (FedAvg's DIFF, SCAFFOLD's
control variate, an evaluation's metrics, a partial update, the zero client's), each way of carrying more is
named, and whatever passes carries at most twice the model's numbers plus a few scalars (a property)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings, target
from hypothesis import strategies as st

from pytest_autofl.run.result_bounds import MAX_METRICS, MAX_SCALARS, excess

MODEL = {"fc1.weight": np.zeros((10, 8), np.float32), "fc1.bias": np.zeros(10, np.float32)}


def _diff(**meta: Any) -> dict[str, Any]:
    params = {k: np.ones_like(v) for k, v in MODEL.items()}
    return {
        "params": params,
        "params_type": "DIFF",
        "metrics": {"train_loss": 0.5},
        "meta": {"NUM_STEPS_CURRENT_ROUND": 3, **meta},
        "current_round": 1,
    }


HONEST = {
    "fedavg": _diff(),
    "scaffold": _diff(scaffold_c_diff={k: np.ones_like(v) for k, v in MODEL.items()}),
    "evaluation": {"params": None, "metrics": {"accuracy": 0.9}, "meta": {"NUM_STEPS_CURRENT_ROUND": 0}},
    "partial": {**_diff(), "params": {"fc1.bias": np.ones(10, np.float32)}},
    "full model": {**_diff(), "params_type": "FULL"},
    "a torch scalar": {**_diff(), "metrics": {"train_loss": np.array(0.5, np.float32)}},
    "int buffers": {**_diff(), "params": {**_diff()["params"], "fc1.bias": np.ones(10, np.int64)}},
}

EXCESS = {  # result -> what the finding names
    "not a mapping": ([1, 2], "not a mapping"),
    "extra parameter": ({**_diff(), "params": {**_diff()["params"], "rows": np.ones(10)}}, "params['rows']"),
    "reshaped": ({**_diff(), "params": {"fc1.bias": np.ones(40, np.float32)}}, "shape (40,)"),
    "strings in an array": ({**_diff(), "params": {"fc1.bias": np.array(["a"] * 10)}}, "numeric array"),
    "rows in meta": (_diff(rows=[[0.1] * 64] * 10), "meta['rows']"),
    "rows as arrays in meta": (_diff(rows={"x": np.ones((10, 64))}), "meta['rows']['x']"),
    "two array sets": (_diff(a={"fc1.bias": np.ones(10)}, b={"fc1.bias": np.ones(10)}), "2 sets of arrays"),
    "many scalars": (_diff(**{f"v{i}": 0.5 for i in range(MAX_SCALARS)}), "values besides its arrays"),
    "a long string": (_diff(note="x" * 65), "meta['note']"),
    "many metrics": ({**_diff(), "metrics": {f"m{i}": 1.0 for i in range(MAX_METRICS + 1)}}, "metrics"),
    "an array metric": ({**_diff(), "metrics": {"x": np.ones(8)}}, "metric 'x'"),
    "a text metric": ({**_diff(), "metrics": {"x": "0.1,0.2"}}, "metric 'x'"),
    "params type": ({**_diff(), "params_type": "ROWS"}, "params_type"),
    "round": ({**_diff(), "current_round": [1, 2, 3]}, "current_round"),
    "empty params": ({**_diff(), "params": {}}, "params is not a mapping"),
}


@pytest.mark.parametrize("what", sorted(HONEST))
def test_the_surface_results_pass(what):
    assert excess(MODEL, HONEST[what]) is None


@pytest.mark.parametrize("what", sorted(EXCESS))
def test_each_way_of_carrying_more_is_named(what):
    result, named = EXCESS[what]
    found = excess(MODEL, result)
    assert found is not None and named in found, found


def _numbers(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_numbers(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_numbers(v) for v in value)
    if isinstance(value, np.ndarray):
        return int(value.size)
    return 1 if isinstance(value, (int, float)) else 0


_ARRAY = st.sampled_from(
    [
        np.ones(10, np.float32),
        np.ones((10, 8), np.float32),
        np.ones(7),
        np.ones((10, 8), np.int64),
        np.array(1.0),
    ]
)
_LEAF = st.one_of(st.none(), st.floats(allow_nan=False), st.text(max_size=80), _ARRAY)
_TREE = st.recursive(
    _LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)
_MODELISH = st.one_of(  # arrays keyed like the model, most of them shaped like it
    st.just({k: np.ones_like(v) for k, v in MODEL.items()}),
    st.fixed_dictionaries(
        {},
        optional={"x": _ARRAY, **{k: st.one_of(st.just(np.ones_like(v)), _ARRAY) for k, v in MODEL.items()}},
    ),
)
_VALUE = st.one_of(st.floats(), st.integers(), _MODELISH, _MODELISH, _TREE)
_EXTRA = st.dictionaries(st.text(max_size=8), _VALUE, max_size=10)


@st.composite
def _fields(draw: Any) -> dict[str, Any]:
    """The largest honest result (SCAFFOLD's), with more of anything added to its params, meta and metrics."""
    fields = HONEST["scaffold"]
    return {
        **fields,
        "params": {**fields["params"], **draw(st.one_of(st.just({}), _MODELISH))},
        "meta": {**fields["meta"], **draw(_EXTRA)},
        "metrics": {**fields["metrics"], **draw(_EXTRA)},
        "params_type": draw(st.sampled_from([None, "FULL", "DIFF", "x"])),
    }


@settings(max_examples=300)  # milliseconds each
@given(_fields())
def test_what_passes_carries_at_most_twice_the_model_and_a_few_scalars(fields):
    if excess(MODEL, fields) is None:
        model_numbers = sum(v.size for v in MODEL.values())
        carried = (
            _numbers(fields.get("params")) + _numbers(fields.get("meta")) + _numbers(fields.get("metrics"))
        )
        target(float(carried))  # hypothesis looks for the most a passing result carries
        assert carried <= 2 * model_numbers + MAX_SCALARS + MAX_METRICS
