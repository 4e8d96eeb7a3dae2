"""The campaign report (report.json, report.md, progress.png) and ``python -m pytest_autofl report``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
from test_analysis import FIXTURE, make_row, write

from pytest_autofl.__main__ import main
from pytest_autofl.report import facts as report

SMOKE = report.Scoring("validation accuracy", True, 0.95, from_contract=True)


def test_facts_of_a_real_search():
    facts, frame = report.build_facts(FIXTURE, SMOKE)
    assert len(frame) == facts["rows"] == 20 and facts["benchmark"] == "digits-smoke"
    assert facts["verdicts"] == {
        "keep": 2,
        "narrow": 9,
        "discard": 9,
        "screened": 0,
        "crash": 0,
        "invalid": 0,
        "literature": 0,
    }
    assert facts["baseline"]["candidate_id"] == "fedavg-ac1112cfb0"
    assert facts["baseline"]["seed_scores"] == {0: 0.200557, 1: 0.29805}
    best = facts["best"]
    assert best["candidate_id"] == "fedavg+mlp_wide-d8ac2bbd47" and best["line"] == 15
    assert best["gain_vs_baseline"] == pytest.approx(0.616992 - 0.249304, abs=1e-6)
    iv = best["interval_vs_baseline"]
    assert iv["n_shared_seeds"] == 2 and iv["low"] < best["gain_vs_baseline"] < iv["high"]
    assert best["reproduce"] == (
        f"pytest --autofl-benchmark digits-smoke --autofl-ledger {FIXTURE} --autofl-rerun vm:5246:3742e836bcf9"
    )
    assert facts["noise"] == {"sd": 0.068938, "threshold": 0.034469}
    assert facts["environments"] == ["sim"]
    assert (
        facts["runtime"]["seed_runs"] == 42
    )  # 2 seeds per row + one fresh confirmation seed per keep, both sides
    assert facts["runtime"]["total_seconds"] == pytest.approx(frame["runtime_seconds"].sum())
    assert [t["rank"] for t in facts["top"]] == [1, 2, 3, 4, 5]
    assert [t["score"] for t in facts["top"]] == sorted((t["score"] for t in facts["top"]), reverse=True)
    assert facts["top"][0]["candidate_id"] == "fedavg+mlp_wide-3fc7f4afdc"
    families = {f["family"]: f for f in facts["families"]}
    assert families["fedavg+mlp_wide"]["candidates"] == 6 and families["fedavg+mlp_wide"]["keep"] == 1
    assert sum(f["candidates"] for f in facts["families"]) == 20
    assert [p["frontier"] for p in facts["progress"]][:14] == [0.249304] * 13 + [0.616992]
    json.dumps(facts)  # JSON-ready, no NaN / numpy values


def test_written_report_has_the_facts(tmp_path):
    facts = report.write_report(FIXTURE, tmp_path / "out", SMOKE)
    out = tmp_path / "out"
    assert json.loads((out / report.REPORT_JSON).read_text()) == json.loads(json.dumps(facts))
    md = (out / report.REPORT_MD).read_text()
    for text in (
        "# pytest-autofl report: digits-smoke",
        "Best kept `fedavg+mlp_wide-d8ac2bbd47` (arch=mlp_wide, momentum=0.99, weight_decay=9.03e-07): "
        "validation accuracy 0.6170 vs baseline `fedavg-ac1112cfb0` 0.2493, gain +0.3677, 95% paired t-interval",
        "| 2 | 9 | 9 | 0 | 0 |",
        "| fedavg+mlp_wide | 6 | 1 | 2 | 3 | 0 | 0 | 0.6240 | +0.3747 |",
        "16.3 min of candidate time over 42 FLARE runs (mean 19.7 s per run).",
        "--autofl-rerun vm:5246:45f1ac910496",
        "![progress](progress.png)",
    ):
        assert text in md
    png = out / report.PROGRESS_PNG
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(png).shape
    assert (width, height) == (1320, 616)
    assert not list(out.glob(".*.tmp"))  # written atomically, nothing left over


def test_failures_literature_and_direction(tmp_path):
    path = write(
        tmp_path / "results.tsv",
        [
            make_row(1, "keep", 0.50, target="baseline", noise="0.020000"),
            make_row(2, "crash", None),
            make_row(3, "invalid", None, description="bad | file"),
            make_row(4, "keep", 0.40, incumbent_id="fedavg-0000000001"),
            make_row(5, "literature", None, event="lit-0001", description="literature review: label skew"),
            make_row(6, "narrow", 0.45, event="lit-0001", description="FedLC faithful"),
        ],
    )
    lower = report.Scoring("loss", False, 0.9, from_contract=True)
    facts = report.write_report(
        path, tmp_path / "out", lower, session={"row_ids": ["host:1:6"], "test": None}
    )
    assert facts["best"]["gain_vs_baseline"] == pytest.approx(0.10)  # lower is better: 0.40 beats 0.50
    assert facts["best"]["interval_vs_baseline"]["confidence"] == 0.9
    assert [e["line"] for e in facts["literature_events"]] == [6]
    assert facts["top"][0]["score"] == 0.40 and len(facts["top"]) == 3  # crash / invalid never rank
    assert facts["session"]["row_ids"] == ["host:1:6"]
    assert [x["line"] for x in facts["literature_events"][0]["linked"]] == [7]
    md = (tmp_path / "out" / report.REPORT_MD).read_text()
    assert "## Literature loop" in md and "- line 6: **lit-0001** literature review: label skew" in md
    assert "  - line 7: `fedavg-0000000006` narrow 0.4500: FedLC faithful" in md
    assert "loss (lower is better)" in md
    assert (tmp_path / "out" / report.PROGRESS_PNG).stat().st_size > 10_000


def test_nothing_kept_yet(tmp_path):
    path = write(tmp_path / "results.tsv", [make_row(1, "crash", None)])
    facts = report.write_report(path, tmp_path / "out", report.Scoring())
    assert facts["best"] is None and facts["baseline"] is None and facts["top"] == []
    md = (tmp_path / "out" / report.REPORT_MD).read_text()
    assert "No candidate was kept yet" in md
    assert "higher is better (assumed: the benchmark contract was not found)" in md


def test_scoring_comes_from_the_contract(repo):
    scoring = report.scoring_for(repo / "benchmarks", "digits-smoke")
    assert scoring == report.Scoring("validation accuracy", True, 0.95, from_contract=True)
    assert report.scoring_for(repo / "benchmarks", "gone") == report.Scoring()


def test_cli_regenerates_the_report_from_the_ledger_alone(tmp_path, repo, capsys, monkeypatch):
    monkeypatch.chdir(repo)  # finds benchmarks/digits-smoke for the metric
    assert main(["report", str(FIXTURE), "--out", str(tmp_path / "a")]) == 0
    assert "report.md" in capsys.readouterr().out
    assert main(["report", str(FIXTURE), "--out", str(tmp_path / "b"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    first = json.loads((tmp_path / "a" / report.REPORT_JSON).read_text())
    for facts in (first, printed):
        facts.pop("generated_utc")
    assert printed == first  # the same ledger gives the same report
    assert first["metric"] == {"name": "validation accuracy", "higher_is_better": True, "from_contract": True}


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("commit\tscore\n")
    assert main(["report", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("autofl report: ") and "not a pytest-autofl ledger header" in err
    assert not (tmp_path / "o").exists()  # nothing half-written
    assert main(["report", str(FIXTURE), "--benchmark", "digits", "--out", str(tmp_path / "o")]) == 2
    assert "the ledger has: digits-smoke (b046ccf40e5c)" in capsys.readouterr().err


@pytest.mark.subprocess
def test_module_entry_point(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pytest_autofl", "report", str(FIXTURE), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "assumed higher-is-better" in done.stderr  # run outside the project: no contract to read
    assert {p.name for p in Path(tmp_path).iterdir()} >= {"report.md", "report.json", "progress.png"}
