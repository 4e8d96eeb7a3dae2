"""The user's own data: CSV, Parquet, npz and a Python loader behind the contract's ``dataset`` block, with the
data's identity in ``contract_sha`` and a clear error for each kind of bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pytest_autofl.core.contract import load_contract
from pytest_autofl.core.errors import ContractError
from pytest_autofl.data.datasets import load
from pytest_autofl.ledger import store as ledger


def patients(rows: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age, bmi = rng.normal(50, 10, rows), rng.normal(27, 4, rows)
    return pd.DataFrame(
        {
            "age": age,
            "bmi": bmi,
            "hospital": rng.choice(["north", "south", "east"], rows),
            "outcome": np.where(age + rng.normal(0, 5, rows) > 50, "sick", "well"),
        }
    )


def benchmark(root: Path, repo: Path, dataset: dict, name: str = "mine") -> Path:
    """A benchmark directory whose contract is digits-smoke's with ``dataset`` replaced."""
    directory = root / "benchmarks" / name
    directory.mkdir(parents=True, exist_ok=True)
    raw = json.loads((repo / "benchmarks" / "digits-smoke" / "contract.json").read_text())
    raw.update(name=name, dataset=dataset)
    (directory / "contract.json").write_text(json.dumps(raw))
    shutil.copy(repo / "benchmarks" / "digits-smoke" / "profile.md", directory / "profile.md")
    return root / "benchmarks"


def test_a_csv_with_a_site_column(tmp_path, repo):
    (tmp_path / "benchmarks" / "mine").mkdir(parents=True)
    patients().to_csv(tmp_path / "benchmarks" / "mine" / "patients.csv", index=False)
    spec = {
        "kind": "csv",
        "path": "patients.csv",
        "label": "outcome",
        "site": "hospital",
        "standardize": True,
    }
    contract = load_contract(benchmark(tmp_path, repo, spec), "mine")
    data = load(contract)
    assert data.x.shape == (120, 2) and data.x.dtype == np.float32 and data.classes == ("sick", "well")
    assert set(data.sites) == {"north", "south", "east"} and abs(float(data.x[:, 0].mean())) < 1e-5
    before = contract.sha
    frame = patients()
    frame.loc[0, "age"] = 99.0
    frame.to_csv(tmp_path / "benchmarks" / "mine" / "patients.csv", index=False)
    assert load_contract(tmp_path / "benchmarks", "mine").sha != before  # changed data: a new campaign


def test_parquet_npz_and_a_python_loader(tmp_path, repo, monkeypatch):
    root = tmp_path / "benchmarks" / "mine"
    root.mkdir(parents=True)
    patients().to_parquet(root / "p.parquet")
    spec = {"kind": "parquet", "path": "p.parquet", "label": "outcome", "features": ["age"]}
    assert load(load_contract(benchmark(tmp_path, repo, spec), "mine")).input_shape == (1,)
    rng = np.random.default_rng(1)
    np.savez(root / "d.npz", x=rng.normal(size=(90, 3, 4)), y=rng.integers(0, 3, 90))
    data = load(load_contract(benchmark(tmp_path, repo, {"kind": "npz", "path": "d.npz"}), "mine"))
    assert data.input_shape == (3, 4) and data.num_classes == 3
    (tmp_path / "my_loader.py").write_text(
        "import numpy as np\n"
        "def load():\n"
        "    rng = np.random.default_rng(2)\n"
        "    return rng.normal(size=(80, 5)), rng.integers(0, 2, 80)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    contract = load_contract(
        benchmark(tmp_path, repo, {"kind": "python", "loader": "my_loader:load"}), "mine"
    )
    assert load(contract).input_shape == (5,) and contract.data_identity


def test_an_image_folder(tmp_path, repo):
    from PIL import Image

    from pytest_autofl.data.split import load_arrays

    root = tmp_path / "benchmarks" / "mine"
    rng = np.random.default_rng(4)
    for label in ("cat", "dog"):
        (root / "pictures" / label).mkdir(parents=True)
        for i in range(30):
            pixels = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "pictures" / label / f"{i}.png")
    spec = {"kind": "image_folder", "path": "pictures", "size": [4, 5]}
    contract = load_contract(benchmark(tmp_path, repo, spec), "mine")
    data = load(contract)
    assert data.input_shape == (3, 4, 5) and data.classes == ("cat", "dog") and len(data.y) == 60
    assert float(data.x.min()) >= 0.0 and float(data.x.max()) <= 1.0
    assert load_arrays(contract)[0].shape == (60, 60)  # the model gets every example flattened
    grey = load(load_contract(benchmark(tmp_path, repo, {**spec, "grayscale": True}), "mine"))
    assert grey.input_shape == (1, 4, 5)
    Image.fromarray(np.zeros((6, 8, 3), dtype=np.uint8)).save(root / "pictures" / "dog" / "0.png")
    assert load_contract(tmp_path / "benchmarks", "mine").sha != contract.sha  # a changed image: new campaign


