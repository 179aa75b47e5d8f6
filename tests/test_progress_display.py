"""The CLI's live view of a job, drawn at fixed terminal widths: bars keep their place and width whatever the
message, a long message is cut with an ellipsis, and a narrow terminal still shows the overall bar and ETA."""

from __future__ import annotations

import io

import pytest
from google.protobuf import duration_pb2
from rich.console import Console

from reelcast.cli.progress_display import ProgressDisplay
from reelcast.jobs.v1 import job_pb2

BAR_CHARACTERS = "━╸╺"
ETA = "0:01:05"


def running_render(message: str) -> list[job_pb2.JobProgress]:
    """A job half-way through its render, as the server streams it, with ``message`` on the render step."""
    script_done = job_pb2.JobProgress(
        sequence=1,
        kind=job_pb2.EVENT_KIND_STEP_STATUS,
        stage="script",
        stage_title="Script",
        stage_status=job_pb2.STEP_STATUS_SUCCEEDED,
        stage_percent=100,
        job_percent=20,
    )
    rendering = job_pb2.JobProgress(
        sequence=2,
        kind=job_pb2.EVENT_KIND_STEP_PROGRESS,
        stage="render",
        stage_title="Rendering",
        stage_status=job_pb2.STEP_STATUS_RUNNING,
        stage_percent=50,
        job_percent=60,
        message=message,
    )
    for event in (script_done, rendering):
        event.job_id, event.job_status = "j1", job_pb2.JOB_STATUS_RUNNING
        event.eta.CopyFrom(duration_pb2.Duration(seconds=65))
    return [script_done, rendering]


def drawn(width: int, events: list[job_pb2.JobProgress]) -> list[str]:
    """The display's lines as a terminal ``width`` columns wide shows them once the events arrived."""
    # Colour on, so that a bar's unfilled part is drawn too; no terminal, so rich draws the last frame once.
    console = Console(
        file=io.StringIO(), width=width, record=True, color_system="truecolor", force_terminal=False
    )
    with ProgressDisplay(console) as display:
        for event in events:
            display.update(event)
    return console.export_text().splitlines()


def row(lines: list[str], title: str) -> str:
    matching = [line for line in lines if line.startswith(title)]
    assert len(matching) == 1, lines
    return matching[0]


def bar_span(line: str) -> tuple[int, int]:
    """Where the bar starts in ``line``, and how many columns it takes."""
    start = min(line.index(character) for character in BAR_CHARACTERS if character in line)
    end = start
    while end < len(line) and line[end] in BAR_CHARACTERS:
        end += 1
    return start, end - start


@pytest.mark.parametrize("width", [80, 120])
def test_bars_keep_their_place_and_width_as_the_message_grows(width: int) -> None:
    messages = ["", "encoding", "encoding segment 3 of 8 at 1280x720", "encoding segment 3 of 8 " * 12]
    frames = [drawn(width, running_render(message)) for message in messages]
    for title in ("Overall", "Rendering"):
        layouts = {(bar_span(row(lines, title)), row(lines, title).index("%")) for lines in frames}
        assert len(layouts) == 1, [row(lines, title) for lines in frames]
    for lines in frames:
        assert all(len(line) <= width for line in lines), lines
        assert len(lines) == 3, lines  # one line per row: nothing wrapped
    assert bar_span(row(frames[0], "Overall"))[1] >= 20


def test_a_long_message_is_cut_with_an_ellipsis_in_its_own_column() -> None:
    short, long = (
        row(drawn(100, running_render(m)), "Rendering") for m in ("seg 3/8", "segment 3 of 8 " * 12)
    )
    assert "seg 3/8" in short
    assert long.rstrip().endswith("…")
    assert long.index("segment") == short.index("seg 3/8")
    # The message comes after the bar, the percent and the ETA column, so its length moves none of them.
    assert long.index("segment") > long.index("%")


@pytest.mark.parametrize("width", [40, 50, 60])
def test_a_narrow_terminal_still_shows_the_bars_percent_and_eta(width: int) -> None:
    lines = drawn(width, running_render("encoding segment 3 of 8 at 1280x720"))
    overall = row(lines, "Overall")
    assert bar_span(overall)[1] >= 8, lines
    assert "60%" in overall
    assert ETA in overall
    assert bar_span(row(lines, "Rendering"))[1] == bar_span(overall)[1]
    assert "50%" in row(lines, "Rendering")
    assert all(len(line) <= width for line in lines), lines
    assert len(lines) == 3, lines


def test_the_message_is_dropped_first_at_narrow_widths() -> None:
    message = "encoding segment 3 of 8"
    assert message in row(drawn(100, running_render(message)), "Rendering")
    narrow = row(drawn(40, running_render(message)), "Rendering")
    assert "encoding" not in narrow
    assert "50%" in narrow


def test_markup_in_a_message_is_shown_as_text() -> None:
    lines = drawn(120, running_render("[bold]segment[/bold] [/oops]"))
    assert "[bold]segment[/bold] [/oops]" in row(lines, "Rendering")


def test_a_resync_draws_the_steps_of_its_snapshot() -> None:
    snapshot = job_pb2.Job(
        id="j1",
        status=job_pb2.JOB_STATUS_RUNNING,
        percent=30,
        steps=[
            job_pb2.Step(name="script", title="Script", status=job_pb2.STEP_STATUS_SUCCEEDED, percent=100),
            job_pb2.Step(name="voice", title="Voice", status=job_pb2.STEP_STATUS_RUNNING, percent=40),
            job_pb2.Step(name="visuals", title="Visuals", status=job_pb2.STEP_STATUS_PENDING),
        ],
    )
    resync = job_pb2.JobProgress(
        job_id="j1",
        sequence=9,
        kind=job_pb2.EVENT_KIND_RESYNC,
        job_status=job_pb2.JOB_STATUS_RUNNING,
        job_percent=30,
        snapshot=snapshot,
    )
    lines = drawn(100, [resync])
    assert [line.split()[0] for line in lines] == ["Overall", "Script", "Voice"]
    assert "40%" in row(lines, "Voice")


def queued(position: int, wait_seconds: float | None) -> job_pb2.JobProgress:
    """A waiting job's place event, as the server streams it (runner, queue_positions.py)."""
    event = job_pb2.JobProgress(
        job_id="j1", kind=job_pb2.EVENT_KIND_JOB_STATUS, job_status=job_pb2.JOB_STATUS_QUEUED
    )
    event.queue_position = position
    if wait_seconds is not None:
        event.estimated_start.FromNanoseconds(round(wait_seconds * 1e9))
    return event


def test_a_waiting_job_shows_its_place_in_line_and_when_it_starts() -> None:
    assert drawn(80, [queued(2, 130.0)])[-1] == "3rd in line, starts in about 2 min"
    assert drawn(80, [queued(10, 5400.0)])[-1] == "11th in line, starts in about 1.5 h"
    assert drawn(80, [queued(21, None)])[-1] == "22nd in line"
    assert drawn(80, [queued(1, 70.0), queued(0, 20.0)])[-1] == "next in line, starts in under a minute"
    # Running: the place is gone, only the overall row is left.
    started = job_pb2.JobProgress(
        job_id="j1", kind=job_pb2.EVENT_KIND_JOB_STATUS, job_status=job_pb2.JOB_STATUS_RUNNING
    )
    lines = drawn(80, [queued(0, 20.0), started])
    assert len(lines) == 1 and "line" not in lines[0], lines
