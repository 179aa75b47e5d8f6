"""Log lines of a reelcast process: one JSON object per line (the default) or readable text, on stderr.

Every line carries ``correlation_id``, ``job_id``, ``stage`` and ``trace_id`` (null where they do not
apply; the trace id is the current span's, else the job's, so a job's lines carry it without the SDK too).
They come from ContextVars, not from arguments: the gRPC interceptor sets the correlation id per call, and
the runner sets the others around each job and stage (:func:`job_context`, :func:`stage_context`). asyncio
copies the context into the tasks it creates and ``asyncio.to_thread`` into its thread, so a stage's own
``logging`` calls, in a coroutine or in a blocking function, get them without knowing about any of this.

stdout stays free of log lines: it carries the lines that say where a process listens, which tests and
scripts parse.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from reelcast.jobs.metadata import correlation_id_var
from reelcast.jobs.tracing import current_trace_id

LOG_FORMATS = ("json", "human")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
CONTEXT_FIELDS = ("correlation_id", "job_id", "stage", "trace_id")
# Libraries that install handlers of their own; their records go through ours instead (see adopt_loggers).
FOREIGN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")

job_id_var: ContextVar[str] = ContextVar("reelcast_job_id", default="")
stage_var: ContextVar[str] = ContextVar("reelcast_stage", default="")
# The trace id of the job being run (the runner sets it once it read the job); a current span's wins.
trace_id_var: ContextVar[str] = ContextVar("reelcast_trace_id", default="")


@contextlib.contextmanager
def job_context(job_id: str, correlation_id: str = "") -> Iterator[None]:
    """Lines logged inside carry ``job_id`` (and ``correlation_id`` when given); a ``trace_id_var`` set
    inside is undone at the end."""
    job_token = job_id_var.set(job_id)
    trace_token = trace_id_var.set("")
    correlation_token = correlation_id_var.set(correlation_id) if correlation_id else None
    try:
        yield
    finally:
        if correlation_token is not None:
            correlation_id_var.reset(correlation_token)
        trace_id_var.reset(trace_token)
        job_id_var.reset(job_token)


@contextlib.contextmanager
def stage_context(stage: str) -> Iterator[None]:
    """Lines logged inside carry ``stage``."""
    token = stage_var.set(stage)
    try:
        yield
    finally:
        stage_var.reset(token)


class ContextFilter(logging.Filter):
    """Copies the context onto every record that does not carry it already (a stage's ``ctx.log`` adapter
    passes ``job_id`` and ``correlation_id`` as extras)."""

    def filter(self, record: logging.LogRecord) -> bool:
        values = {
            "correlation_id": correlation_id_var.get(),
            "job_id": job_id_var.get(),
            "stage": stage_var.get(),
            "trace_id": current_trace_id() or trace_id_var.get(),
        }
        for name, value in values.items():
            if not getattr(record, name, None):
                setattr(record, name, value or None)
        return True


class JsonLineFormatter(JsonFormatter):
    """``timestamp`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``, ``message``, the context fields,
    then any extras and ``exc_info``; newlines in tracebacks are escaped, so one event is one line."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message", *CONTEXT_FIELDS],
            rename_fields={"levelname": "level", "name": "logger"},
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        created = datetime.fromtimestamp(record.created, tz=UTC)
        log_data["timestamp"] = created.isoformat(timespec="milliseconds")
        super().add_fields(log_data, record, message_dict)


class HumanFormatter(logging.Formatter):
    """``2025-01-31 12:00:00,123 INFO reelcast.server.runner [job_id=… stage=… correlation_id=… trace_id=…]:
    message``;
    the brackets hold only the context fields that are set."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(reelcast_context)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        names = ("job_id", "stage", "correlation_id", "trace_id")
        values = [(name, getattr(record, name, None)) for name in names]
        shown = " ".join(f"{name}={value}" for name, value in values if value)
        # The record is shared with any other handler, so the computed field is not stored on it.
        fields = {**record.__dict__, "reelcast_context": f" [{shown}]" if shown else ""}
        return self._style._fmt % fields


def check_log_format(value: str) -> str:
    normalized = value.strip().lower()
    if normalized not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    return normalized


def check_log_level(value: str) -> str:
    normalized = value.strip().upper()
    if normalized not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}")
    return normalized


def configure_logging(log_format: str = "json", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Makes the root logger write ``log_format`` lines at ``level`` and above to ``stream`` (stderr),
    replacing whatever handlers it had. Python warnings become log lines too."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(ContextFilter())
    formatter: logging.Formatter = (
        JsonLineFormatter() if check_log_format(log_format) == "json" else HumanFormatter()
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(check_log_level(level))
    logging.captureWarnings(True)
    adopt_loggers()


def adopt_loggers() -> None:
    """Sends the records of loggers that libraries gave handlers of their own (uvicorn configures its
    loggers when the bridge starts) through the root handler, so that they are formatted like ours."""
    for name in FOREIGN_LOGGERS:
        logger = logging.getLogger(name)
        for existing in list(logger.handlers):
            logger.removeHandler(existing)
        logger.propagate = True
