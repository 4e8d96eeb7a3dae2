"""Option values as the session uses them: the command line, else what ``program.md`` plans, else the ini file
(or its default). The program's front matter is read once, here."""

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
