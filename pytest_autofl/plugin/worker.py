"""The pytest-xdist worker role: its verdict rows ride on the test reports to the controller, which writes
the ledger."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_autofl.plugin.controller import ROW_PROPERTY


class Worker:
    def __init__(self) -> None:
        self.pending: list[Any] = []  # rows recorded since the last report

    def sink(self, row: Any) -> None:
        self.pending.append(row)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Before xdist sends the report to the controller, attach the rows recorded for it."""
        report.user_properties.extend((ROW_PROPERTY, row.fields()) for row in self.pending)
        self.pending.clear()
