"""The ledger: the typed ``Row`` (the only place that knows the columns), the locked append-only TSV store, and
the ledger as a typed pandas frame for analysis. Imports neither pytest, nvflare nor torch."""
