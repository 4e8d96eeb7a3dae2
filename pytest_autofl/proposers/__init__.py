"""The proposer family (``base``: the interface and the registry), the built-in member, and candidate files
(``candidate_file``, with strict ``patching``): candidates written by people or coding agents."""

from pytest_autofl.proposers.base import PROPOSERS
from pytest_autofl.proposers.builtin import BuiltinProposer

PROPOSERS.register("builtin", BuiltinProposer)
