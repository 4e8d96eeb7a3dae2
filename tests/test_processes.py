from __future__ import annotations

import sys
import textwrap
import time

import psutil
import pytest

from pytest_autofl.core.contract import Limits
from pytest_autofl.run.processes import Watch, exit_text, python_env, run_tree

pytestmark = pytest.mark.subprocess  # process trees, prefork, the evaluator: seconds each

# Like NVFlare's simulator: the child starts a grandchild in a new session, which a process-group kill misses.
HANGING_TREE = textwrap.dedent(
    """
    import subprocess, sys, time
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    print("Round 0 started.", flush=True)
    time.sleep(600)
    """
)


def test_timeout_kills_the_whole_tree_including_new_sessions(tmp_path):
    lines = []
    started = time.monotonic()
    result = run_tree(
        [sys.executable, "-c", HANGING_TREE],
        cwd=tmp_path,
        env=python_env([]),
        log_path=tmp_path / "log.txt",
        timeout=3.0,
        on_line=lines.append,
    )
    assert result.timed_out and result.returncode is None
    assert result.killed == 3  # the guard, the child and its grandchild in a new session
    assert "Round 0 started." in lines
    assert time.monotonic() - started < 20
    time.sleep(0.5)
    leftovers = [
        p for p in psutil.process_iter(["cmdline"]) if "time.sleep(600)" in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []


def test_a_normal_exit_reports_the_code_and_leaves_nothing(tmp_path):
    result = run_tree(
        [sys.executable, "-c", "import sys; print('hi'); sys.exit(3)"],
        cwd=tmp_path,
        env=python_env([tmp_path], EXTRA="1"),
        log_path=tmp_path / "log.txt",
        timeout=30,
    )
    assert (result.returncode, result.timed_out, result.killed) == (3, False, 0)
    assert (tmp_path / "log.txt").read_text().strip() == "hi"


def test_child_env_puts_paths_first(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/already")
    env = python_env([tmp_path], FOO="bar")
    assert env["PYTHONPATH"].split(":") == [str(tmp_path), "/already"] and env["FOO"] == "bar"


# Candidates that take the machine: each grows slowly enough for a measurement to see it, and forever.
GREEDY = {
    "memory": "import time\nheld = []\nwhile True:\n    held.append(bytearray(32 << 20))\n    time.sleep(0.05)",
    "processes": textwrap.dedent(
        """
        import os, time
        while True:
            if os.fork() == 0:
                time.sleep(600)
                os._exit(0)
            time.sleep(0.02)
        """
    ),
    "disk": textwrap.dedent(
        """
        import time
        for i in range(10000):
            with open(f"chunk-{i}", "wb") as fh:
                fh.write(b"x" * (1 << 20))
            time.sleep(0.01)
        """
    ),
}


def _limited(tmp_path, code: str):
    """``code`` as a tree under small limits: 256 MiB, 12 processes, 24 MiB of disk in ``tmp_path``."""
    return run_tree(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=python_env([]),
        log_path=tmp_path / "log.txt",
        timeout=120,
        watch=Watch(Limits(memory_mb=256, processes=12, disk_mb=24), tmp_path),
    )


@pytest.mark.parametrize("resource", sorted(GREEDY))
def test_a_tree_past_its_limit_is_stopped_and_named(tmp_path, resource):
    started = time.monotonic()
    result = _limited(tmp_path, GREEDY[resource])
    named = {"memory": "memory limit", "processes": "process limit", "disk": "disk limit"}[resource]
    assert result.exceeded is not None and result.exceeded.startswith(named), result
    assert result.returncode is None and not result.timed_out
    assert time.monotonic() - started < 60
    time.sleep(0.5)
    left = [
        p
        for p in psutil.process_iter(["cmdline"])
        if GREEDY[resource][:40] in " ".join(p.info["cmdline"] or [])
    ]
    assert left == []


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("bytearray(6 << 30)", "MemoryError"),  # one allocation past the address-space backstop
        ("open('big', 'wb').write(b'x' * (40 << 20))", "File too large"),  # one file past the disk limit
    ],
)
def test_the_kernel_refuses_a_single_process_past_its_limits_at_once(tmp_path, code, error):
    result = _limited(tmp_path, code)
    assert result.returncode == 1 and error in (tmp_path / "log.txt").read_text()


@pytest.mark.parametrize(
    ("code", "said"),
    [
        (1, "code 1"),
        (137, "code 137 (killed by SIGKILL)"),
        (-15, "code -15 (killed by SIGTERM)"),
        (200, "code 200"),
    ],
)
def test_an_exit_status_names_the_signal_that_ended_it(code, said):
    assert exit_text(code) == said
