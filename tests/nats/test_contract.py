"""The contract suite: every JobService behaviour of tests/test_job_service.py, on SQLite and on NATS.

The tests are the same functions; tests/nats/conftest.py parametrizes the ``settings`` they build their server
from. A behaviour that one backend has and the other lacks fails here.
"""

from reelcast.plugins.host import PluginHost
from reelcast.server.app import ReelcastServer
from reelcast.server.config import Settings
from reelcast.server.storage.job_store import DURATIONS_KEPT
from tests.test_job_service import *  # noqa: F403

# The store's own contract beyond JobService (what only the runner uses) follows.


async def test_stage_durations_keep_the_newest_per_bucket_and_stage_and_survive_a_restart(
    server: ReelcastServer, settings: Settings, bare_host: PluginHost
) -> None:
    store = server.store
    small, large = "640x360.30fps.8s", "1280x720.vfr.32s"
    await store.record_stage_durations(small, {"voice": 0.25, "render": 0.0})
    for index in range(1, DURATIONS_KEPT + 5):
        await store.record_stage_durations(small, {"render": float(index)})
    await store.record_stage_durations(large, {"render": 99.5})
    expected = {"render": [float(i) for i in range(5, DURATIONS_KEPT + 5)], "voice": [0.25]}
    assert await store.stage_durations(small) == expected
    assert await store.stage_durations(large) == {"render": [99.5]}
    assert await store.stage_durations("320x180.30fps.4s") == {}
    # Another process (a restarted server) opening the same store finds them.
    restarted = ReelcastServer(settings, host=bare_host)
    await restarted.start()
    try:
        assert await restarted.store.stage_durations(small) == expected
    finally:
        await restarted.stop(grace=0.5)
