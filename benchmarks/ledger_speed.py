"""Ledger speed as it grows: reading, validating and the typed load of a 10,000-row ``results.tsv`` beside a bare
``pandas.read_csv`` of the same file, and the cost of one append to a small and to a large ledger.

    python benchmarks/ledger_speed.py [--rows 10000] [--appends 20]

Rows are realistic (every column set, chained with a harness key as a search writes them). Prints one line per
operation: CPU seconds (best of 5), and the ratio to ``pandas.read_csv``; appends: milliseconds (wall, with fsync) of a
session's first append (a whole check) and of each after it, at 100 rows and at ``--rows``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_autofl.ledger import chain, store, writer  # noqa: E402
from pytest_autofl.ledger.analysis import load_ledger  # noqa: E402
from pytest_autofl.ledger.row import Row  # noqa: E402


def a_row(i: int) -> Row:
    scores = {s: 0.5 + 0.001 * ((i * 7 + s) % 97) for s in range(3)}
    return Row(
        status=("keep", "discard", "narrow", "crash")[i % 4],
        candidate_id=f"fedprox-mu{i}-{i:06x}",
        params={"aggregator": "fedprox", "mu": 0.01 * (i % 10), "lr": 0.05, "local_epochs": 2},
        description=f"FedProx mu={0.01 * (i % 10):.2f}, lr 0.05, two local epochs (candidate {i})",
        target="digits-skew: accuracy higher is better",
        budget="rounds=4 clients=3 epochs=1 batch=32 seeds=3",
        score=sum(scores.values()) / 3,
        runtime_seconds=41.5,
        artifacts=(f".autofl/trials/{i:06d}",),
        seed_scores=scores,
        reason="paired 95% interval [+0.001, +0.030] above the threshold 0.012",
        contract_sha="c" * 64,
        split_sha="s" * 64,
        benchmark="digits-skew",
        env="simulator",
        delta=0.012,
        ci_low=0.001,
        ci_high=0.03,
        noise=0.02,
        threshold=0.012,
        incumbent_id="baseline-000000",
        n_params=4810,
        comm_bytes=1.2e6,
        cost_ratio=1.01,
        seconds_per_run=13.8,
        surface_sha="f" * 64,
        proposer="builtin",
        commit="abc1234",
        nvflare_version="2.9.0",
        torch_version="2.13.0+cpu",
        timestamp_utc="2026-12-02T12:00:00Z",
        row_id=f"host:{i}:{i:032x}",
        sandbox="bwrap",
        cpu_seconds=30.5,
    )


def timed(fn: Callable[[], object], repeat: int = 5) -> float:
    """Best CPU time of ``repeat`` calls: stable on a busy machine, and every reader here is one thread."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def append_ms(path: Path, seal: writer.Seal, start: int, n: int) -> tuple[float, float]:
    """Milliseconds of a session's first append (it checks the whole file) and the mean of the ``n - 1``
    after it (each checks only what came after its own last row)."""
    session = writer.LedgerWriter(path, seal)
    times = []
    for i in range(start, start + n):
        began = time.perf_counter()
        session.write(a_row(i))
        times.append((time.perf_counter() - began) * 1000)
    return times[0], sum(times[1:]) / (n - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--appends", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work, path = Path(tmp) / "work", Path(tmp) / "results.tsv"
        seal = writer.Seal.of(work, path)
        small = append_ms(path, seal, 0, 100)  # also the first 100 rows of the large ledger
        started = time.perf_counter()
        tip = seal.tip(store.read_fields(path))
        with open(
            path, "a", encoding="utf-8"
        ) as fh:  # the rest as a search would chain them, written at once
            for i in range(100, args.rows):
                fields = a_row(i).fields()
                fields["chain"] = tip = chain.link(seal.key, tip, fields, store.COLUMNS)
                fh.write(store.format_row(fields))
        chain.save_head(seal.head, args.rows, tip)
        print(
            f"built {args.rows} rows ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s"
        )
        bare = timed(lambda: pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3))
        print(f"{'pandas.read_csv (bare)':<28} {bare:7.3f} s   1.0x")
        for name, fn in (
            ("read_fields", lambda: store.read_fields(path)),
            ("read_rows (typed Row)", lambda: store.read_rows(path)),
            ("validate", lambda: store.validate(path)),
            ("seal.verify (chain)", lambda: seal.verify(path)),
            ("load_ledger (typed pandas)", lambda: load_ledger(path)),
        ):
            seconds = timed(fn)
            print(f"{name:<28} {seconds:7.3f} s {seconds / bare:5.1f}x")
        large = append_ms(path, seal, args.rows, args.appends)
        for rows, (first, then) in ((100, small), (args.rows + args.appends, large)):
            print(
                f"append to {rows:>6} rows       first {first:6.2f} ms, then {then:5.2f} ms each (sealed, fsync)"
            )


if __name__ == "__main__":
    main()
