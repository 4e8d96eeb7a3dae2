from __future__ import annotations

import json
import shutil

import pytest

from pytest_autofl.core.contract import canonical_json, check_pin, load_contract, sha256_of
from pytest_autofl.core.errors import ContractError


def test_hash_is_stable_and_independent_of_key_order(repo):
    contract = load_contract(repo / "benchmarks", "digits")
    reordered = json.loads(json.dumps(contract.raw), object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    assert sha256_of(reordered) == contract.sha
    assert contract.sha == load_contract(repo / "benchmarks", "digits").sha
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'


def test_repository_contracts_are_pinned(repo):
    for name in ("digits", "digits-smoke"):
        check_pin(load_contract(repo / "benchmarks", name))


def test_tampered_contract_is_rejected_with_both_hashes(repo, tmp_path):
    shutil.copytree(repo / "benchmarks" / "digits", tmp_path / "digits")
    path = tmp_path / "digits" / "contract.json"
    raw = json.loads(path.read_text())
    raw["budget"]["rounds"] = 50
    path.write_text(json.dumps(raw))
    contract = load_contract(tmp_path, "digits")
    with pytest.raises(ContractError, match="was changed.*pins"):
        check_pin(contract)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["budget"].pop("rounds"), "missing field 'budget.rounds'"),
        (lambda r: r["budget"].update(rounds=0), "'budget.rounds' = 0 must be >= 1"),
        (lambda r: r["budget"].update(rounds=True), "'budget.rounds' = True"),
        (lambda r: r.update(seeds=[1, 1]), "distinct"),
        (lambda r: r["metric"].update(split="test"), "the test split never selects"),
        (lambda r: r.update(name="other"), "must equal the directory name"),
        (
            lambda r: r["budget"].update(max_cpu_ratio=0.5),
            "'budget.max_cpu_ratio' = 0.5 must be a number >= 1",
        ),
    ],
)
def test_malformed_contract_names_the_field(repo, tmp_path, mutate, message):
    shutil.copytree(repo / "benchmarks" / "digits-smoke", tmp_path / "digits-smoke")
    path = tmp_path / "digits-smoke" / "contract.json"
    raw = json.loads(path.read_text())
    mutate(raw)
    path.write_text(json.dumps(raw))
    with pytest.raises(ContractError, match=message):
        load_contract(tmp_path, "digits-smoke")


def test_unknown_benchmark_lists_the_known_ones(repo):
    with pytest.raises(
        ContractError, match="known benchmarks: breast-cancer-skew, digits, digits-skew, digits-smoke"
    ):
        load_contract(repo / "benchmarks", "cifar")


def test_the_compute_cap_is_the_contracts_or_the_default(repo, tmp_path):
    assert load_contract(repo / "benchmarks", "digits-smoke").max_cpu_ratio == 1.3
    shutil.copytree(repo / "benchmarks" / "digits-smoke", tmp_path / "digits-smoke")
    path = tmp_path / "digits-smoke" / "contract.json"
    raw = json.loads(path.read_text())
    raw["budget"]["max_cpu_ratio"] = 4
    path.write_text(json.dumps(raw))
    assert load_contract(tmp_path, "digits-smoke").max_cpu_ratio == 4.0
