"""``--autofl-proposer hybrid``: the built-in calibration walk over the canonical FL families first (cheap,
well-known hypotheses that find the large gains early), then an Optuna sampler (``--autofl-sampler``, TPE by
default) told every row, the walk's included: it models the space from informed points instead of spending its
random start-up on them."""

from __future__ import annotations

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.ledger.row import Row
from pytest_autofl.proposers.base import CampaignView, ProposerSetup
from pytest_autofl.proposers.builtin import BuiltinProposer
from pytest_autofl.proposers.optuna_study import OptunaProposer


class HybridProposer:
    """Registered as ``hybrid``: each step is proposed (and recorded) by the member that made it."""

    def __init__(self, setup: ProposerSetup):
        self.families, self.sampler = BuiltinProposer(setup), OptunaProposer(setup)

    def propose(self, view: CampaignView) -> Candidate:
        return self.families.walk(view.tried()) or self.sampler.propose(view)

    def tell(self, view: CampaignView, row: Row) -> None:
        self.sampler.tell(view, row)
