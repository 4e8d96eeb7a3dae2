"""Candidates that blow up, end to end on real FLARE in the sandbox: each takes more of the machine than the
contract allows (memory, processes, disk) and must come back a ``crash`` row naming the limit, with no process
left behind, while the session goes on to the next candidate."""

from __future__ import annotations

import json
import time

import psutil
import pytest
import yaml

from pytest_autofl.core.contract import sha256_of
from pytest_autofl.ledger import store as ledger

pytestmark = pytest.mark.e2e

BLOWUPS = {  # name -> (code run by every client right after flare.init(), what the crash reason must name)
    "memory": (
        "held = []\n    while True:\n        held.append(b'x' * (32 << 20))\n        time.sleep(0.05)",
        "memory limit exceeded",
    ),
    "processes": (
        "while True:\n        if os.fork() == 0:\n            time.sleep(600)\n            os._exit(0)\n"
        "        time.sleep(0.02)",
        "process limit exceeded",
    ),
    "disk": (
        "for i in range(100000):\n        with open(f'fill-{i}', 'wb') as fh:\n"
        "            fh.write(b'x' * (1 << 20))\n        time.sleep(0.005)",
        "disk limit exceeded",
    ),
}


def _limited(project) -> None:
    """digits-smoke with small limits (re-pinned): a blow-up is caught in seconds, long before the machine."""
    path = project / "benchmarks" / "digits-smoke" / "contract.json"
    raw = json.loads(path.read_text())
    raw["budget"].update(max_memory_mb=1024, max_processes=32, max_disk_mb=64)
    path.write_text(json.dumps(raw, indent=2))
    (path.parent / "contract.sha256").write_text(sha256_of(raw) + "\n")


def test_a_candidate_past_a_limit_is_a_crash_naming_it_and_leaves_nothing_behind(pytester, project):
    _limited(project)
    source = (project / "surfaces" / "client_train.py").read_text()
    (project / "candidates").mkdir()
    for name, (code, _) in BLOWUPS.items():
        changed = source.replace("    flare.init()\n", f"    flare.init()\n    import os, time\n    {code}\n")
        assert changed != source
        spec = {"description": f"blows up: {name}", "files": {"client_train.py": changed}}
        (project / "candidates" / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    started = time.monotonic()
    result = pytester.runpytest("candidates", "--autofl-sandbox", "on", "-p", "no:cacheprovider")
    rows = {r.description: r for r in ledger.read_rows(project / "results.tsv")}
    for name, (_, named) in BLOWUPS.items():
        row = rows[f"blows up: {name}"]
        assert row.status == "crash" and named in row.reason, (
            f"{name}: {row.status}: {row.reason}\n{result.stdout.str()[-3000:]}"
        )
    assert time.monotonic() - started < 600
    time.sleep(1)
    left = [p for p in psutil.process_iter(["cmdline"]) if str(project) in " ".join(p.info["cmdline"] or [])]
    assert left == []
