"""The one error catalogue.

Every failure a client can see has a code here with a message, a remediation and suggested actions.
docs/errors.md is generated from this module (``python -m reelcast.jobs.errors``) and a test keeps the
two in sync. Codes are grouped by hundred: E0xx requests, E1xx script, E2xx voice, E3xx render and job
runtime, E4xx visuals, E5xx internal, E6xx resources, E7xx lifecycle. E02x are authentication
and limits; E03x the process's own configuration, refused at start; E04x-E05x uploaded media;
E09x webhooks.
"""

from __future__ import annotations

from reelcast.jobs import media_errors, request_errors, stage_errors, webhook_errors
from reelcast.jobs.error_codes import CATALOGUE, ErrorCode, ReelcastError, lookup, render_markdown
from reelcast.jobs.media_errors import *  # noqa: F403
from reelcast.jobs.request_errors import *  # noqa: F403  (every code, by name: errors.INVALID_SPEC)
from reelcast.jobs.stage_errors import *  # noqa: F403
from reelcast.jobs.webhook_errors import *  # noqa: F403

__all__ = ["CATALOGUE", "ErrorCode", "ReelcastError", "lookup", "render_markdown"]
__all__ += media_errors.__all__
__all__ += request_errors.__all__
__all__ += stage_errors.__all__
__all__ += webhook_errors.__all__

if __name__ == "__main__":
    print(render_markdown(), end="")
