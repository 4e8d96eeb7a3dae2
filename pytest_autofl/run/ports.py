"""TCP ports for simulations that run side by side, handed out so that they never clash.

NVFlare's simulator picks a port by binding port 0 (or a random one) and closing it, then binds it for real
a moment later. With several simulations starting at once, another simulation — or any outgoing connection,
which draws its source port from the same ephemeral range — can take the port in between: measured under
``pytest -n 2``, 2 of 35 runs failed so ("Address already in use", then clients of one simulation talking to
the server of another). ``reserve`` instead picks ports below the kernel's ephemeral range, which the kernel
never hands out by itself, and records each one under a file lock (``<tmp>/autofl-ports-<uid>/``) until the
simulation that asked for it ends (the owner process is gone).
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import tempfile
from pathlib import Path

from filelock import FileLock

OWNER_ENV = "AUTOFL_PORT_OWNER"  # pid whose life a reservation lasts: the simulation's launcher
POOL_SIZE = 10000
_RANDOM = random.SystemRandom()  # forked processes must not draw the same "random" ports


def _directory() -> Path:
    path = Path(tempfile.gettempdir()) / f"autofl-ports-{os.getuid()}"
    path.mkdir(exist_ok=True)
    return path


def pool() -> range:
    """Ports below the ephemeral range (``ip_local_port_range``), which only explicit binds use."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(max(1025, low - POOL_SIZE), low)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def reserve(number: int) -> list[int]:
    """``number`` distinct free ports, reserved for the owner's lifetime (``AUTOFL_PORT_OWNER``, else us)."""
    owner = int(os.environ.get(OWNER_ENV) or os.getpid())
    directory = _directory()
    candidates = pool()
    with FileLock(directory / ".lock"):
        taken = set()
        for entry in directory.glob("*.port"):
            with contextlib.suppress(OSError, ValueError):
                if pid_alive(int(entry.read_text())):
                    taken.add(int(entry.stem))
                    continue
            entry.unlink(missing_ok=True)
        ports: list[int] = []
        for _ in range(len(candidates)):
            if len(ports) == number:
                break
            port = _RANDOM.choice(candidates)
            if port not in taken and port not in ports and _bindable(port):
                ports.append(port)
        if len(ports) < number:
            raise OSError(f"no {number} free ports left in {candidates.start}-{candidates.stop - 1}")
        for port in ports:
            (directory / f"{port}.port").write_text(str(owner))
    return ports


def release(owner: int) -> None:
    """Drop the owner's reservations (they would also lapse once it is gone)."""
    directory = _directory()
    with FileLock(directory / ".lock"):
        for entry in directory.glob("*.port"):
            with contextlib.suppress(OSError, ValueError):
                if int(entry.read_text()) == owner:
                    entry.unlink()


def use_in_nvflare() -> None:
    """Make NVFlare's simulator take its ports from ``reserve``: ``get_open_ports`` (server, worker pipes)
    and the random port of a listener that has none configured."""
    import nvflare.private.fed.app.deployer.simulator_deployer as deployer
    import nvflare.private.fed.app.simulator.simulator_runner as runner
    from nvflare.fuel.f3.drivers import net_utils
    from nvflare.fuel.f3.drivers.driver_params import DriverParams
    from nvflare.fuel.utils import network_utils

    network_utils.get_open_ports = runner.get_open_ports = deployer.get_open_ports = reserve
    configured = net_utils.get_open_tcp_port

    def get_open_tcp_port(resources: dict) -> int | None:
        if resources.get(DriverParams.PORT) or resources.get(DriverParams.PORTS):
            return configured(resources)
        return reserve(1)[0]

    net_utils.get_open_tcp_port = get_open_tcp_port
