"""pytest hooks, options and fixtures for pytest-autofl. Thin by design: the logic lives in plain modules."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_autofl.core.errors import AutoFLError

SLOT_FIXTURE = "autofl_slot"
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

    @property
    def searching(self) -> bool:
        """A search or a rerun: candidate items run, everything else is deselected."""
        return self.iterations > 0 or self.rerun is not None


_EMIT_LOCK = threading.Lock()
settings_key = pytest.StashKey[Settings]()
session_key = pytest.StashKey[Any]()  # an AutoflSession, imported lazily to keep `pytest --help` fast
result_key = pytest.StashKey[Any]()  # the TrialResult of a candidate item
rerun_row_key = pytest.StashKey[dict[str, str]]()  # the ledger row --autofl-rerun reproduces
env_key = pytest.StashKey[Any]()  # the deployment.Environment; a POC deployment is stopped at the end
sigterm_key = pytest.StashKey[Any]()  # the SIGTERM handler a search replaced, restored at the end
ROW_PROPERTY = "autofl_row"  # user property carrying a verdict row from an xdist worker to the controller
facts_key = pytest.StashKey[dict[str, Any]]()  # the session's report facts, printed by --autofl-json

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
        "--autofl-report",
        "autofl_report",
        "",
        "after a session, write report.md, report.json and progress.png into this directory ('' = none)",
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
    group.addoption(
        "--autofl-check",
        dest="autofl_check",
        action="store_true",
        default=False,
        help="validate contract, schema, surface and ledger without training; exit 1 on any violation",
    )
    group.addoption(
        "--autofl-calibrate",
        dest="autofl_calibrate",
        action="store_true",
        default=False,
        help="measure the contract's noise floor again (A/A baseline runs) even if it is cached",
    )
    group.addoption(
        "--autofl-rerun",
        dest="autofl_rerun",
        default=None,
        metavar="ID",
        help="re-run one ledger row (candidate_id or row_id) on exactly its seeds and check the scores reproduce",
    )
    group.addoption(
        "--autofl-force",
        dest="autofl_force",
        action="store_true",
        default=False,
        help="run a candidate file even if the ledger already has a row for the same knobs under this contract",
    )
    group.addoption(
        "--autofl-json",
        dest="autofl_json",
        action="store_true",
        default=False,
        help="print the session's report facts as one JSON line, the last line of stdout (for CI systems)",
    )
    parser.addini(
        "autofl_candidates_dir", "directory whose *.yaml files are candidate test items", default="candidates"
    )
    parser.addini("autofl_benchmarks_dir", "directory holding benchmark contracts", default="benchmarks")
    parser.addini("autofl_surface_dir", "directory holding the mutation surface", default="surfaces")


def _value(config: pytest.Config, ini: str) -> str:
    cli = config.getoption(ini)
    return str(cli if cli is not None else config.getini(ini))


def _settings(config: pytest.Config) -> Settings:
    root = config.rootpath
    iterations = _count(config, "autofl_iterations", 0)
    if iterations and config.getoption("autofl_rerun"):
        raise pytest.UsageError(
            "--autofl-rerun runs one recorded candidate; do not combine it with --autofl-iterations"
        )
    return Settings(
        iterations=iterations,
        benchmark=_value(config, "autofl_benchmark"),
        benchmarks_dir=root / str(config.getini("autofl_benchmarks_dir")),
        surface_dir=root / str(config.getini("autofl_surface_dir")),
        workdir=root / _value(config, "autofl_workdir"),
        ledger=root / _value(config, "autofl_ledger"),
        check=bool(config.getoption("autofl_check")),
        calibrate=bool(config.getoption("autofl_calibrate")),
        rerun=config.getoption("autofl_rerun"),
        candidates_dir=root / str(config.getini("autofl_candidates_dir")),
        force=bool(config.getoption("autofl_force")),
        report_dir=root / report if (report := _value(config, "autofl_report")) else None,
        json=bool(config.getoption("autofl_json")),
        parallel=_parallel(config),
        env=_value(config, "autofl_env"),
        startup_kit=root / kit if (kit := _value(config, "autofl_startup_kit")) else None,
        preload=_switch(config, "autofl_preload"),
    )


def _switch(config: pytest.Config, ini: str) -> bool:
    raw = _value(config, ini).lower()
    if raw not in ("on", "off"):
        raise pytest.UsageError(f"--{ini.replace('_', '-')} must be on or off, got {raw!r}")
    return raw == "on"


def _count(config: pytest.Config, ini: str, minimum: int, auto: int | None = None) -> int:
    """An integer option (at least ``minimum``), or ``auto`` when the option allows it."""
    raw, flag = _value(config, ini), "--" + ini.replace("_", "-")
    if auto is not None and raw == "auto":
        return auto
    try:
        value = int(raw)
    except ValueError:
        also = " or 'auto'" if auto is not None else ""
        raise pytest.UsageError(f"{flag} must be an integer{also}, got {raw!r}") from None
    if value < minimum:
        raise pytest.UsageError(f"{flag} must be >= {minimum}, got {value}")
    return value


def _parallel(config: pytest.Config) -> int:
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    return _count(config, "autofl_parallel", 1, auto=max(1, (os.cpu_count() or 1) * PER_CORE // workers))


def _emitter(config: pytest.Config) -> Callable[[str], None]:
    """Progress lines that reach the terminal even while pytest captures the test's output (also from the
    threads of side-by-side seed runs, one whole line at a time). An xdist worker has no terminal of its own:
    its lines go to the stderr it shares with the controller, tagged with the worker id."""
    worker = getattr(config, "workerinput", None)

    def emit(line: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capman = config.pluginmanager.get_plugin("capturemanager")
        ctx = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
        with _EMIT_LOCK, ctx:
            if worker is not None:
                os.write(2, f"[{worker['workerid']}] {line}\n".encode())
            elif reporter is not None:
                reporter.ensure_newline()
                reporter.write_line(line)

    return emit


def _session(config: pytest.Config) -> Any:
    """The AutoflSession, created on first use (a search creates it in pytest_configure). An xdist worker
    shares the search with the others through a journal and leaves the ledger to the controller."""
    if session_key not in config.stash:
        from pytest_autofl.run.envs.poc import Environment
        from pytest_autofl.run.runner import CandidateRunner
        from pytest_autofl.search.campaign import AutoflSession
        from pytest_autofl.search.journal import Journal

        settings = config.stash[settings_key]
        worker = getattr(config, "workerinput", None)
        journal = (
            Journal(settings.workdir / "xdist" / f"{worker['testrunuid']}.jsonl", worker["workerid"])
            if worker
            else None
        )
        session = AutoflSession(
            rootdir=config.rootpath,
            benchmarks_dir=settings.benchmarks_dir,
            benchmark=settings.benchmark,
            surface_dir=settings.surface_dir,
            workdir=settings.workdir,
            ledger_path=settings.ledger,
            progress=_emitter(config),
            calibrate=settings.calibrate,
            force=settings.force,
            parallel=settings.parallel,
            journal=journal,
            writes_ledger=worker is None,
            env_name=settings.env,
        )
        environment = Environment(
            settings.env,
            settings.workdir,
            session.contract.num_clients,
            settings.startup_kit,
            settings.preload,
        )
        session.runner_factory = environment.runner_factory(CandidateRunner)
        config.stash[env_key] = environment
        config.stash[session_key] = session
    return config.stash[session_key]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "autofl: a pytest-autofl candidate (generated by --autofl-iterations)")
    settings = _settings(config)
    config.stash[settings_key] = settings
    if not settings.searching:
        return
    xdist = hasattr(config, "workerinput") or bool(config.getoption("numprocesses", None))
    if xdist and settings.rerun is not None:
        raise pytest.UsageError("--autofl-rerun runs one candidate; run it without pytest-xdist (-n)")
    if xdist and settings.env != "sim":
        raise pytest.UsageError(
            f"--autofl-env {settings.env} runs without pytest-xdist (-n): the deployment's job scheduler runs "
            "the seeds side by side (--autofl-parallel)"
        )
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(LedgerWriter(config), "autofl-ledger-writer")
        _stop_on_sigterm(config)
    try:
        session = _session(config)
        if settings.rerun is not None:
            config.stash[rerun_row_key] = session.find_row(settings.rerun)
    except AutoFLError as exc:
        raise pytest.UsageError(f"autofl: {exc}") from None


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--autofl-check`` is a mode like ``--fixtures``: it collects and trains nothing."""
    if not config.getoption("autofl_check"):
        return None
    from pytest_autofl.preflight import run_checks

    settings = _settings(config)
    passed, problems = run_checks(
        settings.benchmarks_dir,
        settings.benchmark,
        settings.surface_dir,
        settings.ledger,
        settings.candidates_dir,
    )
    for line in passed:
        print(f"autofl check ok: {line}")
    for line in problems:
        print(f"autofl check FAILED: {line}")
    if problems:
        print(f"autofl check: {len(problems)} violation(s); nothing was trained")
        return 1
    print("autofl check: contract, schema, surface and ledger are valid")
    return 0


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    settings = metafunc.config.stash[settings_key]
    if SLOT_FIXTURE not in metafunc.fixturenames or not settings.searching:
        return
    if rerun_row_key in metafunc.config.stash:
        metafunc.parametrize(
            SLOT_FIXTURE, [0], ids=[f"rerun-{metafunc.config.stash[rerun_row_key]['candidate_id']}"]
        )
    else:
        slots = list(range(1, settings.iterations + 1))
        metafunc.parametrize(SLOT_FIXTURE, slots, ids=[f"candidate-{i:02d}" for i in slots])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A search runs only the candidate items; a normal run never runs them."""
    searching = config.stash[settings_key].searching
    keep = [i for i in items if (SLOT_FIXTURE in getattr(i, "fixturenames", ())) == searching]
    if searching and not keep:
        raise pytest.UsageError(
            "autofl: --autofl-iterations was given but no collected test uses the autofl_trial fixture; "
            "run pytest from the project root (see README) or add a test like benchmarks/test_autofl.py"
        )
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


class CandidateFailure(Exception):
    """A candidate file's run failed (crash, invalid, rejected): reported as one line, not a traceback."""


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    settings = parent.config.stash[settings_key]
    if (
        file_path.suffix in (".yaml", ".yml")
        and file_path.parent.resolve() == settings.candidates_dir.resolve()
    ):
        return CandidateFile.from_parent(parent, path=file_path)
    return None


