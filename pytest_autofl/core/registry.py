"""Named members of a plug-in family (proposers, data sets, environments): registered by this package, by a
``conftest.py`` hook, or by another installed package through an entry point group, e.g. in its
``pyproject.toml``::

    [project.entry-points."pytest_autofl.proposers"]
    mine = "my_package.proposer:MyProposer"
"""

from __future__ import annotations

from importlib import metadata
from typing import Generic, TypeVar

from pytest_autofl.core.errors import AutoFLError

T = TypeVar("T")


def _where(member: object) -> tuple[str, str] | int:
    """Where a member is defined (module and name), or the object itself for one without a definition."""
    module, name = getattr(member, "__module__", None), getattr(member, "__qualname__", None)
    return (module, name) if module and name else id(member)


class Registry(Generic[T]):
    def __init__(self, kind: str, group: str):
        self.kind, self.group = kind, group
        self._members: dict[str, T] = {}
        self._entry_points_loaded = False

    def register(self, name: str, member: T) -> None:
        """Add ``member`` under ``name``; a name is taken once (a second registration is an error, unless it
        is the same definition again: a ``conftest.py`` imported anew by an in-process pytest run)."""
        if name in self._members and _where(self._members[name]) != _where(member):
            raise AutoFLError(f"{self.kind} {name!r} is registered twice")
        self._members[name] = member

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for entry in metadata.entry_points(group=self.group):
            if entry.name not in self._members:
                try:
                    self._members[entry.name] = entry.load()
                except Exception as exc:  # a broken plug-in is named, not a traceback
                    raise AutoFLError(
                        f"{self.kind} {entry.name!r} from entry point {entry.value!r} does not load: "
                        f"{type(exc).__name__}: {exc}"
                    ) from None

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._members)

    def get(self, name: str) -> T:
        """The member called ``name``; an unknown name is an error listing the known ones."""
        if name not in self._members:
            self._load_entry_points()
        if name not in self._members:
            raise AutoFLError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}")
        return self._members[name]
