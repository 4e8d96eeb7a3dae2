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

import os
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
# NVFlare's hard-coded waits on a simulation's path, (module, seconds it asks for) -> seconds waited: polls
# that check their condition again, pauses before a retry, grace periods once the run is over; ``waits``
# applies them in prefork's processes (``--autofl-preload off`` runs on NVFlare's own).
_SIM = "nvflare.private.fed.app.simulator"
WAITS: dict[tuple[str, float], float] = {
    # the poll for the server app's start, a client thread's pause before it starts its worker, the retry
    # of the connection to that worker
    (f"{_SIM}.simulator_runner", 1.0): 0.02,
    (f"{_SIM}.simulator_worker", 0.5): 0.02,  # a worker's next task fetch after "try again"
    (f"{_SIM}.simulator_worker", 2): 0.05,  # a worker's pause after its run is over, before it exits
    ("nvflare.private.fed.client.client_runner", 0.5): 0.02,  # before each sync with the server's runner
    ("nvflare.fuel.f3.cellnet.connector_manager", 0.5): 0.05,  # after starting a listener
    ("nvflare.fuel.f3.cellnet.net_agent", 0.5): 0.02,  # the subnet monitor's loop, joined when a cell closes
    ("nvflare.private.fed.server.fed_server", 3.0): 0.05,  # the server app's status loop
    ("nvflare.app_common.workflows.fedavg", 0.5): 0.02,  # FedAvg's "are all results in?" poll
    ("nvflare.apis.impl.wf_comm_server", 0.2): 0.02,  # the task monitor that marks a task done
    ("nvflare.fuel.f3.mpm", 3): 0.1,  # the grace before cleanup, once the process' main function returned
}
# NVFlare settings read from the environment, set the same way: at the end of a run the server's and each
# client's runner ask their components whether they may end and wait while one says no, up to 5 s, looking
# every 0.5 s; FLARE's fed-event runner says no until 2 s after its queue was last empty, for late analytics
# events (clients here send none: their scripts talk to the harness' trainer, not to FLARE's Client API).
WAIT_ENV = {"NVFLARE_END_RUN_READINESS_TIMEOUT": "0.1", "NVFLARE_END_RUN_READINESS_CHECK_INTERVAL": "0.02"}
NVFLARE_WAITS_ENV = "AUTOFL_NVFLARE_WAITS"  # set (to anything): NVFlare's own waits, to compare against


def waits_in_force() -> tuple[dict[tuple[str, float], float], dict[str, str]]:
    """``WAITS`` and ``WAIT_ENV``, or neither with ``AUTOFL_NVFLARE_WAITS`` set (the rows' fingerprint says
    which)."""
    return ({}, {}) if os.environ.get(NVFLARE_WAITS_ENV) else (WAITS, WAIT_ENV)


# A seed run the machine broke (``outcome.TRANSIENT``) runs again up to RETRIES times, fresh each time.
RETRIES = 2
RETRY_PAUSE_SECONDS = 2.0


def fingerprint() -> str:
    """The ``infra`` column: a short hash of every setting above."""
    table, env = waits_in_force()
    settings = {
        "server": SERVER_CONFIG,
        "client": CLIENT_CONFIG,
        "waits": sorted([*key, value] for key, value in table.items()),
        "wait_env": env,
        "retries": RETRIES,
        "pause": RETRY_PAUSE_SECONDS,
        "client_script": CLIENT_SCRIPT,
    }
    return sha256_of(settings)[:12]
