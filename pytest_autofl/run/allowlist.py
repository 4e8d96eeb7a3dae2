"""The sandbox's root, built up from nothing (bubblewrap starts from an empty tmpfs): the operating system's
``/usr``, the interpreter and its standard library, and of the installed packages only the distributions the
candidate processes run on (``RUNTIME`` and everything they require, by their metadata), with every
site-packages directory emptied first. Nothing else of the machine: no ``/opt``, ``/home``, ``/root``,
``/srv``, ``/var``, caches, other environments, checkouts or ``.git`` — so no copy of a data set anywhere on
the machine is there to be read. A path it cannot place is not mounted (fail closed).

What each sandboxed process also gets (its trial, its shards, the harness' own modules) ``sandbox`` adds.
"""

from __future__ import annotations

import functools
import importlib.metadata as metadata
import os
import site
import sys
import sysconfig
import tempfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

# What a candidate process imports beyond the standard library: FLARE and its simulator, the surface's torch
# and numpy, and psutil (prefork's zygote). A surface that imports more must name it (``extra``).
RUNTIME = ("nvflare", "torch", "numpy", "psutil")
_HOST_LINKS = ("bin", "lib", "lib32", "lib64", "libx32", "sbin")  # /bin -> usr/bin on merged-/usr systems
_ETC = {
    "hosts": "127.0.0.1 localhost\n::1 localhost\n",
    "passwd": "sandbox:x:{uid}:{gid}:sandbox:/tmp:/bin/false\n",
    "group": "sandbox:x:{gid}:\n",
}


def closure(roots: tuple[str, ...]) -> tuple[metadata.Distribution, ...]:
    """The installed distributions ``roots`` name and everything they require (markers evaluated here, no
    extras); a requirement that is not installed is skipped (it was optional)."""
    env = {str(k): str(v) for k, v in default_environment().items()} | {"extra": ""}
    seen: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[name] = dist
        for text in dist.requires or []:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is None or req.marker.evaluate(env):
                todo.append(req.name)
    return tuple(seen[k] for k in sorted(seen))


def entries(dist: metadata.Distribution) -> set[Path]:
    """The top-level files and directories a distribution installed in its site-packages (its modules, its
    data, its ``.dist-info``), without scripts elsewhere, ``.pth`` files or caches."""
    base = Path(str(dist.locate_file(""))).resolve()
    out = set()
    for file in dist.files or []:
        parts = Path(str(file)).parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith(".pth"):
            continue
        out.add(base / parts[0])
    return {p for p in out if p.exists()}


def _site_dirs() -> list[Path]:
    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    dirs += [sysconfig.get_paths()[k] for k in ("purelib", "platlib")]
    return sorted({Path(d).resolve() for d in dirs if os.path.isdir(d)})


def _etc_dir() -> Path:
    """The sandbox's own /etc files (localhost, one user), written once per user."""
    uid, gid = os.getuid() or 65534, os.getgid() or 65534
    directory = Path(tempfile.gettempdir()) / f"autofl-sandbox-etc-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    for name, text in _ETC.items():
        path, content = directory / name, text.format(uid=uid, gid=gid)
        if not path.is_file() or path.read_text() != content:
            path.write_text(content)
    return directory


def _interpreter() -> list[str]:
    """The interpreter as ``sys.executable`` names it (a virtualenv's links too) and its standard library."""
    mounts = _links_to(Path(sys.executable))
    base = Path(os.path.realpath(sys.base_prefix))
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    mounts += [("--ro-bind", str(stdlib), str(stdlib))]
    for packages in ("site-packages", "dist-packages"):  # the base interpreter's own installs: not shown
        if (stdlib / packages).is_dir():
            mounts += [("--tmpfs", str(stdlib / packages))]
    mounts += [("--ro-bind", str(lib), str(lib)) for lib in sorted((base / "lib").glob("libpython*"))]
    if sys.prefix != sys.base_prefix:  # a virtualenv: its config and its bin/python* links
        prefix = Path(sys.prefix)
        mounts += [("--ro-bind", str(prefix / "pyvenv.cfg"), str(prefix / "pyvenv.cfg"))]
        for entry in sorted((prefix / "bin").glob("python*")):
            mounts += _links_to(entry)
    return [arg for mount in dict.fromkeys(mounts) for arg in mount]  # each once: bwrap links only once


def _links_to(path: Path) -> list[tuple[str, ...]]:
    """``path`` as it resolves: each symbolic link on the way as a link, then the file itself."""
    mounts: list[tuple[str, ...]] = []
    for _ in range(40):
        if not path.is_symlink():
            break
        target = os.readlink(path)
        mounts.append(("--symlink", target, str(path)))
        path = Path(os.path.normpath(path.parent / target))
    return [*mounts, ("--ro-bind", str(path), str(path))]


@functools.cache
def root(extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The bwrap arguments that build the root (before the process' own binds), and ``extra`` distributions."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in _HOST_LINKS:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/etc"]
    for name in ("ld.so.cache", "nsswitch.conf", "localtime"):
        if os.path.exists(f"/etc/{name}"):
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    etc = _etc_dir()
    for name in _ETC:
        args += ["--ro-bind", str(etc / name), f"/etc/{name}"]
    args += _interpreter()
    for directory in _site_dirs():  # emptied (one under /usr would show all its packages), then refilled
        args += ["--tmpfs", str(directory)]
    shown = sorted({p for dist in closure((*RUNTIME, *extra)) for p in entries(dist)})
    for path in shown:
        args += ["--ro-bind", str(path), str(path)]
    return tuple(args)


def mounted(path: str, args: tuple[str, ...]) -> bool:
    """Whether ``path`` lies under a source the root binds (then hiding it takes a mount of its own)."""
    sources = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--ro-bind"]
    real = os.path.realpath(path)
    return any(real == s or real.startswith(s.rstrip("/") + "/") for s in sources)
