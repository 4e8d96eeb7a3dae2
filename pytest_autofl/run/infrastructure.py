"""The infrastructure every simulation runs on: the same for every candidate, and named in every ledger row by
its fingerprint (``infra``), so two rows ran on the same settings or say they did not.

FLARE's client-side message timeouts default to 5 s. On a loaded machine (six seed runs side by side on two
cores is load enough) the server's reply to a task check or a submission can take longer; FLARE then logs an
ERROR and retries, or gives the run up. They are request timeouts: a reply ends the wait, so a long one costs
nothing on an idle machine and only lets a slow reply arrive. ``task_check_interval`` is the pause before such
a retry (default 5 s). The server's ``task_request_interval`` is the clients' pause between task requests
(default 2 s, which only adds idle time).
"""

from __future__ import annotations

from typing import Any

from pytest_autofl.core.contract import sha256_of

SERVER_CONFIG: dict[str, Any] = {"server": {"task_request_interval": 0.1}}  # recipe.add_server_config
CLIENT_CONFIG: dict[str, Any] = {  # recipe.add_client_config: top-level keys of config_fed_client.json
    "task_check_timeout": 60.0,
    "get_task_timeout": 60.0,
    "submit_task_result_timeout": 60.0,
    "task_check_interval": 1.0,
}
RETRIES = (
    2  # a seed run the machine broke (``outcome.TRANSIENT``) runs again up to this often, fresh each time
)


def fingerprint() -> str:
    """The ``infra`` column: a short hash of every setting above."""
    return sha256_of({"server": SERVER_CONFIG, "client": CLIENT_CONFIG, "retries": RETRIES})[:12]
