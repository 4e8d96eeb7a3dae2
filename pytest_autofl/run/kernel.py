"""What the kernel says about a process, for the harness' accounting: who is at the other end of a Unix
socket, a process' parent and state, and its CPU clock. Linux; stdlib only (the zygote imports it)."""

from __future__ import annotations

import socket
import struct
import time

_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_pid(conn: socket.socket) -> int:
    """The process at the other end of ``conn`` when it connected (``SO_PEERCRED``: not the peer's word)."""
    return int(_CREDS.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDS.size))[0])


def _stat(pid: int) -> list[bytes]:
    """``/proc/PID/stat`` after the command name (which may hold spaces and parentheses); [] once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return []


def parent(pid: int) -> int:
    """The parent of ``pid``; 0 once it is gone."""
    fields = _stat(pid)
    return int(fields[1]) if len(fields) > 1 else 0


def stopped(pid: int) -> bool:
    """``pid`` is stopped, dead or gone: it runs nothing."""
    fields = _stat(pid)
    return not fields or fields[0] in (b"T", b"t", b"Z", b"X")


def cpu_seconds(pid: int) -> float:
    """The CPU seconds of every thread of ``pid`` so far (its process CPU clock, in nanoseconds); 0 if gone."""
    try:
        return time.clock_gettime(((~pid) << 3) | 2)  # CPUCLOCK_SCHED of the whole thread group
    except OSError:
        return 0.0
