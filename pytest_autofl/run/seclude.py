"""Each client sees only its own shard; the server sees none. Linux namespaces inside the sandbox, set up by
``prefork`` before any candidate code runs.

The sandbox shows the run's shard directory read-only to the whole simulation. ``prefork``'s launcher takes a
user and mount namespace of its own while it is still single-threaded (``own_namespace``: the capability to
mount, in it only), and becomes undumpable, so no process of the run can read its memory or file descriptors.
The process that runs the simulator (the server) and every client worker then each take a private mount
namespace in which every shard but their own is covered by an empty file, and drop every capability
(``hide``): the cover cannot be lifted, and a new process inherits it. Linux only; needs unprivileged user
namespaces, as bubblewrap does.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence

CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC = 1, 32, 4096, 16384
PR_SET_DUMPABLE = 4
_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def undumpable() -> None:
    """No other process of our user may ptrace us or open our /proc files (memory, file descriptors, root)."""
    _check(_libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")


def own_namespace() -> None:
    """Enter a new user and mount namespace with the same user and group: this process (single-threaded) and
    the processes it forks may mount in it, and nowhere else."""
    uid, gid = os.geteuid(), os.getegid()
    _check(_libc().unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(user, mount namespace)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(text)


def hide(directory: str, keep: str | None, pins: Sequence[tuple[str, str]] = ()) -> None:
    """Cover every entry of ``directory`` but ``keep`` with an empty file, and each pin's target with its
    source, read-only, in a mount namespace of this process only; then drop every capability so nothing can
    uncover them. Call single-threaded, in ``own_namespace``."""
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS), "unshare(mount namespace)")
    for name in sorted(os.listdir(directory)):
        if name != keep:
            path = os.path.join(directory, name).encode()
            _check(libc.mount(b"/dev/null", path, None, MS_BIND, None), f"covering {name}")
    for source, target in pins:
        _check(
            libc.mount(source.encode(), target.encode(), None, MS_BIND | MS_REC, None), f"pinning {target}"
        )
        _read_only(libc, target)
    header, data = _CapHeader(_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    _check(libc.capset(ctypes.byref(header), data), "capset")


def _read_only(libc: ctypes.CDLL, target: str) -> None:
    """A bind mount keeps its source's flags (the sandbox's read-only binds stay read-only); else remount it
    read-only, keeping the flags a user namespace may not drop."""
    flags = os.statvfs(target).f_flag
    if not flags & os.ST_RDONLY:
        kept = flags & (os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC)  # the same bits as MS_NOSUID, ...
        kept |= sum(ms for st, ms in _ATIME if flags & st)
        _check(libc.mount(None, target.encode(), None, MS_BIND | MS_REMOUNT | MS_RDONLY | kept, None), target)
    if not os.statvfs(target).f_flag & os.ST_RDONLY:
        raise OSError(0, f"{target} is still writable")


_ATIME = ((os.ST_NOATIME, 1024), (os.ST_NODIRATIME, 2048), (os.ST_RELATIME, 1 << 21))

# A seccomp filter (classic BPF over ``struct seccomp_data``: nr at 0, arch at 4, args[0] at 16): threads yes,
# new processes no. Per architecture: its audit id, clone, clone3 and the fork-like calls it has.
_ARCHES = {
    "x86_64": (0xC000003E, 56, 435, (57, 58)),
    "aarch64": (0xC00000B7, 220, 435, ()),
}
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_EPERM, _ENOSYS, _CLONE_THREAD = 1, 38, 0x00010000
_LD, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2


class _Filter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter))]


def _program(machine: str) -> list[tuple[int, int, int, int]]:
    arch, clone, clone3, forks = _ARCHES[machine]
    deny, nosys, allow = (_RET, 0, 0, _ERRNO | _EPERM), (_RET, 0, 0, _ERRNO | _ENOSYS), (_RET, 0, 0, _ALLOW)
    tail = [(_LD, 0, 0, 16), (_JSET, 0, 1, _CLONE_THREAD), allow, deny]  # clone: a thread, or refused
    body = [(_JEQ, 0, 1, nr) for nr in forks]  # each: refused if equal
    program = [(_LD, 0, 0, 4), (_JEQ, 1, 0, arch), deny, (_LD, 0, 0, 0)]
    if machine == "x86_64":  # the x32 ABI's numbers
        program += [(_JGE, 0, 1, 0x40000000), deny]
    program += [(_JEQ, 0, 1, clone3), nosys]  # glibc falls back to clone, which the tail judges
    for check in body:
        program += [check, deny]
    program += [(_JEQ, 1, 0, clone), allow, *tail]
    return program


def no_new_processes() -> None:
    """From now on this thread, and every thread it starts, may start threads but no process (fork, vfork,
    clone without CLONE_THREAD: EPERM): the kernel's seccomp, which nothing can lift. Single-threaded callers
    cover the whole process. Raises OSError where seccomp or the architecture is not supported."""
    machine = os.uname().machine
    if machine not in _ARCHES:
        raise OSError(0, f"no seccomp filter for {machine}")
    rows = _program(machine)
    filters = (_Filter * len(rows))(*(_Filter(*row) for row in rows))
    program = _Program(len(rows), filters)
    libc = _libc()
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0), "seccomp")