@pytest.mark.subprocess  # imports torch
def test_a_python_loader_may_return_a_torch_dataset(tmp_path, repo, monkeypatch):
    (tmp_path / "my_images.py").write_text(
        "import torch\n"
        "from torch.utils.data import TensorDataset\n"
        "def load():  # what torchvision.datasets.X(root, download=False) gives: (input, label) items\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    return TensorDataset(torch.rand(40, 1, 3, 3, generator=g), torch.arange(40) % 4)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    torch_set = load(
        load_contract(benchmark(tmp_path, repo, {"kind": "python", "loader": "my_images:load"}), "mine")
    )
    assert torch_set.input_shape == (1, 3, 3) and torch_set.num_classes == 4


@pytest.mark.parametrize(
    "spec, named",
    [
        ({"kind": "csv", "path": "nope.csv", "label": "outcome"}, "field 'dataset.path': cannot read"),
        ({"kind": "csv", "path": "p.csv", "label": "diagnosis"}, "no column(s) ['diagnosis']; the file has"),
        (
            {"kind": "csv", "path": "p.csv", "label": "outcome"},
            "feature column(s) ['hospital'] are not numeric",
        ),
        (
            {"kind": "csv", "path": "nan.csv", "label": "outcome", "site": "hospital"},
            "['bmi'] have missing values",
        ),
        ({"kind": "csv", "path": "p.csv", "label": "hospital", "features": ["age"]}, None),
        ({"kind": "csv", "path": "p.csv", "features": ["age"]}, "'dataset.label' must name the label column"),
        ({"kind": "npz", "path": "p.csv"}, "contract.json: dataset: cannot read p.csv: ValueError"),
        ({"kind": "python", "loader": "no_such_module:load"}, "cannot find module 'no_such_module'"),
        (
            {"kind": "image_folder", "path": "xrays", "size": [8, 8]},
            "field 'dataset.path': cannot read",
        ),
        ({"kind": "image_folder", "path": ".", "size": [8]}, "'dataset.size' must be [height, width]"),
        ({"kind": "image_folder", "path": ".", "size": [8, 8]}, "no images (.png"),
    ],
)
def test_bad_data_is_one_clear_error_naming_the_field_and_the_file(tmp_path, repo, spec, named):
    root = tmp_path / "benchmarks" / "mine"
    root.mkdir(parents=True)
    patients().to_csv(root / "p.csv", index=False)
    broken = patients()
    broken.loc[3, "bmi"] = np.nan
    broken.to_csv(root / "nan.csv", index=False)
    try:
        load(load_contract(benchmark(tmp_path, repo, spec), "mine"))
    except (ContractError, ValueError) as exc:
        assert named is not None and named in str(exc), str(exc)
    else:
        assert named is None


@pytest.mark.parametrize("kind", ["iid", "quantity", "dirichlet"])
def test_partitions_of_a_bundled_set(tmp_path, repo, kind):
    from pytest_autofl.data.split import contract_split

    split = {"partition": kind, "num_clients": 4, **({} if kind == "iid" else {"dirichlet_alpha": 0.5})}
    contract = load_contract(benchmark(tmp_path, repo, "sklearn.load_digits"), "mine")
    contract = type(contract)(
        contract.name, {**contract.raw, "split": {**contract.raw["split"], **split}}, contract.directory
    )
    parts = contract_split(contract).clients
    sizes = [len(p) for p in parts.values()]
    labels = load(contract).y
    classes = [len(set(labels[p].tolist())) for p in parts.values()]
    if kind == "iid":
        assert max(sizes) - min(sizes) <= 1 and min(classes) == 10
    elif kind == "quantity":
        assert max(sizes) > 1.5 * min(sizes) and min(classes) == 10  # sizes skewed, labels mixed
    else:
        assert min(classes) < 10  # label skew: some client lacks a class
    held = set(contract_split(contract).validation.tolist()) | set(contract_split(contract).test.tolist())
    assert not held & {int(i) for p in parts.values() for i in p}  # the harness' held-out rows stay out


