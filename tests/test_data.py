from __future__ import annotations

from dataclasses import replace

import numpy as np

from pytest_autofl.data.split import heldout, load_arrays, make_split, planned_shards, write_shards


def test_split_is_deterministic_disjoint_and_complete(smoke_contract):
    _, y = load_arrays(smoke_contract)
    a, b = make_split(smoke_contract, y), make_split(smoke_contract, y)
    assert a.sha == b.sha
    parts = [a.validation, a.test, *a.clients.values()]
    everything = np.concatenate(parts)
    assert len(everything) == len(set(everything.tolist())) == len(y)
    assert min(len(p) for p in a.clients.values()) >= smoke_contract.split["min_samples_per_client"]


def test_label_skew_is_real(repo):
    from pytest_autofl.core.contract import load_contract

    contract = load_contract(repo / "benchmarks", "digits")
    _, y = load_arrays(contract)
    split = make_split(contract, y)
    shares = np.array([np.bincount(y[idx], minlength=10) / len(idx) for idx in split.clients.values()])
    assert shares.max() > 0.25  # a Dirichlet(0.3) client is far from the uniform 0.1 per class


def test_shards_are_checked_against_the_data_set_and_repaired(smoke_contract, tmp_path):
    shards = write_shards(smoke_contract, tmp_path)
    planned = planned_shards(smoke_contract, tmp_path)
    assert shards.problems() == [] and (planned.directory, planned.expected) == (
        shards.directory,
        shards.expected,
    )
    with np.load(shards.directory / "site-1.npz") as shard:
        x, y, idx = shard["x"], shard["y"], shard["idx"]
    np.savez(
        shards.directory / "site-1.npz", x=x, y=(y + 1) % 10, idx=idx
    )  # relabelled: the indices still match
    (problem,) = shards.problems()
    assert "site-1.npz: its contents changed" in problem
    (shards.directory / "site-2.npz").unlink()
    assert len(shards.problems()) == 2
    assert write_shards(smoke_contract, tmp_path).problems() == []  # an existing shard is never trusted


def test_heldout_sets_are_the_split_rows(smoke_contract):
    x, y = heldout(smoke_contract, "validation")
    assert x.shape == (len(y), 64) and x.min() >= 0.0 and x.max() <= 1.0
    assert len(heldout(smoke_contract, "test")[1]) > 300


def test_the_data_set_comes_from_the_registry_and_an_unknown_one_is_named(smoke_contract):
    import pytest

    from pytest_autofl.core.errors import AutoFLError
    from pytest_autofl.data.datasets import DATASETS, check, load

    assert {"sklearn.load_digits", "sklearn.load_breast_cancer", "sklearn.load_wine"} <= set(DATASETS.names())
    data = load(smoke_contract)
    assert load(smoke_contract) is data and not data.x.flags.writeable  # loaded once, shared read-only
    assert data.input_shape == (64,) and data.num_classes == 10 and data.sites is None
    unknown = replace(smoke_contract, raw={**smoke_contract.raw, "dataset": "cifar10"})
    with pytest.raises(AutoFLError, match="unknown data set 'cifar10'; choose one of .*sklearn.load_digits"):
        check(unknown)
    with pytest.raises(
        AutoFLError,
        match="unknown data-set kind 'hdf5'; choose one of csv, image_folder, npz, parquet, python",
    ):
        check(replace(smoke_contract, raw={**smoke_contract.raw, "dataset": {"kind": "hdf5"}}))
