"""A client's trainer process: what crosses its socket (``wire``: trees of numbers, strings and arrays, never
a pickle), what it may not do (start a process: ``seclude.no_new_processes``), and when it runs (only in the
windows its executor measures: ``trainer_process``)."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_autofl.run import wire

scalars = st.none() | st.booleans() | st.integers(-(2**62), 2**62) | st.floats(allow_nan=False) | st.text()
arrays = st.integers(0, 5).map(lambda n: np.arange(n * 3, dtype=np.float32).reshape(n, 3))
trees = st.recursive(
    scalars | arrays, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(), kids, max_size=3)
)


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


@given(trees)
def test_a_message_arrives_as_it_was_sent(tree):
    assert _same(wire.decode(wire.encode(tree)), tree)


def test_tensors_and_numpy_scalars_travel_as_arrays_and_numbers():
    sent = {"params": {"w": torch.ones(2, 2)}, "meta": {"steps": np.int64(7), "c": (np.zeros(3),)}}
    got = wire.decode(wire.encode(sent))
    assert np.array_equal(got["params"]["w"], np.ones((2, 2), dtype=np.float32))
    assert got["meta"]["steps"] == 7 and isinstance(got["meta"]["c"], list)


@pytest.mark.parametrize("value", [object(), {"f": print}, np.array([object()]), {1, 2}])
def test_anything_else_is_refused_before_it_is_sent(value):
    with pytest.raises(wire.WireError, match="cannot send"):
        wire.encode(value)


def test_a_pickle_is_never_loaded():
    buffer = io.BytesIO()
    np.savez(buffer, a0=np.array([{"x": 1}], dtype=object), __tree__=np.frombuffer(b'{"a": "a0"}', np.uint8))
    with pytest.raises(wire.WireError, match="not a message"):
        wire.decode(buffer.getvalue())
    for garbage in (b"", b"PK\x03\x04 not a zip", wire.encode(1)[:-5]):
        with pytest.raises(wire.WireError):
            wire.decode(garbage)


def test_a_frame_cut_short_or_too_large_is_an_error_and_a_clean_close_is_the_end():
    left, right = socket.socketpair()
    wire.send(left, {"kind": "task"})
    assert wire.receive(right) == {"kind": "task"}
    left.sendall((10).to_bytes(8, "big") + b"abc")
    left.close()
    with pytest.raises(wire.WireError, match="closed inside a message"):
        wire.receive(right)
    a, b = socket.socketpair()
    a.sendall((wire.MAX_BYTES + 1).to_bytes(8, "big"))
    with pytest.raises(wire.WireError, match="cap"):
        wire.receive(b)
    a.close()
    c, d = socket.socketpair()
    c.close()
    assert wire.receive(d) is None


@pytest.mark.subprocess
def test_a_trainer_may_start_threads_but_no_process():
    code = """
import os, subprocess, threading, multiprocessing
from pytest_autofl.run import seclude
seclude.no_new_processes()
done = []
t = threading.Thread(target=lambda: done.append(1)); t.start(); t.join()
assert done == [1]
for start in (os.fork, lambda: subprocess.run(["true"]), lambda: os.posix_spawn("/bin/true", ["true"], {}),
              lambda: multiprocessing.Process(target=print).start()):
    try:
        start()
    except OSError as exc:
        assert exc.errno == 1, exc
    else:
        raise SystemExit("a process was started")
print("refused")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "refused", done.stderr


SCRIPT = """
import pathlib, sys, time
pathlib.Path(sys.argv[1]).write_text("the script ran")
import nvflare.client as flare
import torch  # noqa: F401  (what receive() gives: torch tensors in an FLModel)
from nvflare.app_common.abstract.fl_model import FLModel  # noqa: F401

def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass

burn(0.3)  # its start-up: work before it asks for a task (pretraining, say)
while flare.is_running():
    model = flare.receive()
    burn(0.1)
    flare.send(model)
"""


@pytest.mark.subprocess
def test_the_script_runs_nothing_before_its_start_up_window_and_each_window_holds_its_own_work(tmp_path):
    from nvflare.apis.signal import Signal

    from pytest_autofl.run.trainer_process import TrainerProcess

    script, marker = tmp_path / "client.py", tmp_path / "ran"
    script.write_text(SCRIPT)
    trainer = TrainerProcess(f"{sys.executable} -u", str(script), str(marker), launch_timeout=60.0)
    trainer.launch(dict(os.environ), str(tmp_path))
    abort = Signal()
    try:
        time.sleep(1.0)  # launched at the run's start; its first task comes later
        assert trainer.connected(abort)
        assert not marker.exists()  # connected, and nothing of the script ran: it waits for its start-up
        assert trainer.start_up(abort) and marker.exists()
        fields = {"params": None, "params_type": None, "meta": {}, "current_round": 0, "total_rounds": 1}
        reply = trainer.task({"kind": "task", "task": "train", "site": "site-1", "model": fields}, abort)
        assert reply is not None and reply["kind"] == "result"
        start_up, task = trainer.windows
        assert (
            start_up >= 0.3 and 0.1 <= task < 0.3
        )  # each window its own work: the start-up's not in the task's
    finally:
        trainer.stop()


@pytest.mark.subprocess
def test_a_trainer_the_run_never_started_ends_at_once_and_quietly(tmp_path):
    """A run that ends before a site's first task (a server that failed, say): its trainer, connected but
    never accepted, is told so by the listener closing, not killed after the stop timeout."""
    from pytest_autofl.run.trainer_process import TrainerProcess

    script = tmp_path / "client.py"
    script.write_text(SCRIPT)
    trainer = TrainerProcess(f"{sys.executable} -u", str(script), str(tmp_path / "ran"), launch_timeout=60.0)
    trainer.launch(dict(os.environ), str(tmp_path))
    process = trainer._process
    time.sleep(1.0)  # connected and waiting to be started
    trainer.stop()
    assert process is not None and process.returncode == 0  # not -9: it ended, it was not killed
    assert not (tmp_path / "ran").exists()
