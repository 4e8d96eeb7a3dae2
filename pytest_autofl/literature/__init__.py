"""The literature loop: a library of cited method cards (each runnable on the surface as three linked
candidates) and the review that, on a plateau, scores the cards against what the ledger shows."""
