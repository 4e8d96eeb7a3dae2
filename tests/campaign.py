"""Faulty candidates and an unattended campaign made of them, shared by the e2e tests and
``benchmarks/unattended.py``: the catalogue of ways a candidate's client code blows up, a proposer that mixes
them into a built-in search, and the project and command such a campaign runs with."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_autofl.core.contract import sha256_of
from pytest_autofl.core.errors import ProposerStopped
from pytest_autofl.proposers.builtin import BuiltinProposer
from pytest_autofl.proposers.candidate_file import candidate_from_mapping

REPO = Path(__file__).resolve().parents[1]
INIT = "    flare.init()\n"
ROUND = "        round_num = int(input_model.current_round or 0)\n"
DIFF = "        diff = {k: local_state[k] - global_state[k] for k in local_state}\n"
# name -> (the line of client_train.py after which the code goes, the code, what the crash reason must name)
FAULTS = {
    "memory": (
        INIT,
        "import time\nheld = []\nwhile True:\n    held.append(b'x' * (32 << 20))\n    time.sleep(0.05)",
        "memory limit exceeded",
    ),
    "processes": (
        INIT,
        "import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(600)\n        os._exit(0)\n"
        "    time.sleep(0.02)",
        "PermissionError: [Errno 1] Operation not permitted",  # a client script may start no process
    ),
    "disk": (
        INIT,
        "import time\nfor i in range(100000):\n    with open(f'fill-{i}', 'wb') as fh:\n"
        "        fh.write(b'x' * (1 << 20))\n    time.sleep(0.005)",
        "disk limit exceeded",
    ),
    "import": (
        "from __future__ import annotations\n",
        "raise ImportError('broken at import')",
        "ImportError: broken at import",
    ),
    "nan": (
        DIFF,
        "diff = {k: v * float('nan') for k, v in diff.items()}",
        "non-finite weights (NaN or inf) in body.0.weight",
    ),
    "self-kill": (
        ROUND,
        "import os\nif round_num == 1:\n    os.kill(os.getpid(), 9)",
        "ended without a result",  # the client's executor: its trainer process is gone
    ),
    "server-kill": (
        ROUND,
        "import os\nfor pid in filter(str.isdigit, os.listdir('/proc')):  # the simulator: FLARE's server\n"
        "    try:\n        argv = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')\n"
        "    except OSError:\n        continue\n"
        "    if b'nvflare.private.fed.app.simulator.simulator' in argv:\n        os.kill(int(pid), 9)",
        "simulator exited with code 137 (killed by SIGKILL)",
    ),
}
LIMITS = {"max_memory_mb": 1024, "max_processes": 32, "max_disk_mb": 64}  # a blow-up is caught in seconds


def blown(source: str, fault: str) -> str:
    """``source`` (client_train.py) with the fault's code after its anchor line, indented like it."""
    anchor, code, _ = FAULTS[fault]
    indent = anchor[: len(anchor) - len(anchor.lstrip())]
    changed = source.replace(anchor, anchor + textwrap.indent(code, indent) + "\n")
    assert changed != source, anchor
    return changed


def repin(root: Path, name: str = "digits-smoke", **budget: Any) -> None:
    """Change the project copy's contract budget and pin it again (the visible act the search requires)."""
    path = root / "benchmarks" / name / "contract.json"
    raw = json.loads(path.read_text())
    raw["budget"].update(budget)
    path.write_text(json.dumps(raw, indent=2))
    (path.parent / "contract.sha256").write_text(sha256_of(raw) + "\n")


def limited(root: Path, **budget: Any) -> None:
    """digits-smoke with small resource limits (and ``budget`` overrides): a blow-up is caught in seconds."""
    repin(root, **{**LIMITS, **budget})


class Saboteur:
    """Every third candidate a fault from the catalogue (in turn), the others the built-in proposer's; it stops
    once the campaign (the ledger's rows under this contract) has ``AUTOFL_CAMPAIGN_SIZE`` candidates, so the
    same command run again after an interruption finishes the campaign."""

    def __init__(self, setup: Any):
        self.builtin, self.setup = BuiltinProposer(setup), setup
        self.size = int(os.environ["AUTOFL_CAMPAIGN_SIZE"])

    def propose(self, view: Any) -> Any:
        index = len(view.history) + len(view.running)
        if index >= self.size:
            raise ProposerStopped(f"the campaign has its {self.size} candidates")
        if index % 3 != 2:
            return self.builtin.propose(view)
        fault = list(FAULTS)[(index // 3) % len(FAULTS)]
        code = blown(view.surface["client_train.py"], fault) + f"# campaign candidate {index}\n"  # its own
        spec = {"description": f"faulty: {fault}", "files": {"client_train.py": code}}
        return candidate_from_mapping(
            spec, Path(f"<{fault}>"), self.setup.factory, self.setup.surface_dir, "saboteur", f"fault:{fault}"
        )

    def tell(self, view: Any, row: Any) -> None:
        """The built-in proposer reads the history it needs from the next view."""


CONFTEST = f"""
import sys
sys.path.insert(0, {str(REPO / "tests")!r})
from campaign import Saboteur


def pytest_autofl_add_proposers(proposers):
    proposers.register("saboteur", Saboteur)
"""


def project(root: Path, **budget: Any) -> Path:
    """A campaign project in ``root``: the bundled benchmarks (digits-smoke limited) and surface, the saboteur."""
    for name in ("benchmarks", "surfaces"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "results"))
    (root / "pytest.ini").write_text("[pytest]\ntestpaths = benchmarks\nautofl_benchmark = digits-smoke\n")
    (root / "conftest.py").write_text(CONFTEST)
    limited(root, **budget)
    return root


def command(size: int) -> tuple[list[str], dict[str, str]]:
    """The campaign's command (the same for the first run and every rerun) and its environment."""
    argv = [sys.executable, "-m", "pytest", f"--autofl-iterations={size}", "--autofl-proposer=saboteur"]
    return [*argv, "--autofl-sandbox=on", "-p", "no:cacheprovider"], {
        **os.environ,
        "AUTOFL_CAMPAIGN_SIZE": str(size),
    }


def _tree(pid: int) -> list[Any]:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def signal_tree(pid: int, sig: int) -> int:
    """Send ``sig`` to ``pid`` and every process under it; how many."""
    import psutil

    procs = _tree(pid)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)
    return len(procs)


