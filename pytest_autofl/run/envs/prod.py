"""``--autofl-env prod``: jobs go to an existing deployment through an admin startup kit; nothing is started
or stopped."""

from __future__ import annotations

from functools import partial

from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.run.envs import EnvironmentSetup
from pytest_autofl.run.runner import CandidateRunner, RunnerFactory


class ProdEnvironment:
    supports_xdist = False

    def __init__(self, setup: EnvironmentSetup):
        kit = setup.startup_kit
        if kit is None or not kit.is_dir():
            raise AutoFLError(
                f"--autofl-env prod needs --autofl-startup-kit pointing at an admin startup kit directory, got {kit}"
            )
        self.startup_kit, self.sandbox = kit, setup.sandbox

    def runner_factory(self) -> RunnerFactory:
        return partial(CandidateRunner, startup_kit=self.startup_kit, sandbox=self.sandbox)

    def close(self) -> int:
        return 0
