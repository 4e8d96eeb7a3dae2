"""How a seed run ended, told from what happened rather than from whether FLARE logged an ERROR line.

A loaded machine makes FLARE's messages slow: a client's task check times out, FLARE logs an ERROR and sends the
result anyway, and the round completes. Such a run is a success. A run is judged by its facts — did every round
reach the server with every client's result (the harness' audit), is the final model there, did the process tree
end cleanly — and its errors are sorted by who can have caused them:

- ``OK``: the run completed; the errors it logged, if any, came from FLARE's messaging (``MESSAGING_LOGGERS``,
  ``CLIENT_RUNNER_MESSAGING``, ``RUN_MANAGER_MESSAGING``), which FLARE retried itself. They are counted (``recovered``), not failures.
- ``CANDIDATE``: the candidate's doing: an exception raised in a client script, an error from any component that is not FLARE's messaging (the
  aggregator, the persistor, the executor running the client script: candidate code or its consequences), a
  process killed by a signal the harness did not send (the zygote saw it; an out-of-memory kill counts here).
- ``TRANSIENT``: the run stopped with nothing pointing at the candidate — only messaging errors, or none: a
  port pool used up, a process or sandbox that could not start (an exit code without an error logged), an exit
  without its final model. Retried in a fresh workspace.

Unknown errors never excuse a run: an error line the catalogue does not know is the candidate's. (A resource
limit or the wall-clock cap, the contract's budget, is the candidate's too; ``job.run_simulation`` tells those
first, from the process tree.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_autofl.run.processes import exit_text
from pytest_autofl.run.trainer import RAISED

OK, CANDIDATE, TRANSIENT = "ok", "candidate", "transient"
EXCEPTION_RE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt): ")
TRAINER_TRACEBACK = RAISED  # a client script raised (``trainer`` prints it before the traceback)
# what a client script raises when the process at the other end of its connection is gone: after the simulator
# was killed, a consequence of that kill, not a cause of its own
LOST_LINK_RE = re.compile(r"^(ConnectionResetError|BrokenPipeError|ConnectionAbortedError|EOFError)\b")
_ENTRY_RE = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:,.]+ - (?P<logger>\S+) - (?P<level>[A-Z]+) - (?P<rest>.*)$")
_CONTEXT_RE = re.compile(r"^(\[[^\]]*\] )?- ")  # FLARE's "[identity=..., task_id=...] - " before a message
# FLARE's message passing between its cells: what it logs there it retries itself (a reply that did not come,
# a message that could not be sent), so in a completed run these are recovered.
MESSAGING_LOGGERS = frozenset(
    {
        "Communicator",
        "CoreCell",
        "Cell",
        "AuxRunner",
        "ConnectorManager",
        "DownloadService",
        "ObjectDownloader",
        "ReliableMessage",
    }
)
# ClientRunner also runs the executor (the candidate's client script): only its task-check and submission
# messages are messaging (client_runner.py: _check_task_once, _try_send_result_once). Its run manager logs
# the return code of a submission that got no reply in time (client_run_manager.py: send_task_result): a
# busy server, or the end of the run overtaking the last round's reply.
CLIENT_RUNNER_MESSAGING = re.compile(
    r" - (programming error: received \w+ from|failed task_check with|bad task_check reply from"
    r"|\S+ rejected task_check|failed to send task result to .* - will try again)"
)
RUN_MANAGER_MESSAGING = re.compile(r" - failed to send task result: \w+$")


@dataclass(frozen=True)
class LoggedError:
    """One ERROR (or CRITICAL) entry of a site's ``error_log.txt``, with the lines that follow it."""

    site: str
    logger: str
    text: str  # the entry's first line as logged
    more: tuple[str, ...] = ()  # continuation lines (a traceback)

    @property
    def messaging(self) -> bool:
        """Logged by FLARE's messaging about its messaging (an entry with a traceback attached never is)."""
        if self.more:
            return False
        logger = self.logger.rsplit(".", 1)[-1]
        if logger == "ClientRunner":
            return bool(CLIENT_RUNNER_MESSAGING.search(self.text))
        if logger in ("ClientRunManager", "SimulatorClientRunManager"):
            return bool(RUN_MANAGER_MESSAGING.search(self.text))
        return logger in MESSAGING_LOGGERS

    @property
    def detail(self) -> str:
        """The exception it names, if any, else the entry's message after its logger's name (FLARE's time,
        level and task context left out: a reason is cut at 300 characters)."""
        if raised := next((ln for ln in self.more if EXCEPTION_RE.match(ln)), None):
            return raised
        match = _ENTRY_RE.match(self.text)
        if not match:
            return self.text
        return f"{self.logger.rsplit('.', 1)[-1]}: {_CONTEXT_RE.sub('', match['rest'], count=1)}"


