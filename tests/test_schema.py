from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_autofl.core.errors import SchemaError
from pytest_autofl.core.schema import load_schema


@pytest.fixture(scope="module")
def schema():
    from pathlib import Path

    return load_schema(Path(__file__).resolve().parent.parent / "surfaces")


def test_defaults_are_valid_and_complete(schema):
    assert schema.complete({}) == schema.defaults()
    assert set(schema.files) == {"client_train.py", "model.py", "strategies.py"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lr": 5.0}, r"knob 'lr' = 5.0 is out of bounds \[0.001, 0.5\]"),
        ({"aggregator": "fedsgd"}, "must be one of"),
        ({"momentum": "high"}, "must be a number"),
        ({"lr": float("nan")}, "must be finite"),
        ({"warmup": 3}, "unknown knob 'warmup'"),
    ],
)
def test_out_of_schema_params_are_rejected_by_name(schema, params, message):
    with pytest.raises(SchemaError, match=message):
        schema.complete(params)


def test_every_problem_is_reported_at_once(schema):
    with pytest.raises(SchemaError) as info:
        schema.complete({"lr": 9.0, "momentum": -1.0})
    assert "'lr'" in str(info.value) and "'momentum'" in str(info.value)


@given(st.integers(min_value=0, max_value=2**32))
def test_sampled_params_always_validate(schema, seed):
    params = schema.sample(random.Random(seed))
    assert schema.problems(params) == []


def test_malformed_schema_is_a_clear_error(tmp_path):
    (tmp_path / "mutation_schema.yaml").write_text(
        "knobs:\n  lr: {type: float, low: 1, high: 0, default: 0.5}\n"
    )
    with pytest.raises(SchemaError, match="numeric bounds"):
        load_schema(tmp_path)
    (tmp_path / "mutation_schema.yaml").write_text(
        "knobs: {lr: {type: float, low: 0, high: 1, default: 0.1}}\nfiles: [../evil.py]\n"
    )
    with pytest.raises(SchemaError, match="directly inside"):
        load_schema(tmp_path)
