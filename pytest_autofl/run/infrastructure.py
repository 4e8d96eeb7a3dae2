"""The infrastructure every simulation runs on: the same for every candidate, and named in every ledger row by
its fingerprint (``infra``), so two rows ran on the same settings or say they did not.

FLARE's client checks that the server still waits for a task's result before it submits it
(``task_check_timeout``, default 5 s). On a loaded machine (six seed runs side by side on two cores is load
enough) the server's reply can take longer; FLARE then logs an ERROR and pushes the result anyway. It is a request
timeout: a reply ends the wait, so a long one costs nothing on an idle machine. ``task_check_interval`` is the
pause before a failed check is tried again (default 5 s). Task fetches and submissions already wait up to the
client's communication timeout (300 s). The server's ``task_request_interval`` is the clients' pause between
task requests (default 2 s, which only adds idle time). A retried run first waits ``RETRY_PAUSE_SECONDS`` times
its attempt number, so that what broke it (a busy machine, a full port pool) has a moment to pass.
"""

from __future__ import annotations

from typing import Any

from pytest_autofl.core.contract import sha256_of

SERVER_CONFIG: dict[str, Any] = {"server": {"task_request_interval": 0.1}}  # recipe.add_server_config
CLIENT_CONFIG: dict[str, Any] = {  # recipe.add_client_config: top-level keys of config_fed_client.json
    "task_check_timeout": 60.0,
    "task_check_interval": 1.0,
}
# How each client's script runs: in a trainer process of its own, metered per task, its results within
# ``result_bounds`` (``trainer_executor``); a finished run from another way is not reused, and its rows say
# they differ.
CLIENT_SCRIPT = "trainer-process+result-bounds+twin"
# A seed run the machine broke (``outcome.TRANSIENT``) runs again up to RETRIES times, fresh each time.
RETRIES = 2
RETRY_PAUSE_SECONDS = 2.0


def fingerprint() -> str:
    """The ``infra`` column: a short hash of every setting above."""
    settings = {
        "server": SERVER_CONFIG,
        "client": CLIENT_CONFIG,
        "retries": RETRIES,
        "pause": RETRY_PAUSE_SECONDS,
        "client_script": CLIENT_SCRIPT,
    }
    return sha256_of(settings)[:12]
