"""What a catalogue entry is (``ErrorCode``), the catalogue itself, the exception that carries an entry
(``ReelcastError``), and the catalogue as docs/errors.md. The entries are in request_errors.py and
stage_errors.py; ``reelcast.jobs.errors`` gathers all of it under one name."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import grpc


@dataclass(frozen=True)
class ErrorCode:
    """One catalogue entry."""

    code: str
    title: str
    message: str
    remediation: str
    grpc_status: grpc.StatusCode
    http_status: int
    suggested_actions: tuple[str, ...] = ()


CATALOGUE: dict[str, ErrorCode] = {}


def define(
    code: str,
    title: str,
    message: str,
    remediation: str,
    grpc_status: grpc.StatusCode,
    http_status: int,
    suggested_actions: Sequence[str] = (),
) -> ErrorCode:
    if code in CATALOGUE:
        raise ValueError(f"duplicate error code {code}")
    entry = ErrorCode(code, title, message, remediation, grpc_status, http_status, tuple(suggested_actions))
    CATALOGUE[code] = entry
    return entry


@dataclass
class ReelcastError(Exception):
    """An error with a catalogue code. Stages raise it to fail a job with a precise code.

    ``detail`` replaces the catalogue message when given; it must not contain secrets or stack traces,
    because clients see it.
    """

    error: ErrorCode
    detail: str = ""
    stderr_snippet: str = ""
    log_path: str = ""
    suggested_actions: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def code(self) -> str:
        return self.error.code

    @property
    def message(self) -> str:
        return self.detail or self.error.message

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(self.suggested_actions) or self.error.suggested_actions


def lookup(code: str) -> ErrorCode:
    """Returns the catalogue entry of ``code``; KeyError if it is not catalogued."""
    return CATALOGUE[code]


def render_markdown(entries: Iterable[ErrorCode] | None = None) -> str:
    """The catalogue as docs/errors.md."""
    lines = [
        "# Error catalogue",
        "",
        "Every error a client sees carries one of these codes, a message, a remediation and the",
        "`correlationId` of the request or job. Generated from `proto/reelcast/jobs/errors.py` by",
        "`python -m reelcast.jobs.errors > docs/errors.md`; a test keeps the two in sync.",
        "",
        "| Code | Title | gRPC | HTTP | Message | Remediation | Suggested actions |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in entries if entries is not None else sorted(CATALOGUE.values(), key=lambda e: e.code):
        actions = "; ".join(entry.suggested_actions) or "—"
        lines.append(
            f"| `{entry.code}` | {entry.title} | {entry.grpc_status.name} | {entry.http_status} "
            f"| {entry.message} | {entry.remediation} | {actions} |"
        )
    return "\n".join(lines) + "\n"
