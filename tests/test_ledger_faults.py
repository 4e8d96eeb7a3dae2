"""The ledger under faults: writers killed at random while others append, a torn row, a full disk, and a writer
that checks only what was appended since its last row."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

from pytest_autofl.core.errors import LedgerError
from pytest_autofl.ledger import store, writer

ROOT = Path(__file__).resolve().parent.parent

# A writer process: appends rows w<worker>g<generation>:<i> through one LedgerWriter (sealed, as a search does)
# and prints each id only after its append returned (acknowledged). With TEAR it takes the lock, writes half a
# row and kills itself with SIGKILL: a torn tail, on purpose (one small os.write never tears by chance).
WRITER = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from pytest_autofl.ledger import store, writer
path, work, name, start, stop, tear = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1"
session = writer.LedgerWriter(path, writer.Seal.of(work, path))
if tear:  # as a writer killed inside its os.write would: holding the lock
    lock = writer.FileLock(str(path) + ".lock")  # kept: a lock object that is collected releases the lock
    lock.acquire()
    with open(path, "ab") as fh:
        fh.write(store.format_row({{"status": "keep", "row_id": name + ":torn"}}).encode()[:40])
    os.kill(os.getpid(), signal.SIGKILL)
for i in range(start, stop):
    fields = {{"status": "discard", "candidate_id": f"c{{i}}", "score": "0.5", "row_id": f"{{name}}:{{i}}",
              "description": "a row long enough to span more than one disk block " * 3}}
    writer.append_fields(path, fields, session.seal, session.tail)
    print(f"{{name}}:{{i}}", flush=True)
"""


def _start(script: Path, path: Path, work: Path, name: str, start: int, stop: int, tear: bool = False):
    argv = [
        sys.executable,
        str(script),
        str(path),
        str(work),
        name,
        str(start),
        str(stop),
        "1" if tear else "0",
    ]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.subprocess
def test_writers_killed_at_random_lose_no_acknowledged_row_and_leave_no_torn_one(tmp_path):
    """8 writers x 500 rows; a driver SIGKILLs random writers at random moments and restarts them (a new
    generation continues the count), and now and then starts one that tears a row and kills itself."""
    path, work = tmp_path / "results.tsv", tmp_path / "work"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(ROOT)))
    rng = random.Random(20261202)
    quota, acked = 500, {w: [] for w in range(8)}
    procs, deadline, generation, readers = {}, {}, dict.fromkeys(range(8), 0), {}
    kills = tears = 0

    def read(w: int, proc: subprocess.Popen) -> None:  # acknowledged ids, as they come
        for line in proc.stdout:
            if w not in deadline:  # it writes: kill it at a random moment within the next second
                deadline[w] = time.monotonic() + rng.uniform(0.0, 1.0)
            acked[w].append(line.strip())

    def launch(w: int) -> None:
        deadline.pop(w, None)
        procs[w] = _start(script, path, work, f"w{w}g{generation[w]}", len(acked[w]), quota)
        readers[w] = threading.Thread(target=read, args=(w, procs[w]), daemon=True)
        readers[w].start()

    for w in range(8):
        launch(w)
    while procs:
        time.sleep(0.01)
        for w in [
            w for w in procs if procs[w].poll() is not None or time.monotonic() > deadline.get(w, 1e18)
        ]:
            if procs[w].poll() is None:
                procs[w].send_signal(signal.SIGKILL)
                kills += 1
            elif procs[w].returncode != 0:  # it failed by itself: the ledger refused it
                pytest.fail(f"writer w{w} failed: {procs[w].stderr.read()[-600:]}")
            procs.pop(w).wait()
            readers[w].join(10)  # the reader takes the last lines (to EOF): a busy machine may take a while
            if len(acked[w]) < quota:
                generation[w] += 1
                if rng.random() < 0.1:  # a writer that dies halfway through a row
                    _start(script, path, work, f"w{w}t{generation[w]}", 0, 0, tear=True).wait()
                    tears += 1
                launch(w)
    print(
        f"{8 * quota} rows acknowledged by {sum(generation.values()) + 8} writer processes; {kills} SIGKILLs, {tears} torn rows"
    )
    assert kills >= 20, f"only {kills} kills: the driver did not exercise anything"
    rows = store.read_fields(path)
    ids = [r["row_id"] for r in rows]
    every_acked = [i for w in acked.values() for i in w]
    assert len(every_acked) == 8 * quota
    assert len(set(ids)) == len(ids), "a row was written twice"
    assert not set(every_acked) - set(ids), "an acknowledged row is missing"
    assert len(ids) - len(every_acked) <= kills  # at most one unacknowledged (whole) row per kill
    assert store.validate(path) == []
    seal = writer.Seal.of(work, path)
    assert seal.verify(path) == [], "the chain does not hold across the writers"
    assert not path.read_text().count(":torn")  # torn rows were set aside, never read as rows
    assert len(list(tmp_path.glob("results.tsv.torn-*"))) == tears
    with FileLock(str(path) + ".lock", timeout=0):  # no lock left held by a killed writer
        pass


