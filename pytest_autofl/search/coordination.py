"""How a search shares its campaign: alone (``Solo``), or with the other pytest-xdist workers of one run
through the locked journal (``Shared``). Proposals are made outside the lock; only reservations are locked,
so a slow proposer never stalls another worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.ledger.row import Row
from pytest_autofl.proposers.base import Running
from pytest_autofl.search import journal
from pytest_autofl.search.journal import Journal
from pytest_autofl.search.state import CampaignState

WAIT_SECONDS = 1.0  # how often an xdist worker looks again while another one runs the baseline


class Coordination(Protocol):
    def refresh(self, state: CampaignState) -> None: ...

    def reserve(
        self, state: CampaignState, propose: Callable[[], Candidate], progress: Callable[[str], None]
    ) -> Candidate: ...

    def confirm_seeds(self, state: CampaignState, pool: tuple[int, ...], count: int) -> list[int]: ...

    def publish(self, state: CampaignState, row: Row) -> None: ...

    def publish_event(self, state: CampaignState, row: Row) -> bool: ...


def _fresh(pool: tuple[int, ...], used: set[int], count: int) -> list[int]:
    return [s for s in pool if s not in used][:count]


class Solo:
    """One search process: its state is the whole campaign."""

    def refresh(self, state: CampaignState) -> None:
        """Nothing to catch up with."""

    def reserve(
        self, state: CampaignState, propose: Callable[[], Candidate], progress: Callable[[str], None]
    ) -> Candidate:
        return propose()

    def confirm_seeds(self, state: CampaignState, pool: tuple[int, ...], count: int) -> list[int]:
        return _fresh(pool, state.used_confirm_seeds(), count)

    def publish(self, state: CampaignState, row: Row) -> None:
        state.add(row)

    def publish_event(self, state: CampaignState, row: Row) -> bool:
        """Publish a literature event row unless its event is already known (False then)."""
        if state.has_event(row.event):
            return False
        state.add(row)
        return True


class Shared:
    """pytest-xdist workers of one run: no two run the same candidate, every verdict is taken against the
    newest incumbent any worker found, fresh confirmation seeds are handed out once, and until a first run is
    kept (the baseline) one candidate runs at a time."""

    def __init__(self, journal_: Journal):
        self.journal = journal_

    @staticmethod
    def _sync(state: CampaignState, entries: list[dict[str, Any]]) -> None:
        running = [Running(e["id"], e["params"], e["patch_sha"]) for e in journal.in_flight(entries)]
        state.sync([Row.parse(fields) for fields in journal.rows(entries)], running)

    def refresh(self, state: CampaignState) -> None:
        with self.journal.locked() as entries:
            self._sync(state, entries)

    def reserve(
        self, state: CampaignState, propose: Callable[[], Candidate], progress: Callable[[str], None]
    ) -> Candidate:
        waited = False
        while True:
            self.refresh(state)
            if state.incumbent is not None or not state.running:
                candidate = propose()  # outside the lock
                with self.journal.locked() as entries:
                    self._sync(state, entries)
                    gate_open = state.incumbent is not None or not state.running
                    if gate_open and candidate.key not in state.tried_keys():
                        self.journal.append(
                            journal.RESERVE,
                            id=candidate.id,
                            params=candidate.params,
                            patch_sha=candidate.patch_sha,
                        )
                        return candidate
                continue  # another worker took it (or started the baseline) meanwhile: ask again
            if not waited:
                progress(
                    f"[autofl] waiting for {state.running[0].candidate_id} to become the first incumbent"
                )
                waited = True
            time.sleep(WAIT_SECONDS)

    def confirm_seeds(self, state: CampaignState, pool: tuple[int, ...], count: int) -> list[int]:
        with self.journal.locked() as entries:
            self._sync(state, entries)
            fresh = _fresh(pool, state.used_confirm_seeds() | journal.confirm_seeds(entries), count)
            self.journal.append(journal.CONFIRM, seeds=fresh)
        return fresh

    def publish(self, state: CampaignState, row: Row) -> None:
        with self.journal.locked() as entries:
            self._sync(state, [*entries, self.journal.append(journal.ROW, row=row.fields())])

    def publish_event(self, state: CampaignState, row: Row) -> bool:
        """Two workers that reach a plateau together write one review: the first to take the lock."""
        with self.journal.locked() as entries:
            self._sync(state, entries)
            if state.has_event(row.event):
                return False
            self._sync(state, [*entries, self.journal.append(journal.ROW, row=row.fields())])
            return True
