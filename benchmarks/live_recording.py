"""Record the live view of a real search: pytest runs in a tmux pane (a real terminal), the pane is captured
every few seconds, and the frames that differ are written to ``docs/live-display.md``.

    python benchmarks/live_recording.py [--benchmark digits] [--iterations 3] [--every 4]

The search runs in a copy of the project (benchmarks and surfaces) in a temporary directory: its ledger and
work directory are thrown away.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SESSION = "autofl-live-recording"
WIDTH, HEIGHT = 150, 24


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def record(project: Path, command: str, every: float, limit: float) -> tuple[list[tuple[float, str]], str]:
    """(seconds since start, the pane) for each frame that differs from the last, and the whole scroll-back."""
    done = project / ".recording-done"
    _tmux("new-session", "-d", "-s", SESSION, "-x", str(WIDTH), "-y", str(HEIGHT), "-c", str(project))
    try:
        _tmux("send-keys", "-t", SESSION, f"{command}; touch {done}", "Enter")
        frames: list[tuple[float, str]] = []
        started = time.monotonic()
        while not done.exists() and time.monotonic() - started < limit:
            time.sleep(every)
            pane = _tmux("capture-pane", "-p", "-t", SESSION).rstrip()
            if not frames or frames[-1][1] != pane:
                frames.append((time.monotonic() - started, pane))
        return frames, _tmux("capture-pane", "-p", "-J", "-S", "-1000", "-t", SESSION).rstrip()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="digits")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--every", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "live-display.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autofl-live-") as tmp:
        project = Path(tmp)
        for name in ("benchmarks", "surfaces"):
            shutil.copytree(
                ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__", "results")
            )
        (project / "pytest.ini").write_text(
            f"[pytest]\ntestpaths = benchmarks\nautofl_benchmark = {args.benchmark}\n"
        )
        command = f"{sys.executable} -m pytest -p no:cacheprovider --autofl-iterations={args.iterations}"
        frames, scrollback = record(project, command, args.every, limit=3600)
    live = [(t, pane) for t, pane in frames if "ETA" in pane]
    lines = [
        "# The live view, recorded",
        "",
        f"A real search (`pytest --autofl-iterations={args.iterations}`, benchmark `{args.benchmark}`, real NVFlare "
        f"simulations in the sandbox) in a {WIDTH}x{HEIGHT} tmux pane, captured every {args.every:g} s by "
        "`python benchmarks/live_recording.py`. Below the scroll-back: one line per running candidate (its seed "
        "runs' rounds as a bar, the time it has run, its seeds and the latest round) and the status line (done / "
        "total, the incumbent, the measured seconds per simulation, the time left). "
        f"{len(live)} of {len(frames)} frames show the live view; every third is kept here, then the whole "
        "scroll-back after the run: the live lines are gone, the verdicts stay.",
        "",
    ]
    for t, pane in live[::3]:
        tail = "\n".join(pane.splitlines()[-8:])
        lines += [f"## {t:.0f} s", "", "```", tail, "```", ""]
    lines += ["## After the run: the scroll-back", "", "```", scrollback, "```", ""]
    args.out.write_text("\n".join(lines))
    print(f"{args.out}: {len(frames)} frames, {len(live)} with the live view")


if __name__ == "__main__":
    main()
