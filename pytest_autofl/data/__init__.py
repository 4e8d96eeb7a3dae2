"""The harness' data: the data-set registry and the contract's split (held-out sets, client shards)."""
