"""This process' search, built on first use from the settings and its role: alone or on the xdist
controller its rows go to the controller's ledger writer; on an xdist worker they ride on the test reports and
the workers share the campaign through a journal."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.plugin.emit import emitter
from pytest_autofl.plugin.options import SETTINGS, worker_input

SEARCH = pytest.StashKey[Any]()  # the Search; imported lazily to keep `pytest --help` fast
ENVIRONMENT = pytest.StashKey[Any]()  # the Environment; closed at the end (a POC deployment is stopped)
ROLE = pytest.StashKey[Any]()  # the Controller or the Worker plugin object of this process; has ``sink(row)``
MEMBERS_ADDED = pytest.StashKey[bool]()


def add_members(config: pytest.Config) -> None:
    """Once per session: the members ``conftest.py`` files and other plugins add to the families."""
    if config.stash.get(MEMBERS_ADDED, False):
        return
    from pytest_autofl.data.datasets import DATASETS, KINDS
    from pytest_autofl.proposers import PROPOSERS
    from pytest_autofl.run.envs import ENVIRONMENTS

    config.hook.pytest_autofl_add_proposers(proposers=PROPOSERS)
    config.hook.pytest_autofl_add_environments(environments=ENVIRONMENTS)
    config.hook.pytest_autofl_add_datasets(datasets=DATASETS, kinds=KINDS)
    config.stash[MEMBERS_ADDED] = True


def unwritable(directory: Path) -> str | None:
    """Why a search cannot keep its files in ``directory`` (made if missing), or None: a file is written and
    removed to find out (a file in the way, a read-only or full disk)."""
    probe = directory / f".autofl-probe-{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"probe")
        probe.unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def search_for(config: pytest.Config) -> Any:
    """The Search of this process; raises AutoFLError (a usage error at start-up) when it cannot be built."""
    if SEARCH in config.stash:
        return config.stash[SEARCH]
    from pytest_autofl.run.envs import ENVIRONMENTS, EnvironmentSetup
    from pytest_autofl.search.campaign import Search
    from pytest_autofl.search.coordination import Shared, Solo
    from pytest_autofl.search.journal import Journal

    settings = config.stash[SETTINGS]
    add_members(config)
    for directory, option in (  # the ledger's first: it is usually there already, the workdir made here
        (settings.ledger.parent, "--autofl-ledger"),
        (settings.workdir, "--autofl-workdir"),
    ):
        if why := unwritable(directory):
            raise AutoFLError(f"{option}: {directory} cannot be written: {why}")
    make_environment = ENVIRONMENTS.get(settings.env)
    worker = worker_input(config)
    if worker is not None:
        path = settings.workdir / "xdist" / f"{worker['testrunuid']}.jsonl"
        coordination: Any = Shared(Journal(path, worker["workerid"]))
    else:
        coordination = Solo()
    search = Search(
        rootdir=config.rootpath,
        benchmarks_dir=settings.benchmarks_dir,
        benchmark=settings.benchmark,
        surface_dir=settings.surface_dir,
        workdir=settings.workdir,
        ledger_path=settings.ledger,
        progress=emitter(config),
        calibrate=settings.calibrate,
        force=settings.force,
        parallel=settings.parallel,
        proposer=settings.proposer,
        coordination=coordination,
        sink=config.stash[ROLE].sink,
        env_name=settings.env,
        sandbox=settings.sandbox,
        screen=settings.screen,
        options=_with_library(settings.proposer_options),
    )
    setup = EnvironmentSetup(
        settings.workdir, search.contract.num_clients, settings.startup_kit, settings.preload, search.sandbox
    )
    environment = make_environment(setup)
    search.runner_factory = environment.runner_factory()
    config.stash[ENVIRONMENT] = environment
    config.stash[SEARCH] = search
    return search


def _with_library(options: Any) -> Any:
    """The proposer options with the card library's lines (for a model's prompt), read when a search starts."""
    from dataclasses import replace

    from pytest_autofl.literature.cards import library_text, load_cards

    return (
        replace(options, library=library_text(load_cards(options.cards_dir)))
        if options.cards_dir
        else options
    )