def test_the_natural_partition_by_site_and_its_errors(tmp_path, repo):
    from pytest_autofl.data.split import contract_split

    (tmp_path / "benchmarks" / "mine").mkdir(parents=True)
    patients(300).to_csv(tmp_path / "benchmarks" / "mine" / "p.csv", index=False)
    spec = {"kind": "csv", "path": "p.csv", "label": "outcome", "site": "hospital"}
    contract = load_contract(benchmark(tmp_path, repo, spec), "mine")
    site = {**contract.raw["split"], "partition": "site", "num_clients": 3, "min_samples_per_client": 10}
    by_site = type(contract)(
        contract.name, {**contract.raw, "split": site}, contract.directory, contract.data_identity
    )
    data, parts = load(by_site), contract_split(by_site).clients
    assert [sorted(set(data.sites[p].tolist())) for p in parts.values()] == [["east"], ["north"], ["south"]]
    wrong = type(contract)(
        contract.name, {**contract.raw, "split": {**site, "num_clients": 2}}, contract.directory
    )
    with pytest.raises(
        ValueError, match=r"num_clients = 2, but the data has 3 sites: \['east', 'north', 'south'\]"
    ):
        contract_split(wrong)
    digits = load_contract(benchmark(tmp_path, repo, "sklearn.load_digits", name="d"), "d")
    no_sites = type(digits)(digits.name, {**digits.raw, "split": site}, digits.directory)
    with pytest.raises(ValueError, match="needs a data set with a site column"):
        contract_split(no_sites)


@pytest.mark.e2e
def test_a_csv_the_user_wrote_runs_a_search_on_real_flare(pytester, project, repo):
    """A contract over a CSV with a site column (hospitals as the clients), three candidates end to end: the
    model is built for its 2 features and 2 classes, the sandbox hides the CSV, the evaluator gets the held-out
    arrays from the harness."""
    directory = project / "benchmarks" / "clinic"
    directory.mkdir()
    patients(600, seed=3).to_csv(directory / "patients.csv", index=False)
    raw = json.loads((repo / "benchmarks" / "digits-smoke" / "contract.json").read_text())
    raw.update(
        name="clinic",
        dataset={
            "kind": "csv",
            "path": "patients.csv",
            "label": "outcome",
            "site": "hospital",
            "standardize": True,
        },
        metric={"name": "balanced_accuracy", "split": "validation", "direction": "max"},
    )
    raw["split"] = {"partition": "site", "num_clients": 3, "seed": 0, "min_samples_per_client": 50}
    (directory / "contract.json").write_text(json.dumps(raw))
    (directory / "profile.md").write_text("# clinic\nThree hospitals, two features, a binary outcome.\n")
    (directory / "contract.sha256").write_text(load_contract(project / "benchmarks", "clinic").sha + "\n")
    result = pytester.runpytest(
        "--autofl-iterations=3", "--autofl-benchmark=clinic", "-p", "no:cacheprovider"
    )
    rows = ledger.read_rows(project / "results.tsv")
    assert [r.status for r in rows][0] == "keep", result.stdout.str()[-3000:]
    assert len(rows) == 3 and all(r.status in ("keep", "narrow", "discard") for r in rows), [
        r.reason for r in rows
    ]
    assert rows[0].score > 0.6 and rows[0].budget.startswith("clients=3,partition=site,")
    assert rows[0].n_params == 2 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2  # mlp on 2 features, 2 classes
    result.stdout.fnmatch_lines(["*held-out test (reported once, never used to select): *"])


def test_a_benchmark_names_its_own_surface(tmp_path, repo, make_session):
    shutil.copytree(
        repo / "surfaces", tmp_path / "surfaces-mine", ignore=shutil.ignore_patterns("__pycache__")
    )
    benchmarks = benchmark(tmp_path, repo, "sklearn.load_breast_cancer")
    raw = json.loads((benchmarks / "mine" / "contract.json").read_text())
    (benchmarks / "mine" / "contract.json").write_text(json.dumps({**raw, "surface": "surfaces-mine"}))
    (benchmarks / "mine" / "contract.sha256").write_text(load_contract(benchmarks, "mine").sha + "\n")
    s = make_session(benchmarks_dir=benchmarks, benchmark="mine")
    assert s.surface_dir == tmp_path / "surfaces-mine" and s.surface["model.py"]
    with pytest.raises(ContractError, match="field 'surface' = '../elsewhere' must be a directory relative"):
        (benchmarks / "mine" / "contract.json").write_text(json.dumps({**raw, "surface": "../elsewhere"}))
        load_contract(benchmarks, "mine")


def test_a_kind_registered_in_conftest_py(pytester, project, repo):
    """The repository's root conftest.py registers FedProx's synthetic data (the pattern for a user's own
    kind); a project without it is told the kind is unknown, before anything runs."""
    check = ("--autofl-check", "--autofl-benchmark=synthetic-fedprox", "-p", "no:cacheprovider")
    unknown = pytester.runpytest(*check)
    assert unknown.ret != 0
    unknown.stdout.fnmatch_lines(["*unknown data-set kind 'fedprox_synthetic'*"])
    shutil.copy(repo / "conftest.py", project / "conftest.py")
    result = pytester.runpytest(*check)
    assert result.ret == 0, result.stdout.str()[-2000:]
    result.stdout.fnmatch_lines(["*contract synthetic-fedprox: valid, pinned*split_sha*"])
