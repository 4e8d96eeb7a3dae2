from __future__ import annotations

import sys
import textwrap
import time

import psutil
import pytest

from pytest_autofl.run.processes import python_env, run_tree

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
