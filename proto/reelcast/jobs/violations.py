"""One invalid field of a request: the shape of ``google.rpc.BadRequest.FieldViolation`` everywhere."""

from __future__ import annotations

from dataclasses import dataclass


# The path is the proto's over gRPC (``spec.brief.topic``) and the body's in REST (``brief.topic``). The
# docstring is the description of the bridge's published ``FieldViolation`` schema, so it stays one line.
@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request, named by its path, and what is wrong with it."""

    field: str
    description: str
