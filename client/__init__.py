"""reelcast.client: the Python client library for the JobService (async and sync)."""
