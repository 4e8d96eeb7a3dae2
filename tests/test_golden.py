"""The golden search: a scripted campaign (baseline, discard, narrow, keep with confirmation, a failed
confirmation, a crash, a rejected file, a candidate file with a patch and cites) whose complete ledger rows
must stay exactly those recorded in ``fixtures/golden_rows.json``.

It guards refactors of the search: every column except time (timestamp, runtime), host, ids and versions is compared, with the
session's run directory (time + pid) replaced by ``<run>``. ``AUTOFL_GOLDEN_WRITE=1`` rewrites the fixture
(only after a deliberate behaviour change).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from scripted import Scripted

from pytest_autofl.ledger import store as ledger
from pytest_autofl.proposers.candidate_file import load_candidate_file
from pytest_autofl.search.files import reject

GOLDEN = Path(__file__).parent / "fixtures" / "golden_rows.json"
VOLATILE = (
    "timestamp_utc",
    "runtime_seconds",
    "row_id",
    "commit",
    "nvflare_version",
    "torch_version",
    "chain",
)
CANDIDATE_FILE = """\
description: FedProx, small mu, with a client patch
knobs: {fedprox_mu: 0.02}
cites: ["Li et al. 2020, FedProx, arXiv:1812.06127"]
patch: |
  --- a/model.py
  +++ b/model.py
  @@ -1,1 +1,2 @@
  +# golden patch
   FIRST_LINE
"""


def _scenario(make_session, tmp_path: Path, parallel: int) -> list[dict[str, str]]:
    s = make_session(parallel=parallel)
    Scripted.effects = {
        "fedprox_mu=0.01": -0.06,  # discard at min_seeds
        "fedprox_mu=0.1": 0.09,  # keep, confirmed
        "aggregator=fedadam, server_lr=0.03": 0.3,  # keep on selection seeds, fails confirmation (below)
        "FedProx, small mu, with a client patch [src: Li et al. 2020, FedProx, arXiv:1812.06127]": 0.094,
    }
    Scripted.seed_effects = {  # inconclusive: earns every seed, ends narrow
        "aggregator=fedavgm, server_momentum=0.6": {0: 0.14, 1: 0.06, 2: 0.13, 3: 0.07, 4: 0.14, 5: 0.08}
    }
    Scripted.crash = {"aggregator=fedavgm, server_lr=2, server_momentum=0.4"}
    original = Scripted.run

    def unlucky_on_fresh_seeds(self, seed, tag="", evaluate=True):
        run = original(self, seed, tag, evaluate)
        if self.candidate.description.startswith("aggregator=fedadam") and seed >= 1000 and run.score:
            run.score -= 0.3
        return run

    Scripted.run = unlucky_on_fresh_seeds  # type: ignore[method-assign]
    try:
        for slot in range(1, 7):
            s.record(s.run(s.next_candidate(), slot))
        reject(s, "broken.yaml", "knob 'lr' = 9 is out of bounds [0.001, 0.5]")
        path = tmp_path / "prox.yaml"
        first = (s.surface_dir / "model.py").read_text().splitlines()[0]
        path.write_text(CANDIDATE_FILE.replace("FIRST_LINE", first))
        candidate = load_candidate_file(path, s.factory, s.surface_dir)
        s.record(s.run(candidate, 8))
    finally:
        Scripted.run = original  # type: ignore[method-assign]
    rows = ledger.read_fields(tmp_path / "results.tsv")
    run_dir = os.path.relpath(s.run_dir, tmp_path)
    return [{k: v.replace(run_dir, "<run>") for k, v in row.items() if k not in VOLATILE} for row in rows]


@pytest.mark.parametrize("parallel", [1, 4])
def test_the_golden_search_writes_the_recorded_rows(make_session, tmp_path, parallel):
    rows = _scenario(make_session, tmp_path, parallel)
    assert [r["status"] for r in rows] == [
        "keep",
        "discard",
        "keep",
        "narrow",
        "crash",
        "discard",
        "invalid",
        "discard",
    ]
    if os.environ.get("AUTOFL_GOLDEN_WRITE") and parallel == 1:
        GOLDEN.write_text(json.dumps(rows, indent=1) + "\n")
    assert [r["proposer"] for r in rows] == ["builtin"] * 6 + ["file", "file"]
    assert [r["source"] for r in rows][:2] == [
        "baseline",
        "calibration",
    ]  # a campaign starts with the baseline
    assert (
        rows[-1]["source"] == "file:prox.yaml"
        and rows[-1]["cites"] == '["Li et al. 2020, FedProx, arXiv:1812.06127"]'
    )
    golden = json.loads(GOLDEN.read_text())
    for number, (got, want) in enumerate(zip(rows, golden, strict=True), start=2):
        for column, value in want.items():
            assert got[column] == value, f"ledger line {number}, column {column}"
