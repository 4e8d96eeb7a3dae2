"""Strict unified-diff patches: they apply exactly, or fail naming the hunk with the nearest lines."""

from __future__ import annotations

import difflib

import pytest
import yaml

from pytest_autofl.core.candidate import CandidateFactory
from pytest_autofl.core.errors import SchemaError
from pytest_autofl.core.schema import load_schema
from pytest_autofl.proposers.candidate_file import load_candidate_file
from pytest_autofl.proposers.patching import PatchError, apply, parse

TEXT = "".join(f"line {i}\n" for i in range(1, 31))


def diff_of(name, old, new):
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{name}", f"b/{name}"))


def test_a_diff_made_by_difflib_round_trips():
    new = TEXT.replace("line 3\n", "line three\n").replace("line 25\n", "line 25\nline 25b\n")
    assert apply({"s.py": TEXT}, diff_of("s.py", TEXT, new)) == {"s.py": new}


def test_a_hunk_shifted_by_earlier_edits_still_applies_exactly_once():
    new = TEXT.replace("line 20\n", "twenty\n")
    diff = diff_of("s.py", TEXT, new)
    moved = "extra\n" * 5 + TEXT
    assert apply({"s.py": moved}, diff)["s.py"] == "extra\n" * 5 + new


def test_a_hunk_that_does_not_apply_names_hunk_line_and_nearest_lines():
    diff = diff_of("s.py", TEXT, TEXT.replace("line 12\n", "twelve\n"))
    changed = TEXT.replace("line 11\n", "line eleven\n")
    with pytest.raises(PatchError) as info:
        apply({"s.py": changed}, diff)
    message = str(info.value)
    assert "hunk 1 of s.py (at line 9) does not apply: its context is not in the file" in message
    assert "nearest matching lines" in message and "line eleven" in message


def test_nothing_is_half_applied():
    good_then_bad = diff_of("s.py", TEXT, TEXT.replace("line 2\n", "two\n").replace("line 28\n", "x\n"))
    broken = TEXT.replace("line 27\n", "changed\n")
    with pytest.raises(PatchError, match="hunk 2 of s.py"):
        apply({"s.py": broken}, good_then_bad)


@pytest.mark.parametrize(
    ("diff", "message"),
    [
        ("not a diff\n", "no '--- / \\+\\+\\+' file"),
        ("--- a/s.py\n+++ b/t.py\n@@ -1 +1 @@\n-a\n+b\n", "renames"),
        ("--- a/../s.py\n+++ b/../s.py\n@@ -1 +1 @@\n-a\n+b\n", "unsafe path"),
        ("--- /etc/s.py\n+++ /etc/s.py\n@@ -1 +1 @@\n-a\n+b\n", "unsafe path"),
        ("--- /dev/null\n+++ b/s.py\n@@ -0,0 +1 @@\n+a\n", "creates or deletes"),
        ("diff --git a/s.py b/s.py\nGIT binary patch\nliteral 3\n", "binary patch"),
        ("--- a/s.py\n+++ b/s.py\n@@ -1,3 +1,3 @@\n-a\n+b\n", "shorter than its header"),
    ],
)
def test_malformed_and_unsafe_diffs_are_refused(diff, message):
    with pytest.raises(PatchError, match=message):
        parse(diff)


def test_candidate_file_patch_applies_to_the_surface_and_is_checked(repo, tmp_path):
    proposer = CandidateFactory(load_schema(repo / "surfaces"))
    source = (repo / "surfaces" / "strategies.py").read_text()
    edited = source.replace("McMahan et al. 2017", "McMahan et al. (2017)")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"patch": diff_of("strategies.py", source, edited)}))
    cand = load_candidate_file(path, proposer, repo / "surfaces")
    assert cand.files == (("strategies.py", edited),) and cand.family == "fedavg+patch"
    assert cand.diff == diff_of("strategies.py", source, edited)
    from pytest_autofl.run.runner import prepare_surface

    prepare_surface(repo / "surfaces", tmp_path / "trial", cand.files, cand.diff)
    assert (tmp_path / "trial" / "patch.diff").read_text() == cand.diff
    assert (tmp_path / "trial" / "autofl_surface" / "strategies.py").read_text() == edited
    assert (repo / "surfaces" / "strategies.py").read_text() == source  # only read, never written

    client = (repo / "surfaces" / "client_train.py").read_text()
    path.write_text(
        yaml.safe_dump(
            {"patch": diff_of("client_train.py", client, client.replace("strict=True", "strict=False"))}
        )
    )
    with pytest.raises(SchemaError, match="AF105"):
        load_candidate_file(path, proposer, repo / "surfaces")
    path.write_text(yaml.safe_dump({"patch": "--- a/evaluate.py\n+++ b/evaluate.py\n@@ -1 +1 @@\n-a\n+b\n"}))
    with pytest.raises(SchemaError, match="not files the mutation schema lets a candidate change"):
        load_candidate_file(path, proposer, repo / "surfaces")
    path.write_text(
        yaml.safe_dump({"patch": "--- a/../strategies.py\n+++ b/../strategies.py\n@@ -1 +1 @@\n-a\n+b\n"})
    )
    with pytest.raises(SchemaError, match="unsafe path"):
        load_candidate_file(path, proposer, repo / "surfaces")
    git_style = diff_of("surfaces/strategies.py", source, edited)  # git diff from the repo root
    path.write_text(yaml.safe_dump({"patch": git_style}))
    assert load_candidate_file(path, proposer, repo / "surfaces").files == (("strategies.py", edited),)
    stale = diff_of("strategies.py", source.replace("McMahan", "Mc Mahan"), edited)
    path.write_text(yaml.safe_dump({"patch": stale}))
    with pytest.raises(SchemaError, match=r"c.yaml: hunk 1 of strategies.py \(at line \d+\) does not apply"):
        load_candidate_file(path, proposer, repo / "surfaces")
