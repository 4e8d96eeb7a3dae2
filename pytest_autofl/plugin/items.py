"""The test items of a search: one parametrized candidate test per slot (or the one rerun), candidate files
as items of their own, and the verdict recorded the moment a candidate's call phase ends."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.plugin.controller import LedgerRefused
from pytest_autofl.plugin.emit import display, emitter
from pytest_autofl.plugin.options import SETTINGS, worker_input
from pytest_autofl.plugin.wiring import SEARCH, search_for

SLOT_FIXTURE = "autofl_slot"
RESULT = pytest.StashKey[Any]()  # the TrialResult of a candidate item
RERUN_ROW = pytest.StashKey[Any]()  # the ledger Row --autofl-rerun reproduces


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    settings = metafunc.config.stash[SETTINGS]
    if SLOT_FIXTURE not in metafunc.fixturenames or not settings.searching:
        return
    if RERUN_ROW in metafunc.config.stash:
        row = metafunc.config.stash[RERUN_ROW]
        metafunc.parametrize(SLOT_FIXTURE, [0], ids=[f"rerun-{row.candidate_id}"])
    else:
        slots = list(range(1, settings.iterations + 1))
        metafunc.parametrize(SLOT_FIXTURE, slots, ids=[f"candidate-{i:02d}" for i in slots])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A search runs only the candidate items; a normal run never runs them."""
    searching = config.stash[SETTINGS].searching
    keep = [i for i in items if (SLOT_FIXTURE in getattr(i, "fixturenames", ())) == searching]
    if searching and not keep:
        raise pytest.UsageError(
            "autofl: --autofl-iterations was given but no collected test uses the autofl_trial fixture; "
            "run pytest from the project root (see README) or add a test like benchmarks/test_autofl.py"
        )
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """The verdict is decided and the row recorded as soon as the candidate's call phase ends, so the proposer
    sees it before the next item and an interrupted search loses no finished candidate."""
    report = yield
    if call.when == "call" and SLOT_FIXTURE in getattr(item, "fixturenames", ()):
        try:
            return _recorded(item, call, report)
        finally:  # the live view steps aside before pytest writes the outcome
            search = item.config.stash.get(SEARCH, None)
            best = search.incumbent if search is not None else None
            display(item.config).candidate_finished(f"{best.candidate_id} {best.score:.4f}" if best else "")
    if call.excinfo is not None and isinstance(call.excinfo.value, LedgerRefused):
        return _stopped(item, report, call.excinfo.value)
    return report


def _recorded(item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport) -> pytest.TestReport:
    if call.excinfo is not None and isinstance(call.excinfo.value, LedgerRefused):
        return _stopped(item, report, call.excinfo.value)  # a literature row, written during the call
    if RESULT not in item.stash:
        return report
    from pytest_autofl.search.rerun import outcome_line

    search, result = search_for(item.config), item.stash[RESULT]
    if RERUN_ROW in item.config.stash:
        tolerance = search.contract.statistics.rerun_tolerance
        emitter(item.config)(outcome_line(item.config.stash[RERUN_ROW], result, tolerance))
        return report
    try:
        verdict = search.record(result)
    except LedgerRefused as exc:
        return _stopped(item, report, exc)
    from pytest_autofl.report.summary import junit_properties

    properties = junit_properties(result.row)
    item.user_properties.extend(properties)  # --junitxml writes the item's (on the teardown report)
    report.user_properties.extend(properties)
    emitter(item.config)(
        f"[autofl {result.slot:02d}] {result.candidate.id}: {verdict.status.upper()} - {verdict.reason}"
    )
    return report


def _stopped(item: pytest.Item, report: pytest.TestReport, refused: LedgerRefused) -> pytest.TestReport:
    """The item fails with the one-line reason and the session stops after it."""
    report.outcome, report.longrepr = "failed", str(refused)
    item.session.shouldstop = str(refused)
    return report


class CandidateFailure(Exception):
    """A candidate file's run failed (crash, invalid, rejected): reported as one line, not a traceback."""


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    settings = parent.config.stash[SETTINGS]
    if (
        file_path.suffix in (".yaml", ".yml")
        and file_path.parent.resolve() == settings.candidates_dir.resolve()
    ):
        return CandidateFile.from_parent(parent, path=file_path)
    return None


class CandidateFile(pytest.File):
    def collect(self) -> list[pytest.Item]:
        return [CandidateItem.from_parent(self, name=self.path.stem)]


class CandidateItem(pytest.Item):
    """One candidate file, run like a search candidate against the incumbent and recorded in the ledger."""

    def runtest(self) -> None:
        from pytest_autofl.search.files import run_candidate_file

        if worker_input(self.config) is not None:
            raise CandidateFailure(
                "candidate files do not run under pytest-xdist (-n) yet: one incumbent per run"
            )
        try:
            search = search_for(self.config)
        except AutoFLError as exc:
            raise CandidateFailure(f"autofl: {exc}") from None
        recorded = len(search.results)
        outcome = run_candidate_file(search, self.path, self.config.stash[SETTINGS].force)
        if len(search.results) > recorded:  # the file's own row is the last (a baseline may come first)
            from pytest_autofl.report.summary import junit_properties

            self.user_properties.extend(junit_properties(search.results[-1].row))
        if outcome.skipped:
            pytest.skip(outcome.skipped)
        if outcome.line:
            emitter(self.config)(outcome.line)
        if outcome.failure:
            raise CandidateFailure(outcome.failure)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CandidateFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"autofl candidate file {self.path.name}"
