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


class ProposerError(AutoFLError):
    """A proposer could not make a candidate."""


class ProposalRejected(ProposerError):
    """A proposal failed validation after its repair turns; ``candidate`` stands for it in an ``invalid`` row
    (its transcript goes to the trial)."""

    def __init__(self, reason: str, candidate: object):
        super().__init__(reason)
        self.candidate = candidate


class ProposerStopped(ProposerError):
    """The proposer reached a cap (calls, tokens): the search stops proposing, cleanly."""


class ProposerUnavailable(ProposerError):
    """The proposer's endpoint failed (after its retries): this item fails, no row is written."""
