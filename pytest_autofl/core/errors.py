"""One error family, so the plugin can turn any of them into a clear one-line message."""

from __future__ import annotations


class AutoFLError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""


class ContractError(AutoFLError):
    """The benchmark contract is missing, malformed or tampered with."""


class SchemaError(AutoFLError):
    """The mutation schema is malformed, or a candidate breaks it."""


class LedgerError(AutoFLError):
    """The ledger file cannot be read or appended safely."""
