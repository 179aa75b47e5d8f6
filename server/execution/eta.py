"""How long a running job has left, stage by stage.

The overall percent is a poor clock: the built-in script, voice and visuals stages reach 70 % in a fraction
of a second and the render takes most of the rest, so extrapolating the percent said "0 s" while the render
still had seconds to go. The estimate adds what each stage that has not ended will take:

- the running stage: what is left of it at its own pace since its first progress report, blended with
  what its duration on earlier jobs leaves, in proportion to how far it has come (all history at 0 %, all
  its own pace near 100 %);
- a stage not yet started: the median of its durations on earlier jobs of the same bucket (resolution,
  frame rate mode and length, see :func:`duration_bucket`), which the store keeps across restarts
  (``JobStore.stage_durations``);
- a stage with no history: the running stage's seconds per percent of the job, times the stage's share.

When none of these is known there is no estimate: no ETA rather than a wrong one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.validation import expected_video_seconds

_ENDED = frozenset(
    {
        job_pb2.STEP_STATUS_SUCCEEDED,
        job_pb2.STEP_STATUS_FAILED,
        job_pb2.STEP_STATUS_CANCELLED,
        job_pb2.STEP_STATUS_SKIPPED,
    }
)


def duration_bucket(spec: job_pb2.JobSpec) -> str:
    """The key under which a job's stage durations are kept and looked up: ``640x360.30fps.8s``.

    Stage times grow with the pixels, the frames and the length; the length is the supplied script's
    estimated narration or the target duration, rounded to a power of two (jobs within a factor of about
    1.4 share a bucket). Only key-safe characters, for every backend."""
    render = spec.render
    mode = "vfr" if render.variable_frame_rate else f"{render.fps or 30}fps"
    rounded = 2 ** round(math.log2(max(1.0, expected_video_seconds(spec))))
    return f"{render.width}x{render.height}.{mode}.{rounded}s"


def expected_durations(history: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Each stage's expected duration: the median of the kept ones."""
    return {stage: statistics.median(seconds) for stage, seconds in history.items() if seconds}


def remaining_seconds(
    steps: Sequence[job_pb2.Step],
    shares: Mapping[str, float],
    started: Mapping[str, float],
    first_reports: Mapping[str, tuple[float, float]],
    expected: Mapping[str, float],
    now: float,
) -> float | None:
    """The estimate (see the module docstring). ``shares``: each stage's share of the overall percent;
    ``started``: when each stage started (monotonic); ``first_reports``: when each stage first reported
    progress, and how much; ``expected``: durations from history."""
    remaining = 0.0
    unknown_share = 0.0
    seconds_per_share: float | None = None
    for step in steps:
        if step.status in _ENDED:
            continue
        share = shares.get(step.name, 0.0)
        history = expected.get(step.name)
        if step.status != job_pb2.STEP_STATUS_RUNNING:
            if history is not None:
                remaining += history
            else:
                unknown_share += share
            continue
        elapsed = max(0.0, now - started.get(step.name, now))
        fraction = step.percent / 100.0
        own = _own_remaining(fraction, elapsed, first_reports.get(step.name), now)
        from_history = max(0.0, history - elapsed) if history is not None else None
        if own is None and from_history is None:
            return None
        if own is None or from_history is None:
            left = own if own is not None else from_history
        else:
            # A stage's early rate is mostly noise: trust it in proportion to how far the stage has come.
            left = fraction * own + (1.0 - fraction) * from_history
        assert left is not None
        remaining += left
        if share > 0:
            seconds_per_share = (elapsed + left) / share
    if unknown_share > 0:
        if seconds_per_share is None:
            return None
        remaining += seconds_per_share * unknown_share
    return remaining


def _own_remaining(
    fraction: float, elapsed: float, first_report: tuple[float, float] | None, now: float
) -> float | None:
    """The running stage's time left at its own pace. The pace is measured from its first report on, so
    that its start-up (a program starting, an encoder filling its lookahead) does not count as progress."""
    if fraction <= 0:
        return None
    if first_report is not None and fraction > first_report[1] and now > first_report[0]:
        return (1.0 - fraction) * (now - first_report[0]) / (fraction - first_report[1])
    if elapsed <= 0:
        return None
    return (1.0 - fraction) * elapsed / fraction
