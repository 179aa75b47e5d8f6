"""The catalogue's job codes: E1xx script, E2xx voice, E3xx render and job runtime, E4xx visuals, E5xx
internal, E6xx resources, E7xx lifecycle. Import them through ``reelcast.jobs.errors``."""

from __future__ import annotations

import grpc

from reelcast.jobs.error_codes import define

__all__ = [
    "ARTIFACT_MISSING",
    "BRIEF_INVALID",
    "CANCELLED",
    "FFMPEG_NOT_FOUND",
    "FFMPEG_RUNTIME",
    "INTERNAL",
    "INTERRUPTED",
    "JOB_STALLED",
    "LANGUAGE_UNSUPPORTED",
    "LOW_DISK_SPACE",
    "MEDIA_NOT_AN_IMAGE",
    "MEDIA_NOT_AVAILABLE",
    "MODEL_HTTP_ERROR",
    "MODEL_OUTPUT_INVALID",
    "MODEL_TIMEOUT",
    "MODEL_UNAUTHORIZED",
    "MODEL_UNREACHABLE",
    "MOTION_NEEDS_CONSTANT_FRAME_RATE",
    "NARRATION_TOO_LONG",
    "OUTPUT_INVALID",
    "RENDER_TIMEOUT",
    "REVIEW_EXPIRED",
    "SCRIPT_FILE_INVALID",
    "SCRIPT_INVALID",
    "STAGE_FAILED",
    "STAGE_MISSING",
    "TTS_FAILED",
    "UNKNOWN_THEME",
    "VISUALS_FAILED",
    "VOICE_UNKNOWN",
    "WORKER_LOST",
]

_S = grpc.StatusCode

BRIEF_INVALID = define(
    "E101-BRIEF_INVALID",
    "Brief cannot be scripted",
    "The brief does not contain enough usable text to write a script.",
    "Give a topic with at least one word of letters or digits.",
    _S.INVALID_ARGUMENT,
    400,
    ["Rephrase the topic", "Add an audience and a goal to the brief"],
)
SCRIPT_INVALID = define(
    "E102-SCRIPT_INVALID",
    "Supplied script is invalid",
    "The user-supplied script has a scene without narration or a scene that is too long.",
    "Give every scene 1 to 2000 characters of narration, and at most 100 scenes.",
    _S.INVALID_ARGUMENT,
    400,
    ["Check each scene's narration", "Split long scenes"],
)
LANGUAGE_UNSUPPORTED = define(
    "E103-LANGUAGE_UNSUPPORTED",
    "Language not supported",
    "The script writer has no template for the requested language.",
    "Use a supported language (see docs/stages.md) or supply your own script.",
    _S.INVALID_ARGUMENT,
    400,
    ["Set brief.language to 'en'", "Supply a script in your language"],
)

# E110-E119: the script stage's language model (plugins/builtin/language_model.py). The base URL is the
# operator's setting, so the remediations speak to the operator; no message ever holds the API key.
MODEL_UNREACHABLE = define(
    "E110-MODEL_UNREACHABLE",
    "Language model unreachable",
    "The script stage could not connect to the language model server at its base URL.",
    "Start the model server (Ollama, llama.cpp, vLLM, LM Studio...) or correct "
    "REELCAST_PLUGIN_SCRIPT_BASE_URL; unset it to use the built-in writer.",
    _S.UNAVAILABLE,
    503,
    ["Check that the model server is running", "Check REELCAST_PLUGIN_SCRIPT_BASE_URL", "Retry the job"],
)
MODEL_UNAUTHORIZED = define(
    "E111-MODEL_UNAUTHORIZED",
    "Language model refused the key",
    "The language model server refused the script stage's API key (HTTP 401 or 403).",
    "Set REELCAST_PLUGIN_SCRIPT_API_KEY to a key the server accepts, with access to the model.",
    _S.FAILED_PRECONDITION,
    502,
    ["Check REELCAST_PLUGIN_SCRIPT_API_KEY", "Check the key's access to REELCAST_PLUGIN_SCRIPT_MODEL"],
)
MODEL_TIMEOUT = define(
    "E112-MODEL_TIMEOUT",
    "Language model timed out",
    "The language model did not finish the script within the script stage's timeout.",
    "Use a faster or smaller model, shorten the target duration, or raise "
    "REELCAST_PLUGIN_SCRIPT_TIMEOUT_SECONDS.",
    _S.DEADLINE_EXCEEDED,
    504,
    ["Retry the job", "Raise REELCAST_PLUGIN_SCRIPT_TIMEOUT_SECONDS"],
)
MODEL_OUTPUT_INVALID = define(
    "E113-MODEL_OUTPUT_INVALID",
    "Language model wrote no usable script",
    "The language model's answer was not a valid script, twice (it was asked once more after the first).",
    "Use a model that follows JSON schemas, raise REELCAST_PLUGIN_SCRIPT_MAX_TOKENS, or supply the script "
    "yourself.",
    _S.INTERNAL,
    502,
    ["Retry the job", "Raise REELCAST_PLUGIN_SCRIPT_MAX_TOKENS", "Choose a larger model"],
)
MODEL_HTTP_ERROR = define(
    "E114-MODEL_HTTP_ERROR",
    "Language model request failed",
    "The language model server answered the script request with an HTTP error.",
    "Read the status and the server's message; check REELCAST_PLUGIN_SCRIPT_MODEL and "
    "REELCAST_PLUGIN_SCRIPT_RESPONSE_FORMAT against what the server supports.",
    _S.UNAVAILABLE,
    502,
    ["Check the model name", "Check the model server's logs", "Retry the job"],
)

