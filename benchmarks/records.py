"""A benchmark's figures as a record under ``benchmarks/results/<kind>/``: the commit (``+dirty`` when tracked
files differed from it), the date, the machine, the command and the figures, so that every number quoted in
the README or a note traces back to the run that produced it."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from scratch import ROOT

from pytest_autofl.search.record import git_commit


class Record:
    """One record file; ``write`` (again) as figures come in, so a stopped benchmark keeps what it measured."""

    def __init__(self, kind: str, label: str = "") -> None:
        self.commit = git_commit(ROOT)
        self.date = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        name = "-".join(filter(None, [self.date[:10], self.commit.replace("+", "-"), label]))
        self.path = ROOT / "benchmarks" / "results" / kind / f"{name}.json"

    def write(self, figures: dict[str, Any]) -> Path:
        record = {
            "commit": self.commit,
            "date": self.date,
            "command": " ".join(["python", os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
            "machine": {
                "platform": platform.platform(),
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "load_at_end": round(os.getloadavg()[0], 1),
            },
            **figures,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(record, indent=1) + "\n")
        return self.path