def kill_whole_tree(pid: int) -> int:
    """SIGKILL ``pid`` and every process under it at once, as ``kill -9`` of the tree would; how many."""
    return signal_tree(pid, signal.SIGKILL)


def unrecorded_runs(root: Path, rows: list[Any]) -> list[str]:
    """Directories of the seed runs finished (in the resume index) outside every recorded row's trial (its own
    seeds, and the ``.incumbent`` runs beside it): finished work whose candidate has no row."""
    trials = [str((root / r.trial_dir).resolve()) for r in rows if r.trial_dir]
    out = []
    for entry in sorted((root / ".autofl" / "finished").glob("*.json")):
        directory = json.loads(entry.read_text())["facts"]["directory"]
        if not any(directory.startswith(trial) for trial in trials):
            out.append(directory)
    return out


def processes_under(root: Path) -> list[str]:
    """Command lines of the processes that still name ``root`` (a campaign leaves none)."""
    import psutil

    out = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(root) in cmd:
            out.append(cmd)
    return out


@dataclass
class Interrupted:
    """What a campaign killed once and run again left: the rows at the kill and at the end, the seed runs that
    had finished without a row yet, and what the rerun said."""

    rows_before: list[Any]
    pending: list[str]
    killed: int
    rows: list[Any]
    returncode: int
    said: str
    seconds: tuple[float, float]  # the first run until the kill, the rerun


def _moment(root: Path, results: Path, rows_at_kill: int, first: subprocess.Popen[bytes], log: Path) -> bool:
    """Wait until the ledger has ``rows_at_kill`` rows and then for the next seed run to be indexed as
    finished (a search indexes a batch's runs once they are scored, milliseconds before the candidate's row),
    stop the campaign's whole tree at once and look: True (stopped with finished work that has no row: kill it
    now), or False (the row came first; the tree runs on, and the next indexed run is the moment)."""
    from pytest_autofl.ledger import store as ledger

    index = root / ".autofl" / "finished"
    seen = None
    while True:
        if first.poll() is not None:
            raise RuntimeError(f"the campaign ended before it was killed:\n{log.read_text()[-3000:]}")
        if seen is None:
            if results.exists() and len(ledger.read_rows(results)) >= rows_at_kill:
                seen = set(os.listdir(index)) if index.is_dir() else set()
            time.sleep(0.2)
            continue
        now = set(os.listdir(index)) if index.is_dir() else set()
        if any(name.endswith(".json") for name in now - seen):
            break
        time.sleep(0.002)  # the window is milliseconds wide
    signal_tree(first.pid, signal.SIGSTOP)  # nothing writes while we look
    if unrecorded_runs(root, ledger.read_rows(results)):
        return True
    signal_tree(first.pid, signal.SIGCONT)
    return False


def kill_and_rerun(root: Path, size: int, rng: random.Random, log: Path) -> Interrupted:
    """Run the campaign, SIGKILL its whole tree at a random moment (past a random number of rows, as a seed run
    is indexed as finished and before its candidate gets its row, so the rerun has finished work to take over),
    then run the same command again to the end."""
    from pytest_autofl.ledger import store as ledger

    argv, env = command(size)
    results = root / "results.tsv"
    started = time.monotonic()
    with open(log, "w") as out:
        first = subprocess.Popen(argv, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
        rows_at_kill = rng.randrange(1, size)
        try:  # the moment: past that many rows, once a seed run has finished whose candidate has no row yet
            while not _moment(root, results, rows_at_kill, first, log):
                pass
        finally:  # also when this process is interrupted: the campaign does not run on unattended
            killed = kill_whole_tree(first.pid)
            first.wait()
    killed_at = time.monotonic()
    before = ledger.read_rows(results)  # it parses: no torn row
    pending = unrecorded_runs(root, before)
    again = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=4 * 3600)
    said = again.stdout + again.stderr
    log.with_suffix(".rerun.log").write_text(said)
    seconds = (killed_at - started, time.monotonic() - killed_at)
    return Interrupted(before, pending, killed, ledger.read_rows(results), again.returncode, said, seconds)