VOICE_UNKNOWN = define(
    "E201-VOICE_UNKNOWN",
    "Unknown voice",
    "The requested voice is not installed.",
    "Choose one of the available voices listed in the message.",
    _S.INVALID_ARGUMENT,
    400,
    ["List voices with `reelcast voices`", "Leave the voice empty to use the language's default"],
)
TTS_FAILED = define(
    "E202-TTS_FAILED",
    "Speech synthesis failed",
    "The speech engine could not synthesize the narration.",
    "Check that espeakng-loader is installed correctly; retry the job.",
    _S.INTERNAL,
    500,
    ["Reinstall reelcast to restore espeakng-loader", "Retry the job"],
)
NARRATION_TOO_LONG = define(
    "E203-NARRATION_TOO_LONG",
    "Narration too long",
    "The spoken narration runs past the duration limit.",
    "Shorten the script: numbers, abbreviations and long words take longer to say than their words suggest.",
    _S.INVALID_ARGUMENT,
    400,
    ["Shorten the scenes' narration", "Write long numbers in words or round them", "Raise the voice rate"],
)

FFMPEG_NOT_FOUND = define(
    "E302-FFMPEG_NOT_FOUND",
    "FFmpeg not found",
    "The ffmpeg executable could not be found or started.",
    "Reinstall reelcast so that imageio-ffmpeg provides ffmpeg, or set REELCAST_FFMPEG to a working ffmpeg.",
    _S.FAILED_PRECONDITION,
    500,
    ["Run `pip install --force-reinstall imageio-ffmpeg`", "Check REELCAST_FFMPEG"],
)
FFMPEG_RUNTIME = define(
    "E304-FFMPEG_RUNTIME",
    "FFmpeg render failed",
    "FFmpeg exited with an error while rendering.",
    "Read the stderr snippet and the log; check custom encoder options in the configuration.",
    _S.INTERNAL,
    500,
    [
        "Open the FFmpeg log at the log path",
        "Remove custom encoder options (REELCAST_FFMPEG_EXTRA_ARGS)",
        "Retry with a lower resolution",
    ],
)
JOB_STALLED = define(
    "E305-JOB_STALLED",
    "Job stalled",
    "A stage reported no progress for too long and was stopped.",
    "Retry the job; if it stalls again, raise the stall timeout or check the machine's load.",
    _S.DEADLINE_EXCEEDED,
    500,
    ["Retry the job", "Check CPU and disk load on the server", "Raise REELCAST_STALL_TIMEOUT"],
)
ARTIFACT_MISSING = define(
    "E306-ARTIFACT_MISSING",
    "Stage input missing",
    "A stage did not find the files an earlier stage should have produced.",
    "Check that a plugin replacing a built-in stage publishes the same artifacts (see docs/stages.md).",
    _S.FAILED_PRECONDITION,
    500,
    ["Check replaced stages against docs/stages.md", "Retry the job"],
)
RENDER_TIMEOUT = define(
    "E308-RENDER_TIMEOUT",
    "Render timed out",
    "The render took longer than the configured limit.",
    "Shorten the video, lower the resolution, or raise REELCAST_RENDER_TIMEOUT.",
    _S.DEADLINE_EXCEEDED,
    500,
    ["Lower the resolution", "Shorten the target duration", "Raise REELCAST_RENDER_TIMEOUT"],
)
STAGE_FAILED = define(
    "E309-STAGE_FAILED",
    "Stage failed",
    "A stage failed with an unexpected error.",
    "Retry the job. If it fails again, report it with the correlation id.",
    _S.INTERNAL,
    500,
    ["Retry the job", "Report the correlation id to the operator"],
)
OUTPUT_INVALID = define(
    "E310-OUTPUT_INVALID",
    "Output failed verification",
    "The rendered video did not decode cleanly.",
    "Retry the job; check free disk space and the FFmpeg log.",
    _S.INTERNAL,
    500,
    ["Retry the job", "Open the FFmpeg log at the log path"],
)
CANCELLED = define(
    "E311-CANCELLED",
    "Job cancelled",
    "The job was cancelled.",
    "Create the job again if you still want the video.",
    _S.CANCELLED,
    409,
)
STAGE_MISSING = define(
    "E312-STAGE_MISSING",
    "Stage not installed",
    "A stage this job needs is not installed or was disabled.",
    "Install the plugin that provides it, or remove it from REELCAST_DISABLED_PLUGINS.",
    _S.FAILED_PRECONDITION,
    500,
)
MOTION_NEEDS_CONSTANT_FRAME_RATE = define(
    "E320-MOTION_NEEDS_CONSTANT_FRAME_RATE",
    "Motion needs a constant frame rate",
    "The render was asked for a variable frame rate with motion or transitions; every frame of a moving "
    "picture differs, so a variable frame rate cannot save anything and is not offered.",
    "Turn off render.variableFrameRate, or set plan.motion to MOTION_NONE and plan.transition to "
    "TRANSITION_NONE (still cards, which a variable frame rate renders fastest).",
    _S.INVALID_ARGUMENT,
    400,
    ["Turn off variableFrameRate", "Choose MOTION_NONE and TRANSITION_NONE"],
)
SCRIPT_FILE_INVALID = define(
    "E350-SCRIPT_FILE_INVALID",
    "Script file cannot be used",
    "The command line's --script file cannot be read or parsed.",
    'Give a UTF-8 file: a JSON list of scenes ({"title", "narration", "caption", "visualHint"}, '
    "narration required), or plain text with one scene per paragraph (see `reelcast render --help`).",
    _S.INVALID_ARGUMENT,
    400,
    ["Check the file's path", "Validate the JSON", "Write one scene per paragraph in a .txt file"],
)

