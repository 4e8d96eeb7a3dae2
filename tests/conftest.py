"""Shared fixtures: the repository's own benchmarks and surface, and throw-away project copies of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from scripted import Scripted

from pytest_autofl.core.contract import load_contract
from pytest_autofl.search.campaign import Search

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def smoke_contract():
    return load_contract(REPO / "benchmarks", "digits-smoke")


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    """A pytester project with a copy of the benchmarks and the surface (free to tamper with)."""
    root = pytester.path
    shutil.copytree(REPO / "benchmarks", root / "benchmarks", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "surfaces", root / "surfaces", ignore=shutil.ignore_patterns("__pycache__"))
    pytester.makeini("[pytest]\ntestpaths = benchmarks\nautofl_benchmark = digits-smoke\n")
    return root


@pytest.fixture
def make_session(repo, tmp_path):
    Scripted.calls, Scripted.effects, Scripted.crash, Scripted.seed_effects = [], {}, set(), {}

    def make(**kw):
        return Search(
            rootdir=tmp_path,
            benchmarks_dir=repo / "benchmarks",
            benchmark="digits",
            surface_dir=repo / "surfaces",
            workdir=tmp_path / ".autofl",
            ledger_path=tmp_path / "results.tsv",
            progress=lambda line: None,
            runner_factory=Scripted,
            **kw,
        )

    return make