@pytest.mark.subprocess
def test_a_full_disk_leaves_the_ledger_byte_for_byte_and_says_so(tmp_path):
    """A file-size limit just above the ledger's size: the row is cut short by the kernel (EFBIG); the append
    is a clear error, and the file is exactly what it was. The next append (room again) works."""
    path = tmp_path / "results.tsv"
    writer.append_fields(path, {"status": "keep", "row_id": "r1", "description": "x" * 200})
    before = path.read_bytes()
    code = f"""
import resource, sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from pytest_autofl.ledger import writer
from pytest_autofl.core.errors import LedgerError
limit = {len(before) + 50}
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    writer.append_fields(Path({str(path)!r}), {{"status": "keep", "row_id": "r2", "description": "y" * 200}})
except LedgerError as exc:
    print(exc)
    sys.exit(3)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "nothing was appended" in done.stdout and "Is the disk full?" in done.stdout
    assert path.read_bytes() == before
    writer.append_fields(path, {"status": "keep", "row_id": "r3"})
    assert [r["row_id"] for r in store.read_fields(path)] == ["r1", "r3"]


def _sealed(tmp_path: Path) -> tuple[Path, writer.Seal, writer.LedgerWriter]:
    path = tmp_path / "results.tsv"
    seal = writer.Seal.of(tmp_path / "work", path)
    return path, seal, writer.LedgerWriter(path, seal)


def _fields(i: int) -> dict[str, str]:
    return {"status": "discard", "score": "0.5", "candidate_id": f"c{i}", "row_id": f"r{i}"}


def test_a_writer_reads_only_what_came_after_its_own_last_row(tmp_path):
    path, seal, session = _sealed(tmp_path)
    for i in range(3):
        writer.append_fields(path, _fields(i), seal, session.tail)
    other = writer.LedgerWriter(path, seal)
    writer.append_fields(path, _fields(3), seal, other.tail)
    since = writer._since(path, session.tail)
    assert since is not None
    text, offset = since
    assert offset == session.tail.size and text == store.format_row(store.read_fields(path)[3])
    writer.append_fields(path, _fields(4), seal, session.tail)
    assert session.tail.count == 5 and seal.verify(path) == []


def test_a_forged_row_appended_by_someone_else_is_caught_by_the_tail_check(tmp_path):
    path, seal, session = _sealed(tmp_path)
    writer.append_fields(path, _fields(0), seal, session.tail)
    writer.append_fields(path, {**_fields(1), "chain": "f" * 64})  # written without the harness key
    with pytest.raises(LedgerError, match=r"results.tsv:3: its chain does not verify"):
        writer.append_fields(path, _fields(2), seal, session.tail)
    assert len(store.read_fields(path)) == 2


@pytest.mark.parametrize("how", ["cut", "replaced"])
def test_a_tail_not_as_the_writer_left_it_means_the_whole_file_is_checked(tmp_path, how):
    path, seal, session = _sealed(tmp_path)
    for i in range(3):
        writer.append_fields(path, _fields(i), seal, session.tail)
    lines = path.read_text().split("\n")
    if how == "cut":  # the last row deleted: the file is shorter than the writer left it
        path.write_text("\n".join(lines[:-2]) + "\n")
    else:  # the same length, the last row edited (another inode, as an editor saving the file gives)
        edited = lines[-2].replace("\tc2\t", "\tc9\t")
        (tmp_path / "new.tsv").write_text("\n".join([*lines[:-2], edited, ""]))
        os.replace(tmp_path / "new.tsv", path)
    assert writer._since(path, session.tail) is None
    with pytest.raises(LedgerError, match="rows were deleted or replaced|chain does not verify"):
        writer.append_fields(path, _fields(3), seal, session.tail)


def test_a_torn_row_after_the_writers_last_is_set_aside_by_its_next_append(tmp_path):
    path, seal, session = _sealed(tmp_path)
    writer.append_fields(path, _fields(0), seal, session.tail)
    with open(path, "ab") as fh:
        fh.write(b"keep\tpartial row from a killed wri")
    writer.append_fields(path, _fields(1), seal, session.tail)
    assert [r["row_id"] for r in store.read_fields(path)] == ["r0", "r1"]
    (aside,) = tmp_path.glob("results.tsv.torn-*")
    assert aside.read_bytes() == b"keep\tpartial row from a killed wri"
    assert seal.verify(path) == [] and session.tail.size == path.stat().st_size


def test_every_torn_tail_is_set_aside_once(tmp_path):
    """Found by the kill test above: 8 tears in 7 files (one writer set aside two torn tails within a second,
    under one name), and 13 tears in 14 files (a writer killed between setting a tail aside and cutting it off:
    the next one set it aside again). Set-asides are named by where the tail starts and what it holds."""
    path = tmp_path / "results.tsv"
    for torn in (b"first half of a row", b"second half of another", b"second half of another"):
        path.write_bytes(b"header\n" + torn)
        writer._set_aside_torn_tail(path, torn, len(b"header\n"))
    kept = sorted(p.read_bytes() for p in tmp_path.glob("results.tsv.torn-*"))
    assert kept == [b"first half of a row", b"second half of another"]
    assert path.read_bytes() == b"header\n"
