"""Resume: a finished (candidate, seed) run is recorded on disk the moment it ends, and reused instead of
repeated when the same candidate runs again under the same contract and surface (after Ctrl-C, say).

The index lives in ``<workdir>/finished/`` (hidden from every sandbox); each entry names the seed run's
directory, whose files (log, audit, workspace with the final model) are copied into the new trial so every
row's artifacts stay complete. An entry is signed with the harness key and a reused run is scored again by the
evaluator from its final model: an entry that does not verify is ignored (the run is repeated), and a stored
score is never taken on trust.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from pytest_autofl.run.runner import Runner
from pytest_autofl.run.seedrun import SeedRun

_FIELDS = {f.name for f in fields(SeedRun)}


def _mac(secret: bytes, facts: dict[str, Any]) -> str:
    return hmac.new(secret, json.dumps(facts, sort_keys=True).encode(), hashlib.sha256).hexdigest()


class ResumingRunner:
    def __init__(
        self,
        inner: Runner,
        index_dir: Path,
        key: str,
        trial_dir: Path,
        progress: Callable[[str], None],
        secret: bytes,
    ):
        self.inner, self.index_dir, self.key, self.trial_dir = inner, index_dir, key, trial_dir
        self.progress, self.secret = progress, secret

    def _entry(self, seed: int, tag: str) -> Path:
        return self.index_dir / f"{self.key[:40]}-seed-{seed}{tag}.json"

    def run(self, seed: int, tag: str = "", evaluate: bool = True) -> SeedRun:
        entry = self._entry(seed, tag)
        reused = self._reuse(entry, seed, tag)
        if reused is not None:
            if evaluate:
                self.evaluate([reused])
            return reused
        run = self.inner.run(seed, tag, evaluate)
        self._record(run, tag)
        return run

    def evaluate(self, runs: list[SeedRun]) -> None:
        pending = [r for r in runs if r.error is None and r.score is None]
        self.inner.evaluate(pending)
        for run in pending:
            self._record(run, run.directory.name.removeprefix(f"seed-{run.seed}"))

    def _record(self, run: SeedRun, tag: str) -> None:
        """Index a scored run the moment it is finished."""
        if run.error is not None or run.score is None:
            return
        self.index_dir.mkdir(parents=True, exist_ok=True)
        facts = asdict(run)
        facts["directory"] = str(run.directory.resolve())
        entry = self._entry(run.seed, tag)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"facts": facts, "mac": _mac(self.secret, facts)}))
        os.replace(tmp, entry)

    def _reuse(self, entry: Path, seed: int, tag: str) -> SeedRun | None:
        """The entry's run copied into this trial, unscored (``evaluate`` scores it again); None to run anew."""
        try:
            signed = json.loads(entry.read_text())
            facts, mac = signed["facts"], str(signed["mac"])
        except (OSError, ValueError, TypeError, KeyError):
            return None
        if not hmac.compare_digest(mac, _mac(self.secret, facts)):
            self.progress(
                f"seed {seed}{tag}: ignoring {entry}: it is not signed by this harness; running again"
            )
            return None
        if not isinstance(facts, dict) or not set(facts) <= _FIELDS:
            return None  # written by another version of the harness: run it again
        old = Path(facts["directory"])
        if not old.is_dir():
            return None  # its artifacts are gone: run it again
        new = self.trial_dir / old.name
        if new.resolve() != old.resolve() and not new.exists():
            shutil.copytree(old, new, symlinks=True)
        run = SeedRun(
            **{**facts, "directory": new, "score": None, "n_params": None, "initial": None, "digest": None}
        )
        self.progress(f"seed {seed}{tag}: reusing the finished run in {old} (scored again)")
        return run
