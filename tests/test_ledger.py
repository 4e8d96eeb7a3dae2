from __future__ import annotations

import multiprocessing
import os
import time

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_autofl.core.errors import LedgerError
from pytest_autofl.ledger import store as ledger
from pytest_autofl.ledger import writer
from pytest_autofl.ledger.columns import COLUMNS_0_2, EARLIER_COLUMNS


def row(i: int, **extra):
    base = {c: "" for c in ledger.COLUMNS}
    base.update(
        commit="abc",
        score=f"{i / 100:.6f}",
        runtime_seconds="1.0",
        status="keep",
        candidate_id=f"c{i}",
        row_id=f"test:{os.getpid()}:{i}",
    )
    base.update(extra)
    return base


def test_first_eight_columns_are_nvflare_autofl_layout():
    assert ledger.COLUMNS[:8] == (
        "commit",
        "score",
        "runtime_seconds",
        "budget",
        "status",
        "target",
        "description",
        "artifacts",
    )


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_any_text_round_trips(tmp_path, text):
    path = tmp_path / f"r{abs(hash(text))}.tsv"
    path.unlink(missing_ok=True)  # a replayed example starts from an empty ledger too
    writer.append_fields(path, row(1, description=text, reason=text + "\t\n\\"))
    (back,) = ledger.read_fields(path)
    assert back["description"] == text and back["reason"] == text + "\t\n\\"
    assert path.read_text().count("\n") == 2  # header + exactly one line per row


def test_pandas_reads_it(tmp_path):
    path = tmp_path / "results.tsv"
    for i in range(3):
        writer.append_fields(
            path, row(i, params='{"lr": 0.05, "aggregator": "fedavg"}', description='"quoted"')
        )
    frame = pd.read_csv(path, sep="\t", keep_default_na=False, dtype=str)  # no pytest-autofl code involved
    assert list(frame.columns) == list(ledger.COLUMNS)
    assert frame["params"].iloc[0] == '{"lr": 0.05, "aggregator": "fedavg"}'
    assert frame["description"].iloc[2] == '"quoted"'
    assert ledger.validate(path) == []


def test_foreign_header_is_refused_and_never_overwritten(tmp_path):
    path = tmp_path / "results.tsv"
    original = "\t".join(ledger.AUTOFL_RESEARCH_COLUMNS) + "\nabc\t0.9\t1\tb\tkeep\tt\td\ta\n"
    path.write_text(original)
    with pytest.raises(LedgerError, match="NVFlare Auto-FL ledger"):
        writer.append_fields(path, row(1))
    assert path.read_text() == original


def test_malformed_middle_row_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "results.tsv"
    writer.append_fields(path, row(1))
    writer.append_fields(path, row(2))
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = "only\tthree\tfields\n"
    broken = "".join(lines)
    path.write_text(broken)
    with pytest.raises(LedgerError, match=r"results.tsv:2: malformed row: 3 fields"):
        writer.append_fields(path, row(3))
    assert path.read_text() == broken
    assert "malformed row" in ledger.validate(path)[0]


def test_torn_tail_from_a_killed_writer_is_set_aside(tmp_path):
    path = tmp_path / "results.tsv"
    writer.append_fields(path, row(1))
    with open(path, "a") as fh:
        fh.write("abc\t0.5\tpartial")  # a writer died mid-row
    assert len(ledger.read_fields(path)) == 1
    writer.append_fields(path, row(2))
    assert [r["candidate_id"] for r in ledger.read_fields(path)] == ["c1", "c2"]
    (aside,) = tmp_path.glob("results.tsv.torn-*")
    assert aside.read_text() == "abc\t0.5\tpartial"


def test_validate_flags_bad_status_numbers_and_duplicates(tmp_path):
    path = tmp_path / "results.tsv"
    writer.append_fields(path, row(1, status="maybe"))
    writer.append_fields(path, row(2, score="high", row_id="dup"))
    writer.append_fields(path, row(3, row_id="dup"))
    problems = "\n".join(ledger.validate(path))
    assert "unknown status 'maybe'" in problems
    assert "column score = 'high'" in problems
    assert "duplicate row_id 'dup'" in problems


