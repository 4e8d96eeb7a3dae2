"""Candidate files: knobs, replacement surface files, and everything that must be refused (no NVFlare)."""

from __future__ import annotations

import shutil

import pytest
import yaml

from pytest_autofl.core.candidate import CandidateFactory
from pytest_autofl.core.errors import SchemaError
from pytest_autofl.core.schema import load_schema
from pytest_autofl.proposers.candidate_file import load_candidate_file


@pytest.fixture
def proposer(repo):
    return CandidateFactory(load_schema(repo / "surfaces"))


def write(tmp_path, data, name="cand.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_knob_candidate_keeps_the_builtin_id(proposer, tmp_path):
    cand = load_candidate_file(write(tmp_path, {"knobs": {"fedprox_mu": 0.01}, "cites": ["Li20"]}), proposer)
    assert cand.id == proposer.make({"fedprox_mu": 0.01}).id and cand.patch_sha == ""
    assert cand.description == "fedprox_mu=0.01 [src: Li20]"


def test_replacement_file_changes_the_id_and_carries_a_patch_sha(proposer, tmp_path, repo):
    text = (repo / "surfaces" / "strategies.py").read_text().replace("McMahan et al. 2017", "McMahan 2017")
    cand = load_candidate_file(write(tmp_path, {"knobs": {}, "files": {"strategies.py": text}}), proposer)
    assert cand.family == "fedavg+patch" and len(cand.patch_sha) == 64
    assert cand.key != proposer.make({}).key and cand.files == (("strategies.py", text),)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"../strategies.py": "x = 1\n"}, "not a plain surface file name"),
        ({"/etc/passwd": "x"}, "not a plain surface file name"),
        ({"..": "x"}, "not a plain surface file name"),
        ({"mutation_schema.yaml": "knobs: {}"}, "not a file the mutation schema lets a candidate change"),
        ({"evaluate.py": "x = 1\n"}, "not a file the mutation schema lets a candidate change"),
        (
            {
                "model.py": "class Net:\n    def __init__(self, arch, seed, in_features, num_classes): pass\n\x00"
            },
            "must be text",
        ),
        ({"model.py": "class Net:\n    def __init__(self, arch): pass\n"}, "AF130"),
        ({"strategies.py": "import subprocess\ndef build_aggregator(k): pass\n"}, "AF108"),
        ({"client_train.py": "def main(:\n"}, "AF100"),
    ],
)
def test_unsafe_or_contract_breaking_replacements_are_refused(proposer, tmp_path, files, message):
    with pytest.raises(SchemaError, match=message):
        load_candidate_file(write(tmp_path, {"knobs": {}, "files": files}), proposer)


def test_a_client_script_that_breaks_the_client_api_is_refused_with_rule_and_line(proposer, tmp_path, repo):
    text = (repo / "surfaces" / "client_train.py").read_text().replace("strict=True", "strict=False")
    with pytest.raises(SchemaError, match=r"cand.yaml:files:client_train.py:\d+: AF105"):
        load_candidate_file(write(tmp_path, {"files": {"client_train.py": text}}), proposer)


def test_a_symlinked_surface_file_is_not_patched(proposer, tmp_path, repo):
    surface = tmp_path / "surfaces"
    shutil.copytree(repo / "surfaces", surface)
    (surface / "strategies.py").unlink()
    (surface / "strategies.py").symlink_to(repo / "surfaces" / "strategies.py")
    text = (repo / "surfaces" / "strategies.py").read_text()
    with pytest.raises(SchemaError, match="is a symlink"):
        load_candidate_file(write(tmp_path, {"files": {"strategies.py": text}}), proposer, surface)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just\n- a list\n", "is a mapping"),
        ("knobs: {lr: 0.1}\nknob: {lr: 0.2}\n", r"unknown key\(s\) \['knob'\]"),
        ("knobs: [lr]\n", "'knobs' must be a mapping"),
        ("knobs: {}\ncites: 3\n", "'cites' must be a list of strings"),
        ("knobs: {lr: 0.1\n", "not a readable YAML candidate"),
    ],
)
def test_malformed_candidate_files_are_named(proposer, tmp_path, text, message):
    with pytest.raises(SchemaError, match=message):
        load_candidate_file(write(tmp_path, text), proposer)
