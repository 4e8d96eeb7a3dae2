"""``--autofl-env sim``: each seed run is NVFlare's simulator in its own process tree (through prefork unless
``--autofl-preload off``)."""

from __future__ import annotations

from functools import partial

from pytest_autofl.run.envs import EnvironmentSetup
from pytest_autofl.run.runner import CandidateRunner, RunnerFactory


class SimEnvironment:
    supports_xdist = True

    def __init__(self, setup: EnvironmentSetup):
        self.setup = setup

    def runner_factory(self) -> RunnerFactory:
        return partial(CandidateRunner, preload=self.setup.preload, sandbox=self.setup.sandbox)

    def close(self) -> int:
        return 0
