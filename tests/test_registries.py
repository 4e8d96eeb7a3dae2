"""The plug-in families: a proposer and an environment that live outside this package join through the
registries (a ``conftest.py`` hook, or ``register`` from plain Python) and run a whole search; neither
``search/`` nor ``plugin/`` knows them."""

from __future__ import annotations

import pytest
from scripted import Scripted

from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.core.registry import Registry
from pytest_autofl.ledger import store as ledger
from pytest_autofl.proposers import PROPOSERS

AGGREGATORS = ("fedavg", "median", "fedavgm", "scaffold", "fedadam")


class ListProposer:
    """Test-only: the aggregators in a fixed order, then nothing new (an error)."""

    told: list[str] = []

    def __init__(self, setup):
        self.factory = setup.factory

    def propose(self, view):
        tried = view.tried()
        for name in AGGREGATORS:
            candidate = self.factory.make({"aggregator": name}, proposer="list", source=f"list:{name}")
            if candidate.key not in tried:
                return candidate
        raise RuntimeError("the list is exhausted")

    def tell(self, view, row):
        ListProposer.told.append(f"{row.candidate_id}:{row.status}:{len(view.history)}")


def test_a_registered_proposer_drives_a_scripted_search(make_session, tmp_path):
    PROPOSERS.register("list", ListProposer)
    ListProposer.told = []
    Scripted.effects = {"aggregator=median": 0.2}
    s = make_session(proposer="list")
    for slot in range(1, 4):
        s.record(s.run(s.next_candidate(), slot))
    rows = ledger.read_rows(tmp_path / "results.tsv")
    assert [(r.params["aggregator"], r.status, r.proposer, r.source) for r in rows] == [
        ("fedavg", "keep", "builtin", "baseline"),  # a campaign starts with the baseline, whoever proposes
        ("median", "keep", "list", "list:median"),
        ("fedavgm", "discard", "list", "list:fedavgm"),
    ]
    assert [t.split(":")[1:] for t in ListProposer.told] == [["keep", "1"], ["keep", "2"], ["discard", "3"]]


def test_registries_name_unknown_and_duplicate_members():
    registry: Registry[int] = Registry("widget", "pytest_autofl.no-such-group")
    registry.register("a", 1)
    registry.register("a", 1)  # the same member again is harmless
    with pytest.raises(AutoFLError, match="widget 'a' is registered twice"):
        registry.register("a", 2)
    with pytest.raises(AutoFLError, match="unknown widget 'b'; choose one of a"):
        registry.get("b")
    loaders: Registry[object] = Registry("loader", "pytest_autofl.no-such-group")
    first, again = (eval("lambda: 1", {"__name__": "conftest"}) for _ in range(2))  # a conftest imported anew
    loaders.register("mine", first)
    loaders.register("mine", again)  # the same definition (module and name): harmless
    with pytest.raises(AutoFLError, match="loader 'mine' is registered twice"):
        loaders.register("mine", eval("lambda: 1", {"__name__": "elsewhere"}))


CONFTEST = """
import sys
sys.path.insert(0, {tests!r})
from scripted import Scripted
from test_registries import ListProposer


class ScriptedEnvironment:
    supports_xdist = True

    def __init__(self, setup):
        pass

    def runner_factory(self):
        return Scripted

    def close(self):
        return 0


def pytest_autofl_add_proposers(proposers):
    proposers.register("list", ListProposer)


def pytest_autofl_add_environments(environments):
    environments.register("scripted", ScriptedEnvironment)
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["alone", "xdist"])
def test_conftest_hooks_add_a_proposer_and_an_environment(pytester, project, repo, xdist):
    pytester.makeconftest(CONFTEST.format(tests=str(repo / "tests")))
    args = ["--autofl-iterations=4", "--autofl-proposer=list", "--autofl-env=scripted", *xdist]
    result = pytester.runpytest(*args)
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["*autofl summary*", "*verdicts: *", "sandbox: bwrap"])
    rows = ledger.read_rows(project / "results.tsv")
    assert len(rows) == 4 and {r.proposer for r in rows[1:]} == {"list"} and rows[0].source == "baseline"
    assert sorted(r.params["aggregator"] for r in rows) == sorted(AGGREGATORS[:4])  # no candidate twice
    assert rows[0].status == "keep" and rows[0].params["aggregator"] == "fedavg"  # the baseline ran first


def test_an_unknown_proposer_is_a_usage_error_listing_the_known_ones(pytester, project):
    result = pytester.runpytest("--autofl-iterations=1", "--autofl-proposer=oracle")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*unknown proposer 'oracle'; choose one of builtin*"])
