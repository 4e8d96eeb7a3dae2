"""The fixtures a project's tests use: the active contract and its split, and the candidate trial."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_autofl.plugin.items import RERUN_ROW, RESULT
from pytest_autofl.plugin.options import SETTINGS
from pytest_autofl.plugin.wiring import SEARCH


@pytest.fixture(scope="session")
def autofl_contract(pytestconfig: pytest.Config) -> Any:
    """The active benchmark contract (a frozen value with ``sha``, ``seeds``, ``budget``, ...)."""
    from pytest_autofl.core.contract import load_contract

    if SEARCH in pytestconfig.stash:
        return pytestconfig.stash[SEARCH].contract
    settings = pytestconfig.stash[SETTINGS]
    return load_contract(settings.benchmarks_dir, settings.benchmark)


@pytest.fixture(scope="session")
def autofl_split(autofl_contract: Any) -> Any:
    """The contract's client split and held-out sets (row indices); ``.sha`` is the ``split_sha``."""
    from pytest_autofl.data.split import contract_split

    return contract_split(autofl_contract)


@pytest.fixture
def autofl_slot() -> int:
    pytest.skip("candidate items exist only in a search: pytest --autofl-iterations=N")


class Trial:
    """What a candidate test item gets: ``run()`` proposes the next candidate and runs it for real."""

    def __init__(self, search: Any, slot: int, node: pytest.Item):
        self._search, self._slot, self._node = search, slot, node

    def run(self) -> Any:
        if RERUN_ROW in self._node.config.stash:
            from pytest_autofl.search.rerun import run_again

            result = run_again(self._search, self._node.config.stash[RERUN_ROW])
        else:
            from pytest_autofl.core.errors import ProposerStopped, ProposerUnavailable
            from pytest_autofl.search.proposals import run_next

            try:
                result = run_next(self._search, self._slot)
            except ProposerStopped as exc:
                pytest.skip(str(exc))
            except ProposerUnavailable as exc:
                pytest.fail(f"no candidate: {exc}", pytrace=False)
        self._node.stash[RESULT] = result
        return result


@pytest.fixture
def autofl_trial(request: pytest.FixtureRequest, autofl_slot: int) -> Trial:
    return Trial(request.config.stash[SEARCH], autofl_slot, request.node)
