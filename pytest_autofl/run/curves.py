"""A seed run's per-round validation curve as TensorBoard event files in the run's own directory, so that
``tensorboard --logdir .autofl/runs`` shows every candidate's seeds side by side. Written with TensorBoard's
event-file writer (its protos, no TensorFlow), by the harness, after the run's processes are gone."""

from __future__ import annotations

import time
from pathlib import Path

EVENTS_GLOB = "events.out.tfevents.*"


def write_curve(directory: Path, tag: str, curve: list[float | None]) -> Path:
    """One scalar per round (step 0 is the untrained start, a missing round is no point); a run scored again
    replaces its events file instead of adding a second curve. Returns the events file."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    for old in directory.glob(EVENTS_GLOB):
        old.unlink()
    writer = EventFileWriter(str(directory))
    now = time.time()
    for step, value in enumerate(curve):
        if value is not None:
            point = Summary(value=[Summary.Value(tag=tag, simple_value=float(value))])
            writer.add_event(Event(wall_time=now, step=step, summary=point))
    writer.close()
    return next(directory.glob(EVENTS_GLOB))
