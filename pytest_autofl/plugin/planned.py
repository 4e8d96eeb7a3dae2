"""Option values as the session uses them: the command line, else what ``program.md`` plans, else the ini file
(or its default), read as the type each option has (a malformed value is a usage error naming the option).
The program's front matter is read once, here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def value(config: pytest.Config, ini: str) -> str:
    cli = config.getoption(ini)
    return str(cli if cli is not None else config.getini(ini))


def read_program(config: pytest.Config, path: Path) -> Any:
    """The control.program.Program at ``path`` (none there: an empty program); malformed is a usage error."""
    from pytest_autofl.control.program import ProgramError, load

    try:
        return load(path)
    except ProgramError as exc:
        raise pytest.UsageError(str(exc)) from None


def planned(config: pytest.Config, ini: str, program: Any, strict: bool) -> str:
    """The option ``ini`` (benchmark or proposer) where the program may name it. An explicit command line or ini
    value wins; with ``strict`` a different one is an error (the program's knobs and files are about its own
    benchmark)."""
    wanted = getattr(program, ini.removeprefix("autofl_"))
    if wanted is None:
        return value(config, ini)
    if config.getoption(ini) is None and ini not in config.inicfg:
        return str(wanted)
    chosen = value(config, ini)
    if strict and chosen != wanted:
        raise pytest.UsageError(
            f"{program.path}: the program is about {ini.removeprefix('autofl_')} {wanted!r}, but {chosen!r} "
            "was asked for; pass --autofl-program with a program for that one"
        )
    return chosen


def source(config: pytest.Config, ini: str) -> str:
    """Where a bad value of ``ini`` came from, as an error names it: the flag, or the ini key and its file (not
    given on the command line, it is from the file: the defaults are valid)."""
    if config.getoption(ini) is None and config.inipath is not None:
        return f"{ini} (in {config.inipath.name})"
    return "--" + ini.replace("_", "-")


def switch(config: pytest.Config, ini: str) -> bool:
    raw = value(config, ini).lower()
    if raw not in ("on", "off"):
        raise pytest.UsageError(f"{source(config, ini)} must be on or off, got {raw!r}")
    return raw == "on"


def count(config: pytest.Config, ini: str, minimum: int, auto: int | None = None) -> int:
    """An integer option (at least ``minimum``), or ``auto`` when the option allows it."""
    raw, flag = value(config, ini), source(config, ini)
    if auto is not None and raw == "auto":
        return auto
    try:
        number = int(raw)
    except ValueError:
        also = " or 'auto'" if auto is not None else ""
        raise pytest.UsageError(f"{flag} must be an integer{also}, got {raw!r}") from None
    if number < minimum:
        raise pytest.UsageError(f"{flag} must be >= {minimum}, got {number}")
    return number


def tracking_uri(config: pytest.Config, root: Path) -> str | None:
    """The MLflow tracking URI; a bare ``--autofl-mlflow`` before a test path would take the path as its URI."""
    uri = value(config, "autofl_mlflow")
    if uri and ":" not in uri and (root / uri).exists():
        raise pytest.UsageError(
            f"--autofl-mlflow took {uri!r} (a path in the project) as its tracking URI; "
            "write --autofl-mlflow=URI, or put the bare flag after the test paths"
        )
    return uri or None
