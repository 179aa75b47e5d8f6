"""The voices ``ListVoices`` reports: the built-in voice stage's, Piper's and espeak-ng's.

They are listed here, in the server, so that a bridge (or any client) on another machine gets the voices of
the installation that runs the jobs, and loads no speech engine of its own.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from reelcast.jobs.v1 import job_pb2
from reelcast.plugins.builtin import espeak, voices

log = logging.getLogger(__name__)


@functools.cache
def installed_voices(data_path: str | None) -> tuple[job_pb2.Voice, ...]:
    """Piper's voices and those of the espeak-ng data at ``data_path`` (None: espeakng-loader's), sorted by
    key; none when espeak-ng cannot be loaded. Cached: the list changes only with the installation."""
    # espeak-ng ends the whole process (exit 1) when its data dir lacks phontab; an RPC must not do that.
    if data_path is not None and not (Path(data_path) / "phontab").is_file():
        log.warning("no espeak-ng data at %s (REELCAST_ESPEAK_DATA); the voice list is empty", data_path)
        return ()
    try:
        available = voices.available_voices(data_path)
    except espeak.EspeakError:
        log.warning("espeak-ng is not available; the voice list is empty", exc_info=True)
        return ()
    return tuple(
        job_pb2.Voice(key=v.key, name=v.name, languages=v.languages, engine=v.engine, quality=v.quality)
        for v in available
    )
