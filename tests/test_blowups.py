"""Candidates that blow up, end to end on real FLARE in the sandbox: each fault of the catalogue
(``campaign.FAULTS``: more memory, processes or disk than the contract allows, an exception at import, NaN
weights, a client that kills itself or the server mid-round) must come back a ``crash`` row naming it, with no
process left behind, while the session goes on to the next candidate."""

from __future__ import annotations

import time

import pytest
import yaml
from campaign import FAULTS, blown, limited, processes_under

from pytest_autofl.ledger import store as ledger

pytestmark = pytest.mark.e2e


def test_a_faulty_candidate_is_a_crash_naming_the_fault_and_leaves_nothing_behind(pytester, project):
    limited(project)
    source = (project / "surfaces" / "client_train.py").read_text()
    (project / "candidates").mkdir()
    for name in FAULTS:
        spec = {"description": f"blows up: {name}", "files": {"client_train.py": blown(source, name)}}
        (project / "candidates" / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    started = time.monotonic()
    result = pytester.runpytest("candidates", "--autofl-sandbox", "on", "-p", "no:cacheprovider")
    rows = {r.description: r for r in ledger.read_rows(project / "results.tsv")}
    for name, (_, _, named) in FAULTS.items():
        row = rows[f"blows up: {name}"]
        assert row.status == "crash" and named in row.reason, (
            f"{name}: {row.status}: {row.reason}\n{result.stdout.str()[-3000:]}"
        )
    assert time.monotonic() - started < 900
    time.sleep(1)
    assert processes_under(project) == []
