"""The start estimate of waiting jobs (server/execution/queue_positions.py): the slots simulated with the
remaining time of the jobs that hold them and the expected durations of the jobs ahead."""

from __future__ import annotations

import pytest

from reelcast.jobs.v1 import job_pb2
from reelcast.server.execution.queue_positions import seconds_left, start_estimates


def test_one_slot_waits_add_up_behind_the_running_job() -> None:
    assert start_estimates([5.0, 7.0, 3.0], [10.0], slots=1) == [10.0, 15.0, 22.0]


def test_each_waiting_job_takes_the_slot_that_frees_first() -> None:
    # Slot A frees at 4 and takes the first job until 10; slot B frees at 10: the next two start at 10.
    assert start_estimates([6.0, 6.0, 6.0], [4.0, 10.0], slots=2) == [4.0, 10.0, 10.0]


def test_a_free_slot_means_no_wait_for_the_first() -> None:
    assert start_estimates([6.0, 6.0], [4.0], slots=2) == [0.0, 4.0]


def test_an_unknown_time_leaves_the_estimates_that_depend_on_it_out() -> None:
    assert start_estimates([5.0, None, 3.0], [2.0], slots=1) == [2.0, 7.0, None]
    assert start_estimates([5.0, 3.0], [None], slots=1) == [None, None]


def test_a_snapshot_has_left_its_stages_not_ended_at_their_expected_durations() -> None:
    now = 1_000.0
    job = job_pb2.Job(
        steps=[
            job_pb2.Step(name="script", status=job_pb2.STEP_STATUS_SUCCEEDED, percent=100),
            job_pb2.Step(name="voice", status=job_pb2.STEP_STATUS_RUNNING, percent=50),
            job_pb2.Step(name="visuals", status=job_pb2.STEP_STATUS_PENDING),
        ]
    )
    job.steps[1].start_time.FromNanoseconds(int((now - 2.0) * 1e9))
    # Voice: half done in 2 s (2 s more at its pace) blended half and half with 4 s of history less the
    # 2 s gone; visuals: its 3 s of history. Script ended: nothing.
    expected = {"script": 9.0, "voice": 4.0, "visuals": 3.0}
    assert seconds_left(job, expected, now) == pytest.approx(0.5 * 2.0 + 0.5 * 2.0 + 3.0)
    assert seconds_left(job, {}, now) is None
