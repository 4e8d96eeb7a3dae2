"""The ledger's columns, in every layout a ledger of ours has had (an older file is upgraded on append)."""

from __future__ import annotations

# The first eight columns are NVFlare Auto-FL's research ledger, so its tools read ours.
AUTOFL_RESEARCH_COLUMNS = (
    "commit",
    "score",
    "runtime_seconds",
    "budget",
    "status",
    "target",
    "description",
    "artifacts",
)
EARLIER_COLUMNS = AUTOFL_RESEARCH_COLUMNS + (
    "candidate_id",
    "params",
    "seeds",
    "seed_scores",
    "delta",
    "ci_low",
    "ci_high",
    "n_seeds",
    "noise",
    "threshold",
    "incumbent_id",
    "reason",
    "n_params",
    "comm_bytes",
    "cost_ratio",
    "seconds_per_run",
    "confirm",
    "contract_sha",
    "split_sha",
    "surface_sha",
    "patch_sha",
    "benchmark",
    "env",
    "nvflare_version",
    "torch_version",
    "timestamp_utc",
    "row_id",
)
COLUMNS_0_2 = EARLIER_COLUMNS + ("proposer", "source", "cites", "sandbox", "chain")
COLUMNS_0_3 = COLUMNS_0_2 + ("cpu_seconds", "llm_calls", "llm_tokens_in", "llm_tokens_out", "llm_seconds")
COLUMNS_0_4 = COLUMNS_0_3 + ("event",)
COLUMNS_0_5 = COLUMNS_0_4 + ("screen_score", "screen_incumbent")
COLUMNS_0_6 = COLUMNS_0_5 + ("curves",)
COLUMNS = COLUMNS_0_6 + ("retries", "retry_reasons", "recovered", "infra")
# Every layout a ledger of ours has had, newest first: an older ledger gets the new columns (empty) at the end
# of every line on its next append. Columns after ``chain`` are chained as name=value when set (ledger.chain).
LAYOUTS = (COLUMNS, COLUMNS_0_6, COLUMNS_0_5, COLUMNS_0_4, COLUMNS_0_3, COLUMNS_0_2, EARLIER_COLUMNS)
NUMERIC_COLUMNS = (
    "score",
    "runtime_seconds",
    "delta",
    "ci_low",
    "ci_high",
    "n_seeds",
    "noise",
    "threshold",
    "n_params",
    "comm_bytes",
    "cost_ratio",
    "seconds_per_run",
    "cpu_seconds",
    "llm_calls",
    "llm_tokens_in",
    "llm_tokens_out",
    "llm_seconds",
    "screen_score",
    "screen_incumbent",
    "retries",
    "recovered",
)
