"""A ledger that refuses a row during a search stops it, with the refused row printed and the ledger intact:
a real full disk (a small tmpfs that bubblewrap mounts over a folder of the project), after which the same
command run again finishes the campaign with no row lost or doubled, and a ledger changed under the run when the
literature loop writes its review row. A workdir on a full disk is refused before anything runs."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import pytest
from test_registries import AGGREGATORS, CONFTEST

from pytest_autofl.ledger import store as ledger

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap (.ci/run installs it)"
)

FILL = """
import os

WRITER = True  # this process writes the ledger: not an xdist worker (an outer xdist's variables may be set)


def pytest_configure(config):
    global WRITER
    WRITER = not hasattr(config, "workerinput")


def pytest_runtest_logreport(report):
    \"\"\"After a candidate's verdict is written, fill the disk the ledger is on (as another job would).\"\"\"
    disk = os.environ.get("FILL_AFTER_FIRST_ROW")
    if disk and report.when == "call" and WRITER:
        with open(os.path.join(disk, "filler"), "ab", buffering=0) as filler:
            try:
                while True:
                    filler.write(bytes(65536))
            except OSError:
                pass
"""

SEARCH = ["--autofl-proposer=list", "--autofl-env=scripted", "-p", "no:cacheprovider"]


def _on_small_disk(pytester: pytest.Pytester, disk: Path, script: str, **env: str) -> pytest.RunResult:
    """``script`` (sh) run in the project with a 256 KiB tmpfs mounted on ``disk``; gone when it ends."""
    disk.mkdir(exist_ok=True)
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    command = ["bwrap", "--dev-bind", "/", "/", "--size", str(256 * 1024), "--tmpfs", str(disk)]
    return pytester.run(*command, "sh", "-c", f"{prefix} {script}".strip(), timeout=120)


def _pytest(*args: str) -> str:
    return shlex.join([sys.executable, "-m", "pytest", *args])


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["alone", "xdist"])
def test_a_disk_that_fills_during_a_search_stops_it_and_the_rerun_loses_nothing(
    pytester, project, repo, xdist
):
    pytester.makeconftest(CONFTEST.format(tests=str(repo / "tests")) + FILL)
    disk, kept = project / "disk", project / "kept.tsv"
    ledger_option = f"--autofl-ledger={disk / 'results.tsv'}"
    search = _pytest(*SEARCH, *xdist, ledger_option, f"--autofl-iterations={len(AGGREGATORS)}")
    keep = f"rc=$?; cp {disk / 'results.tsv'} {kept}; exit $rc"

    # the disk is full after the first verdict; the ledger's last page still takes a row or two
    result = _on_small_disk(pytester, disk, f"{search}; {keep}", FILL_AFTER_FIRST_ROW=str(disk))
    assert result.ret == pytest.ExitCode.INTERRUPTED, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(
        ["*Interrupted: autofl: search stopped, the ledger refused a row*disk full?*"]
    )
    assert "Traceback" not in result.stdout.str() and "Warning" not in result.stdout.str()
    said = result.stderr.lines
    refused = [said[i + 1] for i, line in enumerate(said) if line.endswith("as it would have been appended:")]
    written = ledger.read_rows(kept)  # it parses: no torn row
    assert refused and 1 <= len(written) < len(AGGREGATORS)
    column = ledger.COLUMNS.index("candidate_id")
    refused_ids = {line.split("\t")[column] for line in refused}  # each refused row printed whole
    assert not refused_ids & {r.candidate_id for r in written}
    assert {i.split("-")[0] for i in refused_ids} <= set(AGGREGATORS) - {
        r.params["aggregator"] for r in written
    }

    rest = _pytest(*SEARCH, *xdist, ledger_option, f"--autofl-iterations={len(AGGREGATORS) - len(written)}")
    again = _on_small_disk(pytester, disk, f"cp {kept} {disk / 'results.tsv'}; {rest}; {keep}")
    assert again.ret == 0, again.stdout.str()[-3000:]
    rows = ledger.read_rows(kept)  # the refused one once, nothing twice, nothing lost
    assert sorted(r.params["aggregator"] for r in rows) == sorted(AGGREGATORS)


def test_a_workdir_on_a_full_disk_is_refused_before_anything_runs(pytester, project, repo):
    pytester.makeconftest(CONFTEST.format(tests=str(repo / "tests")))
    disk = project / "disk"
    fill = f"head -c 1000000 /dev/zero > {disk / 'filler'} 2>/dev/null;"
    search = _pytest(*SEARCH, "--autofl-iterations=1", f"--autofl-workdir={disk / 'wd'}")
    result = _on_small_disk(pytester, disk, f"{fill} {search}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*--autofl-workdir: {disk / 'wd'} cannot be written: No space left on device*"]
    )
    assert not (project / "results.tsv").exists()


DAMAGE = """
import os


def pytest_runtest_logreport(report):
    \"\"\"Once the campaign has three rows, a line that is no ledger row is added (an edit under the run).\"\"\"
    path = os.path.join(os.getcwd(), "results.tsv")
    if report.when == "call" and os.path.exists(path) and len(open(path).readlines()) == 4:
        with open(path, "a") as ledger:
            ledger.write("edited by hand\\n")
"""


def test_a_literature_row_the_ledger_refuses_stops_the_search_naming_it(pytester, project, repo):
    shutil.copytree(repo / "skills", project / "skills")
    pytester.makeini("[pytest]\ntestpaths = benchmarks\nautofl_benchmark = digits-skew\n")
    (project / "program.md").write_text("---\nplateau: {after: 2}\n---\n")
    pytester.makeconftest(CONFTEST.format(tests=str(repo / "tests")) + DAMAGE)
    result = pytester.runpytest_subprocess(*SEARCH, "--autofl-iterations=5")
    assert result.ret == pytest.ExitCode.INTERRUPTED, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(
        ["*Interrupted: autofl: search stopped, the ledger refused a row: *results.tsv:5:*"]
    )
    # written during the item's call, so shown in its report's captured stderr
    result.stdout.fnmatch_lines(["autofl: the literature row of lit-0001 was not written to the ledger*"])
    result.assert_outcomes(passed=3, failed=1)  # it stops at the refused review: no candidate runs after it
    lines = (project / "results.tsv").read_text().splitlines()
    assert len(lines) == 5 and lines[-1] == "edited by hand"  # three rows and the edit: nothing written
