"""Ports for side-by-side simulations: distinct across processes, outside the ephemeral range, held while
their owner lives."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pytest_autofl.run import ports

pytestmark = pytest.mark.subprocess  # process trees, prefork, the evaluator: seconds each


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv(ports.OWNER_ENV, raising=False)


def test_ports_come_from_below_the_ephemeral_range_and_are_held_for_their_owner():
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    first = ports.reserve(5)
    assert len(set(first)) == 5 and all(p < low for p in first) and all(p in ports.pool() for p in first)
    again = ports.reserve(200)
    assert not set(first) & set(again)  # we (the owner) are alive: our ports are not handed out twice
    ports.release(os.getpid())
    assert not list(ports._directory().glob("*.port"))


def test_a_dead_owners_ports_lapse(monkeypatch):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    monkeypatch.setenv(ports.OWNER_ENV, dead.stdout.strip())
    ports.reserve(3)
    monkeypatch.delenv(ports.OWNER_ENV)
    ports.reserve(1)  # cleans up reservations whose owner is gone
    owners = {entry.read_text() for entry in ports._directory().glob("*.port")}
    assert owners == {str(os.getpid())}


def test_processes_reserving_at_once_never_get_the_same_port(tmp_path):
    code = (
        "import sys, tempfile; tempfile.tempdir = sys.argv[1]\n"
        "from pytest_autofl.run import ports\n"
        "print(*ports.reserve(20))\n"
        "sys.stdin.read()\n"  # stay alive (the owner) until every process has reserved
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    lines = [p.stdout.readline() for p in procs]
    for p in procs:
        p.communicate("")
    got = [int(x) for line in lines for x in line.split()]
    assert len(got) == 120 and len(set(got)) == 120
