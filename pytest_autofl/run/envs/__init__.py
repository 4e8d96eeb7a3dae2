"""The environment family (``--autofl-env``): how a candidate's seed runs reach NVFlare. Each member gives
the runner factory the search uses and stops what it started at the end of the session.

``sim`` (NVFlare's simulator, with prefork), ``poc`` (a POC deployment started for the session) and ``prod``
(an existing deployment, reached through an admin startup kit) are registered here; a ``conftest.py`` hook
(``pytest_autofl_add_environments``) or the ``pytest_autofl.environments`` entry point group adds others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pytest_autofl.core.registry import Registry
from pytest_autofl.run.runner import RunnerFactory
from pytest_autofl.run.sandbox import NO_SANDBOX, Sandbox


@dataclass(frozen=True)
class EnvironmentSetup:
    workdir: Path
    num_clients: int
    startup_kit: Path | None = None  # --autofl-startup-kit (prod)
    preload: bool = True  # --autofl-preload (sim)
    sandbox: Sandbox = NO_SANDBOX  # around every process that runs candidate code


class Environment(Protocol):
    supports_xdist: bool  # False: its own scheduler runs seeds side by side; run it without pytest-xdist

    def runner_factory(self) -> RunnerFactory: ...

    def close(self) -> int: ...


EnvironmentFactory = Callable[[EnvironmentSetup], Environment]
ENVIRONMENTS: Registry[EnvironmentFactory] = Registry("environment", "pytest_autofl.environments")


def _register() -> None:
    from pytest_autofl.run.envs.poc import PocEnvironment
    from pytest_autofl.run.envs.prod import ProdEnvironment
    from pytest_autofl.run.envs.sim import SimEnvironment

    ENVIRONMENTS.register("sim", SimEnvironment)
    ENVIRONMENTS.register("poc", PocEnvironment)
    ENVIRONMENTS.register("prod", ProdEnvironment)


_register()
