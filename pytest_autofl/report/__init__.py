"""What a campaign shows people, built from the ledger alone: report facts, markdown, the progress plot and
the terminal summary."""
