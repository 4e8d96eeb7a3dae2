"""The sandbox around candidate code, tried as an agent would: a candidate file whose model.py (imported by the
job export, the FLARE server and clients, and the predict process) probes what it can reach, records it in its
own trial directory, and must find every door shut. Plus the sandbox's command line and policy."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from pathlib import Path

import pytest
import sklearn.datasets  # here, not first inside pytester's in-process run: it drops what the run imported, and numpy's C parts load once
import yaml

from pytest_autofl.ledger import store as ledger
from pytest_autofl.run.sandbox import BWRAP, NONE, OFF, Sandbox, resolve

SEARCH = """
def copies_of_the_data(root, size, sha):  # what a lookup needs: a copy of the data set, anywhere it can see
    import hashlib, os
    hits = []
    for top, dirs, files in os.walk(root):
        if top in ("/proc", "/sys", "/dev"):
            dirs[:] = []
            continue
        for f in files:
            path = os.path.join(top, f)
            try:
                if os.path.getsize(path) == size and hashlib.sha256(open(path, "rb").read()).hexdigest() == sha:
                    hits.append(path)
            except OSError:
                pass
    return hits
"""

PROBE = (
    SEARCH
    + """

def _probe():  # the lint (AF108) reads import statements; an agent just calls __import__ (lint is not a wall)
    import json, os, sys
    from pathlib import Path

    socket = __import__("sock" + "et")

    trial = Path(__file__).resolve().parent.parent
    project = trial.parents[2]
    found = {}

    def attempt(name, action):
        try:
            found[name] = bool(action())
        except Exception:
            found[name] = False

    def read_digits():
        import sklearn.datasets
        return (Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz").read_bytes()

    def import_harness():
        return __import__("pytest_autofl.ledger.store")

    def write_outside():
        with open(project / "surfaces" / "model.py", "a") as fh:
            fh.write("# touched")
        return True

    def reach_host():
        socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
        return True

    attempt("read the data set's own files", read_digits)
    attempt("read the ledger", lambda: (project / "results.tsv").read_text().strip())
    attempt("read the harness key", lambda: (project / ".autofl" / "harness.key").read_bytes())
    attempt("import the ledger writer", import_harness)
    attempt("write outside its trial", write_outside)
    attempt("reach a port of the host", reach_host)
    attempt("see a secret in the environment", lambda: os.environ.get("OPENAI_API_KEY"))
    def uncover_a_shard():  # the covers over other sites' shards are mounts: lift one
        ctypes = __import__("ctyp" + "es")
        libc = ctypes.CDLL(None, use_errno=True)
        for config in trial.glob("seed-*/client.json"):
            for shard in Path(json.loads(config.read_text())["data_dir"]).glob("*.npz"):
                if libc.umount2(str(shard).encode(), 2) == 0:
                    return True
        return False

    attempt("lift the cover of another site's shard", uncover_a_shard)

    def forge_harness_files():  # the evaluator's request, the incumbent's runs: next to the trial, not in it
        for what in ("evaluator", "incumbent"):
            target = trial.with_name(trial.name + "." + what)
            target.mkdir(exist_ok=True)
            (target / "forged.json").write_text("[]")

    attempt("forge the harness' files", forge_harness_files)  # checked from outside

    def rewrite_a_client_configuration():  # its own seed's or another's: the budget every client reads
        for config in [*trial.glob("seed-*/client.json"), *trial.glob("seed-*/job/*/app/config/*.json")]:
            try:
                open(config, "r+").close()
                return True
            except OSError:
                pass
        return False

    attempt("rewrite what the harness wrote for a seed run", rewrite_a_client_configuration)

    def shards_readable():  # a client must read its own shard and no other; nothing else may read any
        count = 0
        for config in trial.glob("seed-*/client.json"):
            for shard in Path(json.loads(config.read_text())["data_dir"]).glob("*.npz"):
                try:
                    count += len(shard.read_bytes()) > 0
                except OSError:
                    pass
            break
        return count

    copies = copies_of_the_data("/", COPY_SIZE, COPY_SHA)
    own = f"left-by-{os.urandom(6).hex()}.txt"  # what one process leaves in the trial for another to read
    for where in (trial, Path.cwd()):
        try:
            (where / own).write_text("rows")
        except OSError:
            pass
    left = sum(1 for p in trial.rglob("left-by-*.txt") if p.name != own and p.read_text() == "rows")
    name = f"probe-{os.urandom(6).hex()}.json"  # pids repeat: every sandbox has its own pid namespace
    found.pop("forge the harness' files")  # a write to a hidden (tmpfs) path succeeds unseen: see the test
    record = json.dumps({"argv": sys.argv[:3], "found": found, "shards": shards_readable(), "copies": copies, "left": left})
    print(f"PROBE-RECORD {name} {record}", file=sys.stderr)  # the export may write nowhere but its jobs
    for where in (trial, Path.cwd()):  # a simulation writes its seed run's directory, predict its own only
        try:
            (where / name).write_text(record)
        except OSError:
            pass


_probe()
"""
)


def _digits_file() -> Path:
    return Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"


@pytest.fixture
def planted(project):
    """Copies of the data set where a machine keeps them: /opt, the home directory, a pip cache, another
    virtualenv's scikit-learn, the project's .git; removed afterwards."""
    data = _digits_file().read_bytes()
    home, tag = Path.home(), f"autofl-probe-{os.getpid()}"
    places = [
        Path("/opt") / tag / "digits.csv.gz",
        home / tag / "digits.csv.gz",
        home / ".cache" / "pip" / tag / "digits.csv.gz",
        Path("/srv") / tag / "venv/lib/python3.11/site-packages/sklearn/datasets/data/digits.csv.gz",
        project / ".git" / "objects" / tag / "digits.csv.gz",
    ]
    for path in places:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    yield places
    for root in (Path("/opt") / tag, home / tag, home / ".cache" / "pip" / tag, Path("/srv") / tag):
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.e2e
def test_candidate_code_finds_every_door_shut(pytester, project, planted, monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-never-for-candidates")
    model = (project / "surfaces" / "model.py").read_text()
    (project / "candidates").mkdir()
    (project / "candidates" / "probe.yaml").write_text(
        yaml.safe_dump({"description": "probe", "files": {"model.py": model + _probe_code(port)}})
    )
    result = pytester.runpytest("candidates/probe.yaml", "--autofl-sandbox", "on", "-p", "no:cacheprovider")
    listener.close()
    assert result.ret in (0, 1), result.stdout.str()[-2000:]
    rows = ledger.read_rows(project / "results.tsv")
    assert len(rows) == 2, f"the probe did not run: {rows[-1].reason}"  # the baseline, then the probe
    assert [r.sandbox for r in rows] == [BWRAP, BWRAP]
    trial = project / rows[-1].trial_dir
    evaluator = trial.with_name(trial.name + ".evaluator")
    files = {p.name: p.read_text() for p in [*trial.rglob("probe-*.json"), *evaluator.rglob("probe-*.json")]}
    for log in trial.glob("export-*.log"):  # the export's probe, from its output
        for line in log.read_text().splitlines():
            if line.startswith("PROBE-RECORD "):
                _, name, record = line.split(" ", 2)
                files[name] = record
    probes = [json.loads(text) for text in files.values()]
    kinds = {" ".join(p["argv"]) for p in probes}
    assert any("flare_job" in k for k in kinds) and any("predict" in k for k in kinds)
    assert any("simulator" in k or "client" in k for k in kinds), kinds
    # the predict process sees the model's code and nothing else of the trial
    assert all(p["left"] == 0 for p in probes if "predict" in " ".join(p["argv"])), probes
    assert list(trial.rglob("left-by-*.txt")), (
        "no process left a file in the trial: the check above checks nothing"
    )
    copies = {c for p in probes for c in p["copies"]}
    assert copies == set(), f"copies of the data set candidate code can read: {copies}"
    scope: dict = {}
    exec(SEARCH, scope)  # the same search, outside the sandbox, finds what was planted
    size, sha = len(_digits_file().read_bytes()), hashlib.sha256(_digits_file().read_bytes()).hexdigest()
    assert scope["copies_of_the_data"](str(planted[0].parent), size, sha) == [str(planted[0])]
    opened = {name for p in probes for name, ok in p["found"].items() if ok}
    assert opened == set(), f"doors open to candidate code: {opened}"
    readable = {(" ".join(p["argv"]), p["shards"]) for p in probes}
    assert {n for k, n in readable if "client_train" in k} == {1}, readable  # its own, no other
    assert {n for k, n in readable if "client_train" not in k} == {0}, readable  # server, export, predict
    assert (project / "surfaces" / "model.py").read_text() == model
    assert not list((project / ".autofl").rglob("forged.json"))  # the evaluator's and other runs' files


def _probe_code(port: int) -> str:
    data = _digits_file().read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    return (
        PROBE.replace("PORT", str(port)).replace("COPY_SHA", repr(sha)).replace("COPY_SIZE", str(len(data)))
    )


def test_the_sandbox_command_hides_the_harness_state_and_shows_only_what_it_is_given(tmp_path):
    hidden_dir, hidden_file = tmp_path / "work", tmp_path / "results.tsv"
    hidden_dir.mkdir()
    hidden_file.write_text("ledger")
    trial, shard = hidden_dir / "runs" / "01", hidden_dir / "data"
    sandbox = Sandbox(BWRAP, (str(hidden_dir), str(hidden_file)))
    argv = sandbox.wrap(["python", "x.py"], writable=[trial], readable=[shard], modules=["run/audit.py"])
    assert argv[-3:] == ["--", "python", "x.py"] and "--unshare-net" in argv and "--cap-drop" in argv
    pairs = list(zip(argv, argv[1:], strict=False))
    assert ("--ro-bind", "/") not in pairs and str(hidden_dir) not in argv  # never mounted: nothing to hide
    assert ("--bind", str(trial)) in pairs and ("--ro-bind", str(shard)) in pairs
    sources = {b for a, b in pairs if a == "--ro-bind"}
    assert not any(s.startswith(("/opt", "/home", "/srv", "/var")) for s in sources)
    assert not any("/sklearn" in s or "scikit_learn" in s for s in sources)  # the data set's package
    assert any(a.endswith("pytest_autofl/run/audit.py") for a in argv)
    assert not any(a.endswith("pytest_autofl/ledger/store.py") for a in argv)
    assert Sandbox(OFF).wrap(["python"], writable=[trial]) == ["python"]
    env = sandbox.env({"PATH": "/bin", "OPENAI_API_KEY": "sk-x", "NVFLARE_X": "1", "HOME": "/root"})
    assert env == {"PATH": "/bin", "NVFLARE_X": "1", "HOME": "/tmp", "TMPDIR": "/tmp"}


def test_code_changes_are_refused_where_no_sandbox_can_be_made(make_session, tmp_path, monkeypatch):
    from pytest_autofl.run import sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module, "probe", lambda: "bubblewrap (bwrap) is not installed")
    assert resolve("auto", ()).mode == NONE and resolve("off", ()).refusal() is None
    with pytest.raises(Exception, match="--autofl-sandbox on: bubblewrap"):
        resolve("on", ())
    s = make_session(sandbox="auto")
    s.record(s.run(s.next_candidate(), 1))
    patched = s.factory.make({})
    patched = type(patched)(
        **{**patched.__dict__, "files": (("model.py", "x = 1\n"),), "family": "fedavg+patch"}
    )
    verdict = s.record(s.run(patched, 2))
    assert verdict.status == "invalid" and "refused: a code change runs only in a sandbox" in verdict.reason
    assert [r.sandbox for r in ledger.read_rows(tmp_path / "results.tsv")] == [NONE, NONE]
