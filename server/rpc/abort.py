"""How a servicer fails a call: its catalogue error as the kernel's ``google.rpc.Status``
(reelcast.jobs.status), stamped with the call's correlation id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from grpc import aio
from grpc_status import rpc_status

from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.metadata import current_correlation_id
from reelcast.jobs.status import build_status
from reelcast.jobs.violations import FieldViolation


async def abort(
    context: aio.ServicerContext[Any, Any],
    error: ReelcastError,
    violations: Sequence[FieldViolation] = (),
    retry_after_seconds: float | None = None,
) -> NoReturn:
    status = build_status(
        error.error, error.message, current_correlation_id(), violations, retry_after_seconds
    )
    await context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("abort_with_status returned")  # pragma: no cover
