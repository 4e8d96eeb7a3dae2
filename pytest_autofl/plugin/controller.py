"""The controller role (the process that owns the terminal: a run without xdist, or xdist's controller): the
one writer of the ledger, the terminal summary, the report and ``--autofl-json``, and SIGTERM handling."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest

from pytest_autofl.plugin.options import SETTINGS
from pytest_autofl.plugin.wiring import SEARCH

ROW_PROPERTY = "autofl_row"  # user property carrying a verdict row from an xdist worker to the controller


class LedgerRefused(Exception):
    """The ledger refused a verdict row: the session stops (the row was printed)."""


def _shown(path: Path) -> Path:
    """``path`` relative to the working directory when it lies below it, else absolute."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else Path(relative)


class Controller:
    def __init__(self, config: pytest.Config):
        self.config = config
        self._writer: Any = None
        self.facts: dict[str, Any] | None = None
        self._sigterm: Any = None
        self._mlflow: Any = None  # report.mlflow_runs.MlflowRuns once a row is written, with --autofl-mlflow

    @property
    def writer(self) -> Any:
        """The LedgerWriter, made on first use (a run that records nothing creates no harness key)."""
        if self._writer is None:
            from pytest_autofl.ledger.writer import LedgerWriter, Seal

            settings = self.config.stash[SETTINGS]
            self._writer = LedgerWriter(settings.ledger, Seal.of(settings.workdir, settings.ledger))
        return self._writer

    def sink(self, row: Any) -> None:
        """Append a verdict row of this process' search (the search counts it itself)."""
        from pytest_autofl.core.errors import LedgerError

        try:
            self.writer.write(row)
        except (LedgerError, OSError) as exc:
            self._stop(row, exc)
        self._mirror(row)

    def _mirror(self, row: Any) -> None:
        """A written row as an MLflow run (--autofl-mlflow). MLflow is a view: the first failure is reported
        and MLflow left alone for the rest of the session; the ledger has every row."""
        from pytest_autofl.plugin.emit import emitter
        from pytest_autofl.report.mlflow_runs import open_runs, redacted

        settings = self.config.stash[SETTINGS]
        if settings.mlflow is None or self._mlflow is False:
            return
        if self._mlflow is None:
            self._mlflow, line = open_runs(settings.mlflow, settings.workdir, self.config.rootpath)
            emitter(self.config)(f"[autofl] {line}")
            if self._mlflow is None:
                self._mlflow = False
                return
        try:
            self._mlflow.log(row)
        except Exception as exc:  # noqa: BLE001 - MLflow's client raises many kinds (HTTP, store, limits)
            self._mlflow = False
            emitter(self.config)(
                f"[autofl] mlflow: the run of {row.candidate_id} was not logged ({redacted(str(exc))[:200]}); "
                "no more MLflow runs this session (the ledger has every row)"
            )

    def _stop(self, row: Any, exc: Exception) -> NoReturn:
        """A row the ledger refused (a full disk, a ledger changed under the run) stops the search: the next
        candidates' verdicts could not be kept either. The row is printed whole, so no result is lost, and
        the same command run again reuses the candidate's finished seed runs."""
        from pytest_autofl.ledger.store import format_row

        sys.stderr.write(
            f"autofl: the {row.status} row of {row.candidate_id} was not written to the ledger; "
            f"as it would have been appended:\n{format_row(row.fields())}"
        )
        sys.stderr.flush()
        raise LedgerRefused(
            f"autofl: search stopped, the ledger refused a row: {exc} Free the space (or restore the ledger) "
            "and run the same command again: finished seed runs are reused."
        )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """A verdict row an xdist worker recorded: write it and count it in the summary."""
        from pytest_autofl.ledger.row import Row

        for name, fields in report.user_properties:
            if name == ROW_PROPERTY and isinstance(fields, dict):
                row = Row.parse(fields)
                try:
                    self.sink(row)
                except LedgerRefused as exc:
                    self._stop_workers(str(exc))
                    continue
                self.config.stash[SEARCH].receive(row)

    def _stop_workers(self, why: str) -> None:
        """xdist starts no further candidate; rows of those still running arrive, and are written or printed."""
        dsession = self.config.pluginmanager.getplugin("dsession")
        if dsession is not None and not dsession.shouldstop:
            dsession.shouldstop = why

    def stop_on_sigterm(self) -> None:
        """SIGTERM (a CI timeout, ``kill``) stops a search like Ctrl-C: running simulations are stopped and
        every finished verdict is already in the ledger."""

        def interrupt(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt(f"stopped by signal {signum}")

        self._sigterm = signal.signal(signal.SIGTERM, interrupt)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from pytest_autofl.report.summary import summary_lines

        search = self.config.stash.get(SEARCH, None)
        if search is None or not search.state.rows:
            return
        try:
            test_scores = search.test_scores()
        except RuntimeError as exc:
            test_scores = None
            terminalreporter.write_line(f"held-out test score unavailable: {exc}")
        noise_line = search.calibration.describe()
        terminalreporter.write_sep("=", "autofl summary")
        lines = summary_lines(
            search.state.rows,
            search.baseline,
            search.incumbent,
            test_scores,
            str(search.ledger_path),
            noise_line,
        )
        for line in lines:
            terminalreporter.write_line(line)
        sandbox = search.sandbox
        terminalreporter.write_line(
            f"sandbox: {sandbox.mode}" + (f" ({sandbox.why_none})" if sandbox.why_none else "")
        )
        settings = self.config.stash[SETTINGS]
        if settings.report_dir is not None or settings.json:
            row_ids = self._writer.row_ids if self._writer is not None else []
            extra = {"row_ids": row_ids, "test": test_scores, "noise": noise_line}
            self._report(terminalreporter, search, extra)

    def _report(self, terminalreporter: Any, search: Any, extra: dict[str, Any]) -> None:
        from pytest_autofl.core.errors import AutoFLError
        from pytest_autofl.report.facts import Scoring, build_facts, companions, write_report

        settings = self.config.stash[SETTINGS]
        scoring = Scoring.of(search.contract)
        ledger_path = _shown(search.ledger_path)  # the report's reproduce commands are run from here
        sha = search.contract.sha
        try:
            if settings.report_dir is not None:
                facts = write_report(
                    ledger_path, settings.report_dir, scoring, contract_sha=sha, session=extra
                )
                terminalreporter.write_line(
                    f"report: {_shown(settings.report_dir) / 'report.md'} (+ {companions(facts)})"
                )
            else:
                facts, _ = build_facts(ledger_path, scoring, contract_sha=sha)
                facts["session"] = extra
        except (AutoFLError, OSError) as exc:
            terminalreporter.write_line(f"autofl report FAILED (the ledger is untouched): {exc}")
            return
        self.facts = facts

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """``--autofl-json``: the facts go out last, after pytest's own summary, so ``tail -n 1`` finds them."""
        if self._sigterm is not None:
            signal.signal(signal.SIGTERM, self._sigterm)
        if self.facts is not None and config.stash[SETTINGS].json:
            sys.stdout.write(json.dumps(self.facts) + "\n")
            sys.stdout.flush()
