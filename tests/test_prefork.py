"""prefork: simulator workers forked from a process that imported torch and nvflare once, behaving like
fresh ``python -m`` processes (argv, env, cwd, streams, session, exit code, signals), and leaving nothing
behind. A fake simulator stands in for NVFlare's, started the way NVFlare starts its workers."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import textwrap
import time

import psutil
import pytest

from pytest_autofl.run import ports, prefork
from pytest_autofl.run.processes import python_env, run_tree

pytestmark = pytest.mark.subprocess  # process trees, prefork, the evaluator: seconds each

FAKE_SIMULATOR = textwrap.dedent(
    """
    import json, os, signal, subprocess, sys, time

    def start(*args, **kw):  # as NVFlare's simulator starts a worker
        return subprocess.Popen([sys.executable, "-m", *args], preexec_fn=os.setsid, **kw)

    mode = sys.argv[1]
    if mode == "workers":
        procs = [
            start("fakeworker", "--client", f"site-{i}", env={**os.environ, "SITE": f"site-{i}"},
                  cwd=sys.argv[2], stdout=subprocess.PIPE)
            for i in range(3)
        ]
        outs = [json.loads(p.communicate()[0]) for p in procs]
        fallback = subprocess.run([sys.executable, "-c", "import sys; print('torch' in sys.modules)"],
                                  capture_output=True, text=True).stdout.strip()
        from nvflare.private.fed.app.simulator.simulator_runner import get_open_ports  # as NVFlare calls it
        print(json.dumps({"codes": [p.returncode for p in procs], "outs": outs, "fallback": fallback,
                          "ports": get_open_ports(3)}))
        sys.exit(7)
    if mode == "signals":
        result = {}
        for how in ("terminate", "kill"):
            shim = start("fakesleeper", stdout=subprocess.PIPE)
            worker = int(shim.stdout.readline())
            getattr(shim, how)()
            shim.wait()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and os.path.exists(f"/proc/{worker}") and \\
                    open(f"/proc/{worker}/stat").read().split()[2] != "Z":
                time.sleep(0.1)
            gone = not os.path.exists(f"/proc/{worker}") or open(f"/proc/{worker}/stat").read().split()[2] == "Z"
            result[how] = {"returncode": shim.returncode, "worker_gone": gone, "shim": shim.pid, "worker": worker}
        print(json.dumps(result))
    if mode == "hang":
        start("fakesleeper")
        print("Round 0 started.", flush=True)
        time.sleep(600)
    """
)
FAKE_WORKER = textwrap.dedent(
    """
    import json, os, random, sys
    print(json.dumps({
        "argv": sys.argv[1:], "cwd": os.getcwd(), "site": os.environ["SITE"], "name": __name__,
        "preloaded": "torch" in sys.modules, "session_leader": os.getsid(0) == os.getpid(),
        "random": random.random(), "path0": sys.path[0], "pid": os.getpid(),
    }))
    sys.exit(3)
    """
)
FAKE_SLEEPER = "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(600)\n"


def _launch(tmp_path, *args, timeout=120.0):
    for name, text in (
        ("fakesim", FAKE_SIMULATOR),
        ("fakeworker", FAKE_WORKER),
        ("fakesleeper", FAKE_SLEEPER),
    ):
        (tmp_path / f"{name}.py").write_text(text)
    log = tmp_path / "launch.log"
    result = run_tree(
        [sys.executable, "-m", "pytest_autofl.run.prefork", "-m", "fakesim", *args],
        cwd=tmp_path,
        env=python_env([tmp_path]),
        log_path=log,
        timeout=timeout,
    )
    return result, log.read_text()


def _last_json(text: str) -> dict:
    return json.loads(next(ln for ln in reversed(text.splitlines()) if ln.startswith("{")))


def test_workers_are_forked_yet_behave_like_fresh_python_m_processes(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    result, log = _launch(tmp_path, "workers", str(work))
    assert result.returncode == 7, log  # the simulator's own exit code
    assert "[pytest-autofl prefork] torch and nvflare imported once" in log
    out = _last_json(log)
    assert out["codes"] == [3, 3, 3]
    workers = out["outs"]
    assert [w["argv"] for w in workers] == [["--client", f"site-{i}"] for i in range(3)]
    assert [w["site"] for w in workers] == ["site-0", "site-1", "site-2"]
    assert {w["cwd"] for w in workers} == {str(work)} and {w["path0"] for w in workers} == {str(work)}
    assert all(w["name"] == "__main__" and w["session_leader"] for w in workers)
    assert all(w["preloaded"] for w in workers)  # forked from the zygote: torch already imported
    assert len({w["random"] for w in workers}) == 3  # reseeded after the fork
    assert out["fallback"] == "False"  # anything but `-m` runs the real interpreter
    assert len(set(out["ports"])) == 3 and all(
        p in ports.pool() for p in out["ports"]
    )  # reserved, not picked


def test_signals_reach_the_worker_and_a_killed_shim_takes_its_worker_along(tmp_path):
    result, log = _launch(tmp_path, "signals")
    assert result.returncode == 0, log
    out = _last_json(log)
    assert out["terminate"]["returncode"] == -15 and out["terminate"]["worker_gone"]
    assert out["kill"]["returncode"] == -9 and out["kill"]["worker_gone"]
    assert out["kill"]["worker"] != out["kill"]["shim"]


def _socket_dirs() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("autofl-prefork-")}


def test_a_hanging_simulation_is_killed_with_its_zygote_and_workers(tmp_path):
    before = _socket_dirs()
    started = time.monotonic()
    result, log = _launch(tmp_path, "hang", timeout=15.0)
    assert result.timed_out, log
    assert result.killed >= 4  # guard, launcher, zygote, shim, worker
    assert time.monotonic() - started < 60
    time.sleep(0.5)
    marker = str(tmp_path)
    left = [
        p.pid
        for p in psutil.process_iter(["cmdline", "cwd"])
        if p.pid != os.getpid() and (marker in " ".join(p.info["cmdline"] or []) or p.info["cwd"] == marker)
    ]
    assert left == []
    assert _socket_dirs() - before == set()  # the zygote's socket directory is removed


def test_socket_directories_of_killed_launchers_are_swept(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for name in ("autofl-prefork-111-a", "autofl-prefork-222-b", "autofl-prefork-old", "other-333-c"):
        (tmp_path / name).mkdir()
    prefork._sweep(lambda pid: pid == 222)  # 111 is gone: its launcher was SIGKILLed
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "autofl-prefork-222-b",
        "autofl-prefork-old",
        "other-333-c",
    ]


def test_the_meter_reads_the_zygotes_line_and_nothing_else():
    import os

    from pytest_autofl.run.meter import Measurement, Meter, report

    meter = Meter()
    report(
        meter.fds[0],
        {"site-1": 0.25, "": 0.5},
        {"site-1": 1.5},
        {"site-1": [0.02, 0.01]},
        {"site-1": [0.01, 0.01]},
        {"site-2": "SIGKILL"},
    )
    assert meter.read() == Measurement(
        {"site-1": 0.25, "": 0.5},
        {"site-1": 1.5},
        {"site-1": [0.02, 0.01]},
        {"site-1": [0.01, 0.01]},
        {"site-2": "SIGKILL"},
    )
    silent = Meter()
    os.close(silent.fds[0])  # the zygote was killed before it reported
    assert silent.read() is None
    garbage = Meter()
    report(garbage.fds[0], {"site-1": "lots"}, {}, {}, {}, {})
    assert garbage.read() is None


@pytest.mark.subprocess
def test_the_launcher_imports_nothing_that_starts_threads():
    """The sandbox launcher takes its own user namespace, which a process with threads cannot: numpy (its BLAS
    starts threads at import) must not be among what it imports, even through the contract module."""
    import subprocess
    import sys

    code = "import sys, pytest_autofl.run.prefork; print(sorted(m for m in ('numpy', 'torch') if m in sys.modules))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        == "[]\n"
    )