VISUALS_FAILED = define(
    "E401-VISUALS_FAILED",
    "Visuals failed",
    "The scene images could not be drawn.",
    "Retry the job; check free disk space.",
    _S.INTERNAL,
    500,
)

UNKNOWN_THEME = define(
    "E405-UNKNOWN_THEME",
    "Unknown visual theme",
    "The plan's style names no visual theme the visuals stage has.",
    'Leave spec.plan.style empty for the default, or use a name from ListThemes ("clean", "bold", "paper").',
    _S.INVALID_ARGUMENT,
    400,
    ["List the themes (GET /api/themes)", "Leave the style empty"],
)

MEDIA_NOT_AN_IMAGE = define(
    "E406-MEDIA_NOT_AN_IMAGE",
    "Media is not an image",
    "The logo or a scene's background image refers to an upload that is not an image the visuals stage "
    "can draw.",
    "Upload a PNG or JPEG image and use its media id for the logo or the scene's background.",
    _S.INVALID_ARGUMENT,
    400,
    ["Upload the logo as an image", "Use a clip only as a scene background"],
)

MEDIA_NOT_AVAILABLE = define(
    "E451-MEDIA_NOT_AVAILABLE",
    "Media not available",
    "A file the job refers to (a scene's background, the logo or the music track) was deleted, has expired "
    "or does not belong to the job's owner.",
    "Upload the file again and create the job with its new media id, or remove the reference.",
    _S.FAILED_PRECONDITION,
    409,
)

INTERNAL = define(
    "E500-INTERNAL",
    "Internal error",
    "An internal error occurred.",
    "Retry; if it persists, report the correlation id to the operator.",
    _S.INTERNAL,
    500,
)

LOW_DISK_SPACE = define(
    "E601-LOW_DISK_SPACE",
    "Low disk space",
    "There is too little free disk space to run the next stage.",
    "Free disk space in the data directory or lower the retention period (`reelcast gc`).",
    _S.RESOURCE_EXHAUSTED,
    507,
    ["Run `reelcast gc`", "Free disk space in the data directory"],
)

INTERRUPTED = define(
    "E701-INTERRUPTED",
    "Job interrupted",
    "The job was interrupted by restarts more often than allowed.",
    "Retry the job; check the server's logs for why it restarted.",
    _S.ABORTED,
    500,
    ["Retry the job", "Check the server's logs"],
)

WORKER_LOST = define(
    "E702-WORKER_LOST",
    "Worker lost",
    "The workers running the job stopped responding more often than allowed.",
    "Retry the job; check the workers' logs and resources (memory, disk) for why they died.",
    _S.ABORTED,
    500,
    ["Retry the job", "Check the workers' logs"],
)

REVIEW_EXPIRED = define(
    "E703-REVIEW_EXPIRED",
    "Review expired",
    "The job waited for its script to be approved longer than the server allows.",
    "Create the job again and approve its script sooner, or ask the operator to raise "
    "REELCAST_REVIEW_TIMEOUT.",
    _S.DEADLINE_EXCEEDED,
    408,
    ["Create the job again", "Approve the script before the review expires"],
)
