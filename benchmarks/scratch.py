"""A search in a scratch directory, for the benchmark scripts: the repository's contracts and surface, a
throwaway work directory and ledger, and the runner ``--autofl-env sim`` builds (with the search's sandbox)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytest_autofl.run.envs import ENVIRONMENTS, EnvironmentSetup  # noqa: E402
from pytest_autofl.search.campaign import Search  # noqa: E402


def scratch_search(tmp: Path, benchmark: str, **options: Any) -> Search:
    """``options`` go to ``Search`` (progress: silent unless given)."""
    search = Search(
        rootdir=ROOT,
        benchmarks_dir=ROOT / "benchmarks",
        benchmark=benchmark,
        surface_dir=ROOT / "surfaces",
        workdir=tmp / "work",
        ledger_path=tmp / "results.tsv",
        **{"progress": lambda event: None, **options},
    )
    setup = EnvironmentSetup(search.workdir, search.contract.num_clients, sandbox=search.sandbox)
    search.runner_factory = ENVIRONMENTS.get("sim")(setup).runner_factory()
    return search