class CandidateFile(pytest.File):
    def collect(self) -> list[pytest.Item]:
        return [CandidateItem.from_parent(self, name=self.path.stem)]


class CandidateItem(pytest.Item):
    """One candidate file, run like a search candidate against the incumbent and recorded in the ledger."""

    def runtest(self) -> None:
        from pytest_autofl.proposers.candidate_file import load_candidate_file

        if hasattr(self.config, "workerinput"):
            raise CandidateFailure(
                "candidate files do not run under pytest-xdist (-n) yet: one incumbent per run"
            )
        try:
            session = _session(self.config)
        except AutoFLError as exc:
            raise CandidateFailure(f"autofl: {exc}") from None
        try:
            candidate = load_candidate_file(self.path, session.proposer, session.surface_dir)
        except AutoFLError as exc:
            session.reject(self.path.name, str(exc))
            raise CandidateFailure(f"rejected (recorded as invalid): {exc}") from None
        prior = session.prior_row(candidate)
        if prior and not self.config.stash[settings_key].force:
            pytest.skip(
                f"{candidate.id} already ran under this contract (row {prior['row_id']}, "
                f"{prior['status']}); --autofl-force runs it again"
            )
        baseline = session.proposer.make({})
        if session.incumbent is None and candidate.key != baseline.key:
            # A verdict needs an incumbent: the campaign's baseline (schema defaults) runs first, as its own row.
            base_verdict = session.record(session.run(baseline, len(session.results) + 1))
            if base_verdict.status != "keep":
                raise CandidateFailure(
                    f"the baseline could not run ({base_verdict.status}): {base_verdict.reason}"
                )
        result = session.run(candidate, len(session.results) + 1)
        verdict = session.record(result)
        _emitter(self.config)(
            f"[autofl] {self.path.name} -> {candidate.id}: {verdict.status.upper()} - {verdict.reason}"
        )
        if verdict.status in ("crash", "invalid"):
            raise CandidateFailure(f"{verdict.status}: {verdict.reason}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CandidateFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"autofl candidate file {self.path.name}"


@pytest.fixture(scope="session")
def autofl_contract(pytestconfig: pytest.Config) -> Any:
    """The active benchmark contract (a frozen value with ``sha``, ``seeds``, ``budget``, ...)."""
    from pytest_autofl.core.contract import load_contract

    if session_key in pytestconfig.stash:
        return pytestconfig.stash[session_key].contract
    settings = pytestconfig.stash[settings_key]
    return load_contract(settings.benchmarks_dir, settings.benchmark)


@pytest.fixture(scope="session")
def autofl_split(autofl_contract: Any) -> Any:
    """The contract's client split and held-out sets (row indices); ``.sha`` is the ``split_sha``."""
    from pytest_autofl.data.split import load_arrays, make_split

    return make_split(autofl_contract, load_arrays()[1])


@pytest.fixture
def autofl_slot() -> int:
    pytest.skip("candidate items exist only in a search: pytest --autofl-iterations=N")


class Trial:
    """What a candidate test item gets: ``run()`` proposes the next candidate and runs it for real."""

    def __init__(self, session: Any, slot: int, node: pytest.Item):
        self._session, self._slot, self._node = session, slot, node

    def run(self) -> Any:
        if rerun_row_key in self._node.config.stash:
            result = self._session.rerun(self._node.config.stash[rerun_row_key])
            self._node.stash[result_key] = result
            return result
        candidate = self._session.next_candidate()
        result = self._session.run(candidate, self._slot)
        self._node.stash[result_key] = result
        return result


@pytest.fixture
def autofl_trial(request: pytest.FixtureRequest, autofl_slot: int) -> Trial:
    return Trial(request.config.stash[session_key], autofl_slot, request.node)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # The verdict is decided and the ledger row written as soon as the candidate's call phase ends, so the
    # proposer sees it before the next item and an interrupted search loses no finished candidate.
    if call.when == "call" and result_key in item.stash and rerun_row_key in item.config.stash:
        result = item.stash[result_key]
        row = item.config.stash[rerun_row_key]
        if result.error or result.violations:
            outcome = "CRASH" if result.error else "INVALID"
        else:
            outcome = "DOES NOT REPRODUCE" if result.mismatches else "REPRODUCED"
        scores = ", ".join(f"seed {s}: {v:.6f}" for s, v in sorted(result.seed_scores.items()))
        _emitter(item.config)(
            f"[autofl rerun] {row['candidate_id']} (row {row['row_id']}): {outcome}; {scores} "
            f"(ledger score {row['score']}, tolerance {item.config.stash[session_key].contract.statistics['rerun_tolerance']:g})"
        )
    elif call.when == "call" and result_key in item.stash:
        result = item.stash[result_key]
        verdict = item.config.stash[session_key].record(result)
        report.user_properties.append(("autofl_candidate", result.candidate.id))
        report.user_properties.append(("autofl_verdict", verdict.status))
        report.user_properties.append((ROW_PROPERTY, result.row))  # the xdist controller writes it
        _emitter(item.config)(
            f"[autofl {result.slot:02d}] {result.candidate.id}: {verdict.status.upper()} - {verdict.reason}"
        )
    return report


class LedgerWriter:
    """Registered on the controller (or in a run without xdist): writes each verdict row that rides on a
    report to the ledger, once; the rows also feed the terminal summary."""

    def __init__(self, config: pytest.Config):
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == ROW_PROPERTY and isinstance(value, dict):
                _session(self.config).receive(value)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if session_key not in config.stash or hasattr(config, "workerinput"):
        return
    from pytest_autofl.report.summary import summary_lines

    session = config.stash[session_key]
    if not session.rows:
        return
    try:
        test_scores = session.test_scores()
    except RuntimeError as exc:
        test_scores = None
        terminalreporter.write_line(f"held-out test score unavailable: {exc}")
    noise_line = (
        session.noise.describe() + f"; threshold {session.threshold():.4f}" if session.noise else None
    )
    terminalreporter.write_sep("=", "autofl summary")
    for line in summary_lines(
        session.rows,
        session.baseline,
        session.incumbent,
        test_scores,
        str(session.ledger_path),
        noise_line,
    ):
        terminalreporter.write_line(line)
    settings = config.stash[settings_key]
    if settings.report_dir is None and not settings.json:
        return
    from pytest_autofl.report.facts import Scoring, build_facts, write_report

    contract = session.contract
    scoring = Scoring.of(contract)
    extra = {"row_ids": session.row_ids, "test": test_scores, "noise": noise_line}
    ledger_path = _shown(session.ledger_path)  # the report's reproduce commands are run from here
    try:
        if settings.report_dir is not None:
            facts = write_report(
                ledger_path, settings.report_dir, scoring, contract_sha=contract.sha, session=extra
            )
            terminalreporter.write_line(
                f"report: {_shown(settings.report_dir) / 'report.md'} (+ report.json, progress.png)"
            )
        else:
            facts, _ = build_facts(ledger_path, scoring, contract_sha=contract.sha)
            facts["session"] = extra
    except (AutoFLError, OSError) as exc:
        terminalreporter.write_line(f"autofl report FAILED (the ledger is untouched): {exc}")
        return
    config.stash[facts_key] = facts


def _shown(path: Path) -> Path:
    """``path`` relative to the working directory when it lies below it, else absolute."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else Path(relative)


def _stop_on_sigterm(config: pytest.Config) -> None:
    """SIGTERM (a CI timeout, ``kill``) stops a search like Ctrl-C: running simulations are stopped and every
    finished verdict is already in the ledger."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"stopped by signal {signum}")

    config.stash[sigterm_key] = signal.signal(signal.SIGTERM, interrupt)


def pytest_unconfigure(config: pytest.Config) -> None:
    """``--autofl-json``: the facts go out last, after pytest's own summary, so ``tail -n 1`` finds them."""
    if env_key in config.stash:
        config.stash[env_key].close()
    if sigterm_key in config.stash:
        signal.signal(signal.SIGTERM, config.stash[sigterm_key])
    if facts_key in config.stash and config.stash[settings_key].json:
        import json
        import sys

        sys.stdout.write(json.dumps(config.stash[facts_key]) + "\n")
        sys.stdout.flush()
