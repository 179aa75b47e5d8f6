"""Per-user quotas on resources, beside the counts (security/limits.py, E021-E023) and media quota (E047).

- Render time (E061): the video seconds of the owner's unfinished jobs (Queued, Running, AwaitingReview),
  the new one included, may not pass ``max_queued_render_seconds_per_user``. A job's seconds are what the
  kernel expects of its spec (``expected_video_seconds``: a supplied script's narration, else the target).
- Stored bytes (E062): what the owner keeps, finished videos (``JobOutput.size_bytes``) plus uploaded
  media, may not pass ``max_stored_bytes_per_user``. A new job is refused once the owner is at the limit
  (its own video's size is not known before it is made); an upload is refused when its bytes would pass it,
  through the media store's own quota check, so that the two never disagree.

Both are read from the stores when asked (the job store sums an index on SQLite: ``owner_usage``), never
counted on the side: on NATS several API servers share one deployment, and a count kept in one process
would drift. The check and the job's creation are one step per
process (the caller holds the owner's creation lock), as for E022."""

from __future__ import annotations

from dataclasses import dataclass

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.validation import expected_video_seconds
from reelcast.server.config import Settings
from reelcast.server.media.store import MediaStore, Quota, create_time_us
from reelcast.server.storage.job_store import JobStore

# Media are summed a page at a time, so that a user with many never loads them all at once (the jobs'
# store sums them itself: JobStore.owner_usage).
USAGE_PAGE_SIZE = 500
# What a render-time refusal is told to wait: the quota frees as the owner's jobs finish (as E022's).
RENDER_TIME_RETRY_SECONDS = 10.0


class QuotaRefusalError(Exception):
    """New work refused by a quota: the catalogue error and how long to wait before trying again (None:
    waiting frees nothing)."""

    def __init__(self, error: ReelcastError, retry_after_seconds: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class Usage:
    """What one owner holds now."""

    unfinished_jobs: int
    queued_render_seconds: float
    output_bytes: int
    media_bytes: int
    media_count: int

    @property
    def stored_bytes(self) -> int:
        return self.output_bytes + self.media_bytes


async def usage_of(store: JobStore, media: MediaStore, owner: str) -> Usage:
    """The owner's usage, read from the job and media stores."""
    jobs = await store.owner_usage(owner)
    media_bytes, media_count = 0, 0
    after: tuple[int, str] | None = None
    while True:
        records = await media.list_media(owner, USAGE_PAGE_SIZE, after)
        media_bytes += sum(record.size_bytes for record in records)
        media_count += len(records)
        if len(records) < USAGE_PAGE_SIZE:
            break
        after = (create_time_us(records[-1]), records[-1].id)
    return Usage(
        jobs.unfinished_jobs, jobs.queued_render_seconds, jobs.output_bytes, media_bytes, media_count
    )


class ResourceQuotas:
    """The two quotas of one deployment's settings (0 turns one off)."""

    def __init__(self, settings: Settings, store: JobStore, media: MediaStore) -> None:
        self.max_render_seconds = settings.max_queued_render_seconds_per_user
        self.max_stored_bytes = settings.max_stored_bytes_per_user
        self.media_quota = Quota(settings.media_quota_bytes, settings.media_quota_count)
        self.store = store
        self.media = media

    async def check_new_work(self, owner: str, spec: job_pb2.JobSpec) -> None:
        """Raises QuotaRefusalError (E061, E062) if ``owner`` may not queue a job of ``spec`` (defaults in):
        a new job, or a finished one run again (RetryJob), which becomes unfinished once more."""
        if not self.max_render_seconds and not self.max_stored_bytes:
            return
        usage = await usage_of(self.store, self.media, owner)
        seconds = expected_video_seconds(spec)
        if self.max_render_seconds and usage.queued_render_seconds + seconds > self.max_render_seconds:
            detail = (
                f"Your {usage.unfinished_jobs} unfinished jobs hold {usage.queued_render_seconds:.0f} s of "
                f"video; this job's {seconds:.0f} s would pass the limit of {self.max_render_seconds:.0f} s. "
                "Wait for a job to finish, or cancel or delete one."
            )
            raise QuotaRefusalError(
                ReelcastError(errors.RENDER_TIME_QUOTA_EXCEEDED, detail), RENDER_TIME_RETRY_SECONDS
            )
        if self.max_stored_bytes and usage.stored_bytes >= self.max_stored_bytes:
            detail = _stored_summary(usage, self.max_stored_bytes)
            raise QuotaRefusalError(ReelcastError(errors.STORAGE_QUOTA_EXCEEDED, detail))

    def upload_quota(self, usage: Usage) -> Quota:
        """The media quota an upload is checked against: the media quota, narrowed to what the stored-bytes
        quota leaves beside the owner's videos."""
        if not self.max_stored_bytes:
            return self.media_quota
        left_for_media = max(0, self.max_stored_bytes - usage.output_bytes)
        return Quota(min(self.media_quota.max_bytes, left_for_media), self.media_quota.max_count)

    def upload_refusal(self, usage: Usage, size_bytes: int) -> ReelcastError:
        """The error of an upload of ``size_bytes`` that ``upload_quota`` refused: E047 when the media quota
        alone refuses it, else E062."""
        quota = self.media_quota
        if usage.media_count + 1 > quota.max_count or usage.media_bytes + size_bytes > quota.max_bytes:
            return ReelcastError(
                errors.MEDIA_QUOTA_EXCEEDED,
                f"You store {usage.media_count} files of {usage.media_bytes} bytes; this file of "
                f"{size_bytes} bytes would pass the quota of {quota.max_count} files and "
                f"{quota.max_bytes} bytes.",
            )
        return ReelcastError(
            errors.STORAGE_QUOTA_EXCEEDED,
            f"{_stored_summary(usage, self.max_stored_bytes)} This file of {size_bytes} bytes would pass it.",
        )


def _stored_summary(usage: Usage, limit: int) -> str:
    return (
        f"Your finished videos keep {usage.output_bytes} bytes and your media {usage.media_bytes} bytes: "
        f"{usage.stored_bytes} of the limit of {limit} bytes. Delete jobs or media you no longer need."
    )