@dataclass(frozen=True)
class Outcome:
    kind: str
    reason: str | None = None  # why it failed (CANDIDATE, TRANSIENT), without the seed
    recovered: tuple[str, ...] = ()  # messaging errors FLARE recovered from ("site: line")


def logged_errors(workspace: Path) -> list[LoggedError]:
    """Every site's error log, clients first (a client failure shows on the server only as a consequence)."""
    logs = sorted(workspace.glob("*/error_log.txt"), key=lambda p: (p.parent.name == "server", p.parent.name))
    errors: list[LoggedError] = []
    for log in logs:
        site, current = log.parent.name, None
        for raw in log.read_text(errors="replace").splitlines():
            line = raw.strip()
            if not line:
                continue
            if match := _ENTRY_RE.match(line):
                if current is not None:
                    errors.append(current)
                current = LoggedError(site, match["logger"], line)
            elif current is None:  # a line before any entry: its own entry, logger unknown
                errors.append(LoggedError(site, "", line))
            else:
                current = LoggedError(site, current.logger, current.text, (*current.more, line))
        if current is not None:
            errors.append(current)
    return errors


def raised_in_trainer(log_lines: Iterable[str]) -> list[str]:
    """What the client scripts raised in their trainer processes: the last line of each such traceback in
    the run's log (other tracebacks there are consequences, not causes)."""
    raised, inside = [], False
    for line in log_lines:
        if line.startswith(TRAINER_TRACEBACK):
            inside = True
        elif inside and EXCEPTION_RE.match(line):
            raised.append(line.strip())
            inside = False
    return raised


def missing_results(audit: Iterable[Mapping[str, Any]], rounds: int, num_clients: int) -> list[str]:
    """The (round, site) results the server never received intact, from the harness' audit: empty when every
    round had every client's result."""
    got = {(rec.get("round"), rec.get("site")) for rec in audit if "error" not in rec}
    return [
        f"round {r}: site-{c}"
        for r in range(rounds)
        for c in range(1, num_clients + 1)
        if (r, f"site-{c}") not in got
    ]


def classify(
    returncode: int | None,
    errors: list[LoggedError],
    raised: list[str],
    missing: list[str],
    has_model: bool,
    killed: Mapping[str, str] | None = None,
    last_line: str = "",
) -> Outcome:
    """The outcome of a seed run that ended within its limits, from its facts: the simulator's exit status,
    the sites' logged errors, what client scripts raised, the (round, site) results the server did not get,
    whether the final model is there, and the workers killed by a signal the harness did not send (site ->
    signal name, as the zygote saw them); ``last_line`` of the run's log says more of an exit without errors.
    The rules are in the module's docstring."""
    code_errors = [e for e in errors if not e.messaging]
    if code_errors:
        first = code_errors[0]
        detail = raised[0] if raised and not EXCEPTION_RE.match(first.detail) else first.detail
        return Outcome(CANDIDATE, f"{first.site}: {detail[:300]}")
    code = returncode or 0
    signalled = code < 0 or code > 128  # the simulator itself killed by a signal
    if raised and not (signalled and all(LOST_LINK_RE.match(r) for r in raised)):
        return Outcome(CANDIDATE, f"client script raised {raised[0][:300]}")
    if killed:
        site, name = min(killed.items())
        return Outcome(CANDIDATE, f"{site}: its process was killed by {name} (not by the harness)")
    if signalled:
        return Outcome(CANDIDATE, f"simulator exited with {exit_text(code)}")
    recovered = tuple(f"{e.site}: {e.text[:300]}" for e in errors)
    if code == 0 and has_model and not missing:
        return Outcome(OK, recovered=recovered)
    if errors:
        return Outcome(TRANSIENT, f"{errors[0].site}: {errors[0].detail[:300]}", recovered)
    if code:
        return Outcome(TRANSIENT, f"simulator exited with code {code}: {last_line[:300] or '(empty log)'}")
    what = "no final global model" if not has_model else f"results missing ({', '.join(missing[:4])})"
    return Outcome(TRANSIENT, f"the run ended without an error but {what}")
