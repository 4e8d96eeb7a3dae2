"""Options and ini keys (one table: flag, ini key, default, help), parsed once into ``Settings``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_autofl.plugin.planned import count, planned, read_program, source, switch, tracking_uri, value

PER_CORE = 3  # simulations per core for --autofl-parallel=auto: a run keeps a core busy ~1/3 of its wall time


@dataclass(frozen=True)
class Settings:
    iterations: int
    benchmark: str
    benchmarks_dir: Path
    surface_dir: Path
    workdir: Path
    ledger: Path
    check: bool
    calibrate: bool
    rerun: str | None
    candidates_dir: Path
    force: bool
    report_dir: Path | None
    json: bool
    parallel: int
    env: str
    startup_kit: Path | None
    preload: bool
    proposer: str
    sandbox: str
    screen: bool
    mlflow: str | None  # a tracking URI, "local" (a file store in the workdir), or None: no MLflow runs
    proposer_options: Any  # proposers.base.ProposerOptions (imported when read: options stay light)

    @property
    def searching(self) -> bool:
        """A search or a rerun: candidate items run, everything else is deselected."""
        return self.iterations > 0 or self.rerun is not None


SETTINGS = pytest.StashKey[Settings]()

_OPTIONS = (
    # (flag, ini key, default, help)
    (
        "--autofl-iterations",
        "autofl_iterations",
        "0",
        "search: run N candidates as test items (0 = no search; the normal test suite runs)",
    ),
    (
        "--autofl-benchmark",
        "autofl_benchmark",
        "digits",
        "benchmark contract to use (a directory under autofl_benchmarks_dir)",
    ),
    ("--autofl-workdir", "autofl_workdir", ".autofl", "where trial workspaces, logs and data shards go"),
    ("--autofl-ledger", "autofl_ledger", "results.tsv", "the ledger (TSV) every verdict is appended to"),
    (
        "--autofl-parallel",
        "autofl_parallel",
        "auto",
        "NVFlare simulations run side by side per pytest process (an integer, or 'auto': 3 per core, "
        "shared among pytest-xdist workers)",
    ),
    (
        "--autofl-env",
        "autofl_env",
        "sim",
        "where simulations run: sim (NVFlare SimEnv), poc (a POC deployment started for the session) or prod "
        "(an existing deployment, via --autofl-startup-kit)",
    ),
    (
        "--autofl-startup-kit",
        "autofl_startup_kit",
        "",
        "admin startup kit directory of the deployment --autofl-env prod submits jobs to",
    ),
    (
        "--autofl-preload",
        "autofl_preload",
        "on",
        "sim only: import torch and nvflare once per simulation and fork the simulator's worker processes "
        "from that process (on), or let every process import them itself as plain SimEnv does (off)",
    ),
    (
        "--autofl-proposer",
        "autofl_proposer",
        "builtin",
        "who proposes the search's candidates: a registered proposer (builtin, optuna, hybrid, llm; others "
        "from installed packages or a conftest.py hook)",
    ),
    (
        "--autofl-sampler",
        "autofl_sampler",
        "tpe",
        "the sampler of the optuna and hybrid proposers: tpe, cmaes, gp, random or qmc",
    ),
    (
        "--autofl-proposer-seed",
        "autofl_proposer_seed",
        "auto",
        "the builtin, optuna and hybrid proposers' random seed (auto: from the contract hash)",
    ),
    (
        "--autofl-sandbox",
        "autofl_sandbox",
        "auto",
        "run candidate code (job export, FLARE server and clients, predict) in a bubblewrap sandbox: auto (when "
        "bwrap works; code changes are refused when it does not), on (required), off (never; code changes run "
        "unsandboxed)",
    ),
    (
        "--autofl-llm-model",
        "autofl_llm_model",
        "",
        "the model the llm proposer asks (endpoint: OPENAI_BASE_URL)",
    ),
    ("--autofl-llm-timeout", "autofl_llm_timeout", "60", "seconds the llm proposer waits for one answer"),
    ("--autofl-llm-retries", "autofl_llm_retries", "2", "retries of a failed call (429, 5xx, connection)"),
    ("--autofl-llm-max-calls", "autofl_llm_max_calls", "200", "llm calls per session, repair turns included"),
    (
        "--autofl-llm-max-tokens",
        "autofl_llm_max_tokens",
        "2000000",
        "llm tokens (prompt + answer) per session",
    ),
    (
        "--autofl-screen",
        "autofl_screen",
        "on",
        "run the contract's screen (if it names one) before a candidate's seeds: on, off",
    ),
    (
        "--autofl-program",
        "autofl_program",
        "program.md",
        "the research program: its front matter caps and narrows the campaign, its prose goes to the llm "
        "proposer word for word (missing file: none)",
    ),
    (
        "--autofl-report",
        "autofl_report",
        "",
        "after a session, write report.md, report.json and progress.png into this directory ('' = none)",
    ),
)


_SWITCHES = (
    (
        "--autofl-check",
        "validate contract, schema, surface and ledger without training; exit 1 on any violation",
    ),
    (
        "--autofl-calibrate",
        "measure the contract's noise floor again (A/A baseline runs) even if it is cached",
    ),
    (
        "--autofl-force",
        "run a candidate file even if the ledger already has a row for the same knobs under this contract",
    ),
    (
        "--autofl-json",
        "print the session's report facts as one JSON line, the last line of stdout (for CI systems)",
    ),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("autofl", "pytest-autofl: federated-learning experiments on NVIDIA FLARE")
    for flag, ini, default, text in _OPTIONS:
        group.addoption(
            flag,
            dest=ini,
            default=None,
            metavar=ini.split("_", 1)[1].upper(),
            help=f"{text}. Default: {default!r} (ini: {ini})",
        )
        parser.addini(ini, f"{text} (command line: {flag})", default=default)
    for flag, text in _SWITCHES:
        group.addoption(flag, dest=flag[2:].replace("-", "_"), action="store_true", default=False, help=text)
    group.addoption(
        "--autofl-rerun",
        dest="autofl_rerun",
        default=None,
        metavar="ID",
        help="re-run one ledger row (candidate_id or row_id) on exactly its seeds and check the scores reproduce",
    )
    group.addoption(
        "--autofl-mlflow",
        dest="autofl_mlflow",
        nargs="?",
        const="local",
        default=None,
        metavar="URI",
        help="one MLflow run per candidate (knobs, verdict, interval, seeds, per-round curves) at this tracking "
        "URI; the bare flag: a file store in the workdir (ini: autofl_mlflow)",
    )
    parser.addini("autofl_mlflow", "MLflow tracking URI for one run per candidate ('' = none)", default="")
    parser.addini(
        "autofl_candidates_dir", "directory whose *.yaml files are candidate test items", default="candidates"
    )
    parser.addini("autofl_benchmarks_dir", "directory holding benchmark contracts", default="benchmarks")
    parser.addini(
        "autofl_cards_dir",
        "the literature loop's method cards (*.yaml) run on a plateau",
        default="skills/literature/cards",
    )
    parser.addini("autofl_surface_dir", "directory holding the mutation surface", default="surfaces")


def read_settings(config: pytest.Config) -> Settings:
    root = config.rootpath
    program = read_program(config, root / value(config, "autofl_program"))
    iterations = count(config, "autofl_iterations", 0)
    if iterations and config.getoption("autofl_rerun"):
        raise pytest.UsageError(
            "--autofl-rerun runs one recorded candidate; do not combine it with --autofl-iterations"
        )
    return Settings(
        iterations=min(iterations, program.max_iterations or iterations),
        benchmark=planned(config, "autofl_benchmark", program, strict=True),
        benchmarks_dir=root / str(config.getini("autofl_benchmarks_dir")),
        surface_dir=root / str(config.getini("autofl_surface_dir")),
        workdir=root / value(config, "autofl_workdir"),
        ledger=root / value(config, "autofl_ledger"),
        check=bool(config.getoption("autofl_check")),
        calibrate=bool(config.getoption("autofl_calibrate")),
        rerun=config.getoption("autofl_rerun"),
        candidates_dir=root / str(config.getini("autofl_candidates_dir")),
        force=bool(config.getoption("autofl_force")),
        report_dir=root / report if (report := value(config, "autofl_report")) else None,
        json=bool(config.getoption("autofl_json")),
        parallel=_parallel(config),
        env=value(config, "autofl_env"),
        startup_kit=root / kit if (kit := value(config, "autofl_startup_kit")) else None,
        preload=switch(config, "autofl_preload"),
        proposer=planned(config, "autofl_proposer", program, strict=False),
        sandbox=value(config, "autofl_sandbox"),
        screen=switch(config, "autofl_screen"),
        mlflow=tracking_uri(config, root),
        proposer_options=_proposer_options(config, program, root),
    )


def _proposer_options(config: pytest.Config, program: Any, root: Path) -> Any:
    from pytest_autofl.proposers.base import SAMPLER_NAMES, LLMSettings, ProposerOptions

    timeout = value(config, "autofl_llm_timeout")
    try:
        seconds = float(timeout)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise pytest.UsageError(
            f"{source(config, 'autofl_llm_timeout')} must be a positive number of seconds, got {timeout!r}"
        )
    llm = LLMSettings(
        model=value(config, "autofl_llm_model"),
        timeout=seconds,
        retries=count(config, "autofl_llm_retries", 0),
        max_calls=min(count(config, "autofl_llm_max_calls", 1), program.max_llm_calls or 10**12),
        max_tokens=min(count(config, "autofl_llm_max_tokens", 1), program.max_llm_tokens or 10**12),
    )
    if (sampler := value(config, "autofl_sampler")) not in SAMPLER_NAMES:
        raise pytest.UsageError(
            f"{source(config, 'autofl_sampler')} must be one of {', '.join(SAMPLER_NAMES)}, got {sampler!r}"
        )
    seed = count(config, "autofl_proposer_seed", 0, auto=-1)
    cards = root / str(config.getini("autofl_cards_dir"))
    return ProposerOptions(llm, program, cards, sampler=sampler, seed=None if seed < 0 else seed)


def _parallel(config: pytest.Config) -> int:
    workers = int((worker_input(config) or {}).get("workercount", 1))
    return count(config, "autofl_parallel", 1, auto=max(1, (os.cpu_count() or 1) * PER_CORE // workers))


def worker_input(config: pytest.Config) -> dict[str, Any] | None:
    """The pytest-xdist worker's input, or None on the controller and in a run without xdist: the one place
    that tells which role this process has."""
    return getattr(config, "workerinput", None)


def uses_xdist(config: pytest.Config) -> bool:
    return worker_input(config) is not None or bool(config.getoption("numprocesses", None))
