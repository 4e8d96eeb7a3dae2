"""Shared fixtures: the repository's own benchmarks and surface, and throw-away project copies of them.

Markers tell the truth, and this file holds them to it: a test that starts a process or imports nvflare or
torch must be marked ``subprocess`` (seconds) or ``e2e`` (real simulations); an unmarked test that tries fails
at once, so ``pytest -m "not e2e and not subprocess"`` stays the fast loop. pytester tests run pytest in a
subprocess and are marked by their fixture.
"""

from __future__ import annotations

import _posixsubprocess  # type: ignore[import-not-found]
import shutil
import sys
from pathlib import Path

import pytest
from scripted import Scripted

from pytest_autofl.core.contract import load_contract
from pytest_autofl.search.campaign import Search

REPO = Path(__file__).resolve().parent.parent
_PROCESS_EVENTS = {
    "subprocess.Popen",
    "os.fork",
    "os.forkpty",
    "os.posix_spawn",
    "os.exec",
    "os.spawn",
    "os.system",
}
_HEAVY = {"torch", "nvflare"}
_unmarked: list[str] = []  # the id of the running test while it is unmarked


def _audit(event: str, args: tuple) -> None:
    if not _unmarked:
        return
    if event in _PROCESS_EVENTS or (event == "import" and str(args[0]).split(".")[0] in _HEAVY):
        what = "imports " + str(args[0]) if event == "import" else f"starts a process ({event})"
        raise RuntimeError(
            f"{_unmarked[0]} {what} but is not marked subprocess or e2e (see tests/conftest.py)"
        )


sys.addaudithook(_audit)
_fork_exec = _posixsubprocess.fork_exec


def _guarded_fork_exec(*args, **kwargs):  # multiprocessing's spawn starts processes without an audit event
    _audit("os.posix_spawn", ("multiprocessing",))
    return _fork_exec(*args, **kwargs)


_posixsubprocess.fork_exec = _guarded_fork_exec


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Pytester tests are marked subprocess; the real-FLARE tests (minutes) run first, so that under -n the
    short tests fill in around them instead of one long test starting last."""
    for item in items:
        if "pytester" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.subprocess)
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)  # stable: the file order otherwise


@pytest.fixture(autouse=True)
def _markers_tell_the_truth(request: pytest.FixtureRequest):
    marked = any(request.node.get_closest_marker(m) for m in ("subprocess", "e2e"))
    if not marked:
        _unmarked.append(request.node.nodeid)
    yield
    _unmarked.clear()


@pytest.fixture(autouse=True)
def _not_on_github(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output is GitHub annotations under GitHub Actions; tests see the plain form unless they ask."""
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)


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
    Scripted.patched = []
    Scripted.injected = set()

    def make(**kw):
        settings = {
            "rootdir": tmp_path,
            "benchmarks_dir": repo / "benchmarks",
            "benchmark": "digits",
            "surface_dir": repo / "surfaces",
            "workdir": tmp_path / ".autofl",
            "ledger_path": tmp_path / "results.tsv",
            "progress": lambda line: None,
            "runner_factory": Scripted,
            "commit": "scripted",  # no git process: the session's logic alone
        }
        return Search(**{**settings, **kw})

    return make
