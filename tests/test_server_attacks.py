"""Candidate code in the simulator's own process (the server's aggregator) against the clients (real NVFlare,
digits-smoke, in the sandbox): it asks the zygote for FLARE processes of its own, rewrites the client code and
configuration the simulator deployed, and a client's ``local`` folder. The zygote refuses every request that is
not the simulator's worker of a site not yet started, and each client runs the checked job, so the run is
exactly the honest one."""

from __future__ import annotations

import json

import pytest
from test_load import _runner, _sim

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.run.sandbox import BWRAP

pytestmark = pytest.mark.e2e

ATTACK = """

def _attack_the_clients():
    import json, os, socket, struct, sys, threading, time
    from pathlib import Path

    path = os.environ.get("AUTOFL_PREFORK_SOCKET")
    if not path or "simulator" not in " ".join(sys.argv):
        return  # the export, the predict process
    seed = Path(os.environ["NVFLARE_SIMULATOR_WORKSPACE_ROOT"]).parent
    found = {}

    def ask(argv):  # what prefork's shim sends: the command, its directory and environment, its streams
        body = json.dumps({"argv": argv, "cwd": "/", "env": dict(os.environ)}).encode()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(path)
        socket.send_fds(conn, [struct.pack("!I", len(body)) + body], [0, 1, 2])
        return conn.makefile("r").readline().strip()

    worker = "nvflare.private.fed.app.simulator.simulator_worker"
    found["a process of its own"] = ask(["-m", "json.tool", "--client", "site-1"])
    found["a third site"] = ask(["-m", worker, "-o", "/tmp", "--client", "site-3"])

    def rewrite():
        ws = seed / "ws" / "trial"
        deadline = time.time() + 60
        while time.time() < deadline and len(found) < 5:
            app = ws / "site-1" / "simulate_job" / "app_site-1"
            for name, target, text in (
                ("the deployed client code", app / "custom" / "autofl_surface" / "client_train.py",
                 "raise SystemExit('the deployed client code was rewritten')\\n"),
                ("the deployed client configuration", app / "config" / "config_fed_client.json", "{}"),
                ("the client's local folder", ws / "site-1" / "local" / "resources.json", "{}"),
            ):
                if name not in found and target.parent.is_dir():
                    try:
                        target.write_text(text)
                        found[name] = "written"
                    except OSError as exc:
                        found[name] = f"refused: {exc}"
            (seed / "attack.json").write_text(json.dumps(found))
            time.sleep(0.05)

    threading.Thread(target=rewrite, daemon=True).start()


_attack_the_clients()
"""


def test_the_server_process_cannot_start_or_change_a_client(repo, tmp_path):
    search, factory = _sim(repo, tmp_path, print, sandbox="on")
    assert search.sandbox.mode == BWRAP
    strategies = (repo / "surfaces" / "strategies.py").read_text() + ATTACK
    baseline = search.factory.make({}, source="baseline")
    attacker = Candidate(
        params=baseline.params,
        family=baseline.family,
        description="server attack",
        files=(("strategies.py", strategies),),
    )
    honest = _runner(search, factory, tmp_path / "honest", print).run(0)
    run = factory(
        attacker, search.contract, search.surface_dir, search.shards().directory, tmp_path / "attack", print
    ).run(0)
    found = json.loads((run.directory / "attack.json").read_text())
    print(found)
    assert found["a process of its own"].startswith("error not the simulator's worker command"), found
    assert found["a third site"].startswith("error a worker command with options"), found
    # the simulator deployed them, the attack rewrote them where it could: the clients ran the checked job
    assert {k: v for k, v in found.items() if k.startswith("the ")}.keys() == {
        "the deployed client code",
        "the deployed client configuration",
        "the client's local folder",
    }, found
    assert run.error is None, run.error
    assert run.score == honest.score and run.digest == honest.digest
    assert run.task_seconds is not None and sorted(run.task_seconds) == ["site-1", "site-2"]
