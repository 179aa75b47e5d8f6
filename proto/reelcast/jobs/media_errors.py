"""The catalogue's media codes, E040-E059: uploads (``UploadMedia``, ``POST /api/media``), the media records
and the references a job spec makes to them. Import them through ``reelcast.jobs.errors``.

Every refusal of an upload leaves nothing behind: no file, no record, the quota as it was."""

from __future__ import annotations

import grpc

from reelcast.jobs.error_codes import define

__all__ = [
    "MEDIA_KIND_MISMATCH",
    "MEDIA_NOT_FOUND",
    "MEDIA_QUOTA_EXCEEDED",
    "MEDIA_REFERENCE_UNKNOWN",
    "MEDIA_STREAMS_UNSUPPORTED",
    "MEDIA_TOO_LARGE",
    "MEDIA_TOO_LONG",
    "MEDIA_TOO_MANY_PIXELS",
    "MEDIA_TYPE_UNSUPPORTED",
    "MEDIA_UNREADABLE",
    "MEDIA_UPLOAD_INVALID",
]

_S = grpc.StatusCode

MEDIA_UPLOAD_INVALID = define(
    "E040-MEDIA_UPLOAD_INVALID",
    "Invalid upload",
    "The upload is malformed: no file part, no bytes, a stream that does not start with its metadata, or a "
    "file name longer than 255 characters.",
    "Send one file (multipart/form-data field `file`, or UploadMedia's metadata then its chunks); see "
    "docs/api.md, Media.",
    _S.INVALID_ARGUMENT,
    400,
)
MEDIA_TOO_LARGE = define(
    "E041-MEDIA_TOO_LARGE",
    "Upload too large",
    "The file is larger than the server accepts (REELCAST_MEDIA_MAX_BYTES).",
    "Send a smaller file: shrink the picture, shorten or re-encode the clip or track.",
    _S.INVALID_ARGUMENT,
    413,
)
MEDIA_TYPE_UNSUPPORTED = define(
    "E042-MEDIA_TYPE_UNSUPPORTED",
    "Unsupported media type",
    "The file's content is not an image (PNG, JPEG, GIF, WebP), a video clip or an audio track that the "
    "server can read. The type is sniffed from the bytes; the file name does not count.",
    "Upload a PNG or JPEG picture, an MP4/WebM/MOV clip, or a WAV/MP3/AAC/Ogg/FLAC track.",
    _S.INVALID_ARGUMENT,
    415,
)
MEDIA_TOO_MANY_PIXELS = define(
    "E043-MEDIA_TOO_MANY_PIXELS",
    "Picture too large",
    "The picture's width, height or pixel count is over the server's caps (REELCAST_MEDIA_MAX_PIXELS, "
    "REELCAST_MEDIA_MAX_SIDE); it is refused from its header, before it is decoded.",
    "Scale the picture down (a 1920x1080 picture is plenty for a video frame) and upload it again.",
    _S.INVALID_ARGUMENT,
    422,
)
MEDIA_TOO_LONG = define(
    "E044-MEDIA_TOO_LONG",
    "Clip or track too long",
    "The clip or track lasts longer than the server accepts (REELCAST_MEDIA_MAX_CLIP_SECONDS, "
    "REELCAST_MEDIA_MAX_AUDIO_SECONDS).",
    "Trim it and upload it again.",
    _S.INVALID_ARGUMENT,
    422,
)
MEDIA_UNREADABLE = define(
    "E045-MEDIA_UNREADABLE",
    "Media unreadable",
    "The file looks like a picture, clip or track but cannot be decoded: it is truncated or damaged.",
    "Upload the complete file again; check that it plays or opens on your machine.",
    _S.INVALID_ARGUMENT,
    422,
)
MEDIA_STREAMS_UNSUPPORTED = define(
    "E046-MEDIA_STREAMS_UNSUPPORTED",
    "Unsupported streams",
    "The file holds more streams than a clip or track may (at most one video and one audio stream; a "
    "track has no video), or a clip whose frame rate is out of range.",
    "Export the clip or track with one video or one audio stream and upload it again.",
    _S.INVALID_ARGUMENT,
    422,
)
MEDIA_QUOTA_EXCEEDED = define(
    "E047-MEDIA_QUOTA_EXCEEDED",
    "Media quota exceeded",
    "Storing this file would put you over your media quota (REELCAST_MEDIA_QUOTA_BYTES in total, "
    "REELCAST_MEDIA_QUOTA_COUNT files).",
    "Delete media you no longer need (`reelcast media list`, `reelcast media delete ID`) and upload again.",
    _S.RESOURCE_EXHAUSTED,
    413,
)
MEDIA_NOT_FOUND = define(
    "E048-MEDIA_NOT_FOUND",
    "Media not found",
    "No such media.",
    "Check the media id; list your media to find it. Media no job of yours uses is deleted after the "
    "retention period.",
    _S.NOT_FOUND,
    404,
)
MEDIA_REFERENCE_UNKNOWN = define(
    "E049-MEDIA_REFERENCE_UNKNOWN",
    "Unknown media in the spec",
    "The job spec refers to a media id that does not exist or is not yours.",
    "Upload the file first (POST /api/media, UploadMedia) and use the id it returns.",
    _S.INVALID_ARGUMENT,
    400,
)
MEDIA_KIND_MISMATCH = define(
    "E050-MEDIA_KIND_MISMATCH",
    "Wrong kind of media",
    "A media id in the job spec names the wrong kind of file: a background needs an image or a clip, a "
    "logo an image, the music an audio track.",
    "Refer to media of the right kind in each field (see the field violations).",
    _S.INVALID_ARGUMENT,
    400,
)
