"""Running jobs: the runner (claims, concurrency, cancel), the pipeline of one job's stages with its
checkpoints, the stall watchdog, the recorder that turns progress into stored events, and the ETA."""
