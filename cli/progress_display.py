"""A live terminal view of a job's events: the overall bar, then one bar per step.

The columns are sized from the terminal's width alone, never from what the rows hold, so a bar keeps its place
and its width while messages come and go: the message sits in the last column and is cut with an ellipsis.
As the terminal narrows the message goes first, then the state, then the title narrows; the bar, its percent
and the ETA stay. This is why the view is a rich ``Live`` table of our own rather than ``rich.progress``,
whose columns take the width of their widest cell and shrink the bars when a message grows.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Column, Table
from rich.text import Text

from reelcast.jobs.v1 import job_pb2

TITLE_WIDTH = 14  # "Postprocessing"
TITLE_MIN_WIDTH = 5
PERCENT_WIDTH = 4  # "100%"
ETA_WIDTH = 7  # "0:01:05"
STATE_WIDTH = 9  # "cancelled", "succeeded"
BAR_MIN_WIDTH = 10
BAR_MAX_WIDTH = 40
MESSAGE_MIN_WIDTH = 10
UNKNOWN_ETA = "-:--:--"

_STEP_STATE = {
    job_pb2.STEP_STATUS_PENDING: ("pending", "dim"),
    job_pb2.STEP_STATUS_RUNNING: ("running", "cyan"),
    job_pb2.STEP_STATUS_SUCCEEDED: ("done", "green"),
    job_pb2.STEP_STATUS_FAILED: ("failed", "red"),
    job_pb2.STEP_STATUS_CANCELLED: ("cancelled", "yellow"),
    job_pb2.STEP_STATUS_SKIPPED: ("skipped", "dim"),
}
_JOB_STATE_STYLE = {
    job_pb2.JOB_STATUS_RUNNING: "cyan",
    job_pb2.JOB_STATUS_SUCCEEDED: "green",
    job_pb2.JOB_STATUS_FAILED: "red",
    job_pb2.JOB_STATUS_CANCELLED: "yellow",
}


@dataclass(frozen=True)
class Layout:
    """Column widths for a terminal ``width`` columns wide; 0 drops a column. One space separates columns."""

    title: int
    bar: int
    state: int
    message: int

    @classmethod
    def for_width(cls, width: int) -> Layout:
        always = PERCENT_WIDTH + ETA_WIDTH
        # Every column: the bar and the message share what the fixed columns leave, the bar up to its maximum.
        free = width - (TITLE_WIDTH + always + STATE_WIDTH) - 5
        if free >= BAR_MIN_WIDTH * 2 + MESSAGE_MIN_WIDTH:
            bar = min(BAR_MAX_WIDTH, free // 2)
            return cls(TITLE_WIDTH, bar, STATE_WIDTH, free - bar)
        # Narrower: no message, then no state; the bar takes the rest.
        free = width - (TITLE_WIDTH + always + STATE_WIDTH) - 4
        if free >= BAR_MIN_WIDTH:
            return cls(TITLE_WIDTH, min(BAR_MAX_WIDTH, free), STATE_WIDTH, 0)
        free = width - (TITLE_WIDTH + always) - 3
        if free >= BAR_MIN_WIDTH:
            return cls(TITLE_WIDTH, free, 0, 0)
        # Narrower still: the title gives up columns before the bar goes below its minimum.
        title = max(TITLE_MIN_WIDTH, TITLE_WIDTH - (BAR_MIN_WIDTH - free))
        return cls(title, max(1, width - (title + always) - 3), 0, 0)


@dataclass
class _Row:
    title: str
    percent: float = 0.0
    state: Text | None = None
    eta: str = ""
    message: str = ""


class ProgressDisplay:
    """Draws a job's ``JobProgress`` events on ``console`` while used as a context manager; a console that is
    not a terminal gets the final frame once, when the display closes."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._overall = _Row("Overall", state=Text("queued"), eta=UNKNOWN_ETA)
        self._steps: dict[str, _Row] = {}
        # A waiting job's place in line, on its own line under the rows (a message column would cut it).
        self._place = ""
        # Redrawn on each event rather than on a timer: nothing on screen changes between events.
        # stdout stays untouched: it carries the command's result, never the progress.
        self._live = Live(self, console=console, auto_refresh=False, redirect_stdout=False, transient=False)

    def __enter__(self) -> ProgressDisplay:
        self._live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._live.__exit__(kind, value, trace)
        if not self._console.is_terminal:
            # rich ends a terminal's last frame with a newline but not the one frame written elsewhere: what
            # the command prints next (render --review's file) would join its last row.
            self._console.line()

    def update(self, event: job_pb2.JobProgress) -> None:
        self._show_job(
            event.job_status, event.job_percent, event.eta.seconds if event.HasField("eta") else None
        )
        if event.kind == job_pb2.EVENT_KIND_JOB_STATUS:
            # A waiting job's place shows until its next status.
            wait = event.estimated_start.ToNanoseconds() / 1e9 if event.HasField("estimated_start") else None
            place = event.queue_position if event.HasField("queue_position") else None
            self._place = queue_place_text(place, wait) if place is not None else ""
        if event.kind == job_pb2.EVENT_KIND_RESYNC:
            for step in event.snapshot.steps:
                if step.status != job_pb2.STEP_STATUS_PENDING:
                    self._show_step(step.name, step.title, step.status, step.percent, step.message)
        elif event.stage:
            self._show_step(
                event.stage, event.stage_title, event.stage_status, event.stage_percent, event.message
            )
        self._live.refresh()

    def _show_job(self, status: job_pb2.JobStatus.ValueType, percent: float, eta: int | None) -> None:
        name = job_pb2.JobStatus.Name(status).removeprefix("JOB_STATUS_").lower()
        self._overall.percent = percent
        self._overall.state = Text(name, style=_JOB_STATE_STYLE.get(status, ""))
        if eta is not None and status == job_pb2.JOB_STATUS_RUNNING:
            self._overall.eta = _clock(eta)
        else:
            self._overall.eta = _clock(0) if status == job_pb2.JOB_STATUS_SUCCEEDED else UNKNOWN_ETA

    def _show_step(
        self, name: str, title: str, status: job_pb2.StepStatus.ValueType, percent: float, message: str
    ) -> None:
        row = self._steps.setdefault(name, _Row(title or name))
        row.percent = percent
        label, style = _STEP_STATE.get(status, ("", ""))
        row.state = Text(label, style=style)
        # Only a running step's message says what it is doing now.
        row.message = message if status == job_pb2.STEP_STATUS_RUNNING else ""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        layout = Layout.for_width(options.max_width)
        columns = [
            Column(width=layout.title, no_wrap=True, overflow="ellipsis"),
            Column(width=layout.bar, no_wrap=True),
            Column(width=PERCENT_WIDTH, no_wrap=True, justify="right"),
            Column(width=ETA_WIDTH, no_wrap=True, overflow="crop"),
        ]
        if layout.state:
            columns.append(Column(width=layout.state, no_wrap=True, overflow="ellipsis"))
        if layout.message:
            columns.append(Column(width=layout.message, no_wrap=True, overflow="ellipsis"))
        table = Table.grid(*columns, padding=(0, 1))
        for row in (self._overall, *self._steps.values()):
            cells: list[Text | ProgressBar] = [
                Text(row.title, overflow="ellipsis", no_wrap=True),
                ProgressBar(total=100, completed=row.percent, width=layout.bar),
                Text(f"{row.percent:.0f}%"),
                Text(row.eta),
            ]
            if layout.state:
                cells.append(row.state or Text(""))
            if layout.message:
                cells.append(Text(row.message, overflow="ellipsis", no_wrap=True))
            table.add_row(*cells)
        yield table
        if self._place:
            yield Text(self._place, overflow="ellipsis", no_wrap=True)


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th ... 11th, 12th, 13th ... 21st."""
    suffix = "th" if number % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def about(seconds: float) -> str:
    """A wait rounded as people say it: "under a minute", "about 2 min", "about 1.5 h"."""
    if seconds < 60:
        return "under a minute"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    return f"about {round(seconds / 3600, 1):g} h"


def queue_place_text(position: int, wait_seconds: float | None) -> str:
    """A waiting job's place, as the page says it too: "3rd in line, starts in about 2 min". ``position``
    counts the jobs that start before it, so 0 is "next in line"."""
    place = "next in line" if position == 0 else f"{ordinal(position + 1)} in line"
    return place if wait_seconds is None else f"{place}, starts in {about(wait_seconds)}"


def _clock(seconds: int) -> str:
    minutes, second = divmod(max(0, seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}"
