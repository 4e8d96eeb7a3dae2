"""What the model sees: the research lead's prose (``program.md``), the task profile, what the contract fixes,
the mutation schema, the current surface files and a compact view of the ledger. Selection data only: the
ledger holds validation scores, never a test score, and no held-out row or label is ever read here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from pytest_autofl.core.schema import Knob
from pytest_autofl.core.verdict import CRASH, INVALID, SCREENED
from pytest_autofl.ledger.row import Row
from pytest_autofl.proposers.base import CampaignView

RECENT_ROWS = 12
REASON_CHARS = 200
_PATH = re.compile(r"(/[^\s;:,'\"]+)+")

SYSTEM = """You are the research engineer of a federated-learning experiment run on NVIDIA FLARE. Each turn you \
propose ONE candidate: knob values from the mutation schema and, optionally, code edits to the surface files. \
The harness runs it on the contract's seeds in real simulations, scores it on a validation set you never see, \
and decides keep / narrow / discard by paired statistics against the incumbent; crash and invalid mean it \
failed or broke the contract. The contract (data, split, rounds, local steps, batch size, seeds, metric) is \
fixed and measured by the harness; a candidate that trains beyond the budget or reads data it should not is \
invalid, so do not try. Propose what has not been tried, learn from the verdicts and their reasons.

Answer with exactly one JSON object and nothing else:
{"hypothesis": "one line: what this tests and why",
 "knobs": {"<knob>": <value>, ...},
 "edits": [{"file": "<surface file>", "search": "<exact text, unique in the file>", "replace": "<new text>"}],
 "cites": ["<author year, title, arXiv id or DOI>", ...]}
"knobs" may be {} (the schema defaults), "edits" and "cites" may be []."""


def _knob_line(knob: Knob) -> str:
    if knob.type == "choice":
        domain = f"one of {list(knob.choices)}"
    elif knob.type == "bool":
        domain = "true or false"
    else:
        domain = f"{knob.type} in [{knob.low:g}, {knob.high:g}]{' (log scale)' if knob.log else ''}"
    when = "; ".join(f"only when {name} is one of {list(values)}" for name, values in knob.applies)
    return f"- {knob.name}: {domain}, default {knob.default!r}. {knob.doc}{' (' + when + ')' if when else ''}"


def _reason(row: Row) -> str:
    """A row's reason, short, without paths (crash and invalid reasons carry log paths)."""
    text = _PATH.sub("<path>", row.reason) if row.status in (CRASH, INVALID) else row.reason
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


def _row_line(row: Row) -> str:
    interval = (
        f" [{row.ci_low:+.4f}, {row.ci_high:+.4f}]"
        if row.ci_low is not None and row.ci_high is not None
        else ""
    )
    delta = f" delta {row.delta:+.4f}{interval}" if row.delta is not None else ""
    score = f" score {row.score:.4f}" if row.score is not None else ""
    return f"- {row.status} {row.candidate_id} ({row.description}){score}{delta}: {_reason(row)}"


def ledger_view(history: Sequence[Row]) -> str:
    """The incumbent, the last rows with verdict, delta, interval and reason, and the families that did not
    help: what a researcher would glance at before the next experiment."""
    if not history:
        return "No candidate has run yet: the first one is the baseline (schema defaults)."
    incumbent = next((r for r in reversed(history) if r.is_keep), None)
    lines = []
    if incumbent is not None:
        lines.append(
            f"Incumbent: {incumbent.candidate_id} ({incumbent.description}), score {incumbent.score:.4f}, knobs {json.dumps(incumbent.params, sort_keys=True)}"
        )
    lines.append(f"Last {min(RECENT_ROWS, len(history))} of {len(history)} rows, oldest first:")
    lines += [_row_line(r) for r in history[-RECENT_ROWS:]]
    worse: dict[str, int] = {}
    for row in history:
        if row.status in ("discard", SCREENED) or (
            row.status in (CRASH, INVALID) and row.candidate_id != "rejected"
        ):
            family = row.candidate_id.rsplit("-", 1)[0]
            worse[family] = worse.get(family, 0) + 1
    if worse:
        lines.append(
            "Families that were discarded, screened out, crashed or invalid (count): "
            + ", ".join(f"{f} ({n})" for f, n in sorted(worse.items()))
        )
    return "\n".join(lines)


def messages(view: CampaignView, program: str, profile: str, library: str = "") -> list[dict[str, Any]]:
    """The conversation's first two messages."""
    contract = view.contract
    fixed: dict[str, Any] = {k: contract.raw[k] for k in ("budget", "metric", "min_delta")}
    fixed["clients"] = contract.num_clients
    fixed["selection_seeds"] = len(contract.seeds)
    parts = [
        f"## Research program\n{program.strip()}" if program.strip() else "",
        f"## Task profile\n{profile.strip()}" if profile.strip() else "",
        f"## What the contract fixes\n{json.dumps(fixed, sort_keys=True)}",
        "## Knobs (the mutation schema)\n" + "\n".join(_knob_line(k) for k in view.schema.knobs.values()),
        f"## Surface files you may edit: {', '.join(view.schema.files)}",
        *(f"### {name}\n```python\n{text}```" for name, text in sorted(view.surface.items())),
        f"## Method cards (the literature library)\n{library}\nTo implement a card, cite it by its arXiv id or "
        "DOI; a citation that matches no card is recorded as unverified."
        if library
        else "",
        f"## The ledger so far\n{ledger_view(view.history)}",
        f"## Your assignment\n{view.assignment.brief}" if view.assignment else "",
        f"Propose the {view.assignment.run} run described above."
        if view.assignment
        else "Propose the next candidate.",
    ]
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "\n\n".join(p for p in parts if p)},
    ]
