"""The candidate test: each item of `pytest --autofl-iterations=N` is one candidate of the search
(and `pytest --autofl-rerun ID` is one exact rerun of a ledger row).

The harness proposes the candidate, runs it on every contract seed in real NVFlare simulations, scores the
final global model on its own validation set, and checks the fairness invariants from what the runs did.
The verdict (keep / narrow / discard / crash / invalid) is written to the ledger whatever the outcome here.
"""


def test_candidate(autofl_trial):
    result = autofl_trial.run()
    assert result.error is None, f"crash: {result.error}"
    assert not result.violations, "fairness invariant violated: " + "; ".join(result.violations)
    assert not result.mismatches, "does not reproduce its ledger row: " + "; ".join(result.mismatches)
