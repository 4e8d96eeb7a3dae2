"""Hooks a ``conftest.py`` (or another plugin) implements to add members to pytest-autofl's families. Each is
called once, before the search is built; ``register(name, factory)`` adds a member under a new name."""

from __future__ import annotations

from typing import Any


def pytest_autofl_add_proposers(proposers: Any) -> None:
    """Register proposers: ``proposers.register("mine", factory)``; ``factory(setup)`` (a
    ``ProposerSetup``) returns an object with ``propose(view)`` and ``tell(view, row)``. Chosen with
    ``--autofl-proposer mine``."""


def pytest_autofl_add_environments(environments: Any) -> None:
    """Register environments: ``environments.register("mine", factory)``; ``factory(setup)`` (an
    ``EnvironmentSetup``) returns an object with ``supports_xdist``, ``runner_factory()`` and ``close()``.
    Chosen with ``--autofl-env mine``."""


def pytest_autofl_add_datasets(datasets: Any, kinds: Any) -> None:
    """Register data sets: ``datasets.register("mine", loader)`` (``loader()`` returns a ``DataSet``, e.g.
    ``pytest_autofl.data.datasets.make(x, y)``), named by a contract's ``"dataset": "mine"``; or kinds:
    ``kinds.register("mine", loader)`` (``loader(spec, contract_dir, where)``), used as
    ``"dataset": {"kind": "mine", ...}``. Loaded in the pytest process only (the evaluator gets arrays)."""