def _writer(path: str, worker: int, count: int, spans: multiprocessing.Queue) -> None:
    from pathlib import Path

    for i in range(count):
        writer.append_fields(Path(path), row(worker * 1000 + i, row_id=f"w{worker}:{i}"))
        spans.put(worker)


@pytest.mark.subprocess
def test_concurrent_writers_lose_and_duplicate_nothing(tmp_path):
    path = tmp_path / "results.tsv"
    ctx = multiprocessing.get_context("spawn")
    spans = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(path), w, 25, spans)) for w in range(4)]
    started = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows = ledger.read_fields(path)
    assert len(rows) == 100
    assert len({r["row_id"] for r in rows}) == 100
    assert ledger.validate(path) == []
    assert time.monotonic() - started < 120


def _earlier_ledger(path, rows):
    """A ledger written by the release before the proposer/source/cites columns."""
    lines = ["\t".join(EARLIER_COLUMNS)]
    lines += ["\t".join(r[c] for c in EARLIER_COLUMNS) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def test_an_earlier_ledger_is_read_and_upgraded_once_on_its_next_append(tmp_path):
    path = tmp_path / "results.tsv"
    old = [row(1, seed_scores='{"0": 0.5}'), row(2)]
    _earlier_ledger(path, old)
    assert [r["candidate_id"] for r in ledger.read_fields(path)] == ["c1", "c2"]
    assert ledger.read_fields(path)[0]["proposer"] == "" and ledger.validate(path) == []
    writer.append_fields(path, row(3, proposer="builtin", source="narrow", cites='["Li 2020"]'))
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == list(ledger.COLUMNS)
    back = ledger.read_fields(path)
    assert [r["candidate_id"] for r in back] == ["c1", "c2", "c3"]
    assert back[2]["source"] == "narrow" and back[0]["seed_scores"] == '{"0": 0.5}'
    (kept,) = tmp_path.glob("results.tsv.earlier-*")  # the original, untouched, beside it
    assert kept.read_text().splitlines()[0].split("\t") == list(EARLIER_COLUMNS)


def test_a_chained_ledger_of_0_2_gains_the_cpu_column_and_its_chain_still_holds(tmp_path):
    path = tmp_path / "results.tsv"
    seal = writer.Seal.of(tmp_path / ".autofl", path)
    for i in (1, 2):
        writer.append_fields(path, row(i), seal)
    cut = len(COLUMNS_0_2)  # the same rows as 0.2 wrote them: no cpu_seconds column
    path.write_text(
        "".join("\t".join(line.split("\t")[:cut]) + "\n" for line in path.read_text().splitlines())
    )
    assert seal.verify(path) == []
    writer.append_fields(path, row(3, cpu_seconds="8.25"), seal)
    assert seal.verify(path) == [] and ledger.read_rows(path)[2].cpu_seconds == 8.25
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace("\t8.25", "\t1.00")  # a measured cost is chained like every other field
    path.write_text("\n".join(lines) + "\n")
    assert "results.tsv:4: its chain does not verify" in seal.verify(path)[0]


def test_a_row_that_does_not_parse_stops_typed_reading_with_its_line(tmp_path):
    path = tmp_path / "results.tsv"
    writer.append_fields(path, row(1))
    writer.append_fields(path, row(2, seed_scores="{not json"))
    with pytest.raises(LedgerError, match=r"results.tsv:3: column seed_scores = .* is not JSON"):
        ledger.read_rows(path)
    assert "results.tsv:3: column seed_scores" in ledger.validate(path)[0]


_finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(
    status=st.sampled_from(["keep", "narrow", "discard", "crash", "invalid"]),
    score=st.none() | _finite,
    scores=st.dictionaries(st.integers(0, 2000), _finite, max_size=6),
    delta=st.none() | _finite,
    n_params=st.none() | st.integers(0, 10**9),
    text=st.text(max_size=30),
    cites=st.lists(st.text(max_size=20), max_size=3),
)
def test_a_row_reads_back_as_it_was_written(status, score, scores, delta, n_params, text, cites):
    from pytest_autofl.ledger.row import Row

    written = Row(
        status=status,
        candidate_id="c-1",
        params={"lr": 0.05, "aggregator": "fedavg"},
        description=text,
        target="knobs: lr",
        budget="clients=4",
        score=score,
        runtime_seconds=1.25,
        artifacts=("a/b", "a/b/seed-0/run.log"),
        seed_scores=scores,
        reason=text,
        contract_sha="0" * 64,
        split_sha="1" * 64,
        benchmark="digits",
        env="sim",
        delta=delta,
        n_params=n_params,
        confirm={"seeds": [1000], "candidate": {"1000": 0.5}, "incumbent": {"1000": 0.4}},
        cites=tuple(cites),
    ).fields()
    again = Row.parse(written)
    assert again.fields() == written  # formatting is a fixed point: nothing drifts through a round trip
    assert again.cites == tuple(cites) and again.status == status


def _sealed(tmp_path, n):
    path = tmp_path / "results.tsv"
    seal = writer.Seal.of(tmp_path / ".autofl", path)
    for i in range(n):
        writer.append_fields(path, row(i, description=f"candidate {i}"), seal)
    return path, seal


def _rewrite(path, mutate):
    header, *lines = path.read_text().splitlines()
    path.write_text("\n".join([header, *mutate(lines)]) + "\n")


TAMPERING = {
    "edited": lambda lines: [lines[0], lines[1].replace("candidate 1", "candidate 9"), *lines[2:]],
    "reordered": lambda lines: [lines[0], lines[2], lines[1], *lines[3:]],
    "deleted in the middle": lambda lines: [lines[0], *lines[2:]],
    "deleted at the end": lambda lines: lines[:-1],
    "forged and appended": lambda lines: [*lines, lines[-1].replace("candidate 3", "forged")],
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_a_tampered_ledger_is_named_with_its_line_and_nothing_is_appended(tmp_path, how):
    path, seal = _sealed(tmp_path, 4)
    assert seal.verify(path) == []
    _rewrite(path, TAMPERING[how])
    problems = seal.verify(path)
    assert problems, how
    assert "results.tsv:" in problems[0]
    before = path.read_text()
    with pytest.raises(LedgerError, match="Nothing was appended"):
        writer.append_fields(path, row(7), seal)
    assert path.read_text() == before


def test_a_row_from_another_writer_is_caught_and_rows_before_chaining_are_covered(tmp_path):
    path = tmp_path / "results.tsv"
    _earlier_ledger(path, [row(1), row(2)])  # rows from before chaining: no chain
    seal = writer.Seal.of(tmp_path / ".autofl", path)
    writer.append_fields(path, row(3), seal)
    assert seal.verify(path) == []
    writer.append_fields(path, row(4))  # the harness' own code, without the key
    assert "results.tsv:5: a row without a chain after chained rows" in seal.verify(path)[0]
    _rewrite(path, lambda lines: [lines[0].replace("c1", "cX"), *lines[1:3]])  # an earlier row edited
    assert "results.tsv:4: its chain does not verify" in seal.verify(path)[0]


def test_a_search_refuses_a_tampered_ledger_before_anything_runs(make_session, tmp_path):
    s = make_session()
    s.record(s.run(s.next_candidate(), 1))
    _rewrite(tmp_path / "results.tsv", lambda lines: [lines[0].replace("\tkeep\t", "\tdiscard\t")])
    with pytest.raises(LedgerError, match="results.tsv:2: its chain does not verify"):
        make_session()
