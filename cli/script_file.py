"""``--script FILE``: a script the user wrote, read into the job's scenes.

Two forms, told apart by the file's name and first character:

- **JSON** (a ``.json`` file, or one that starts with ``[`` or ``{``): a list of scenes, each an object
  with ``narration`` (required) and optionally ``title``, ``caption`` and ``visualHint`` (``visual_hint``
  works too), as ``Scene`` in the API.
- **Plain text** (anything else): one scene per paragraph, paragraphs separated by blank lines; a
  paragraph's lines are joined with spaces.

A file that cannot be read or parsed raises E350-SCRIPT_FILE_INVALID, which the command reports with exit
status 2 before it starts or reaches any server. What a scene says (its length, an empty narration in
JSON) is checked by the server, as for any client.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from google.protobuf import json_format

from reelcast.jobs import errors
from reelcast.jobs.errors import ReelcastError
from reelcast.jobs.v1 import job_pb2

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# The JSON names of Scene's fields, and their proto names.
SCENE_FIELDS = frozenset({"title", "narration", "caption", "visualHint", "visual_hint"})
FIELDS_HELP = "a scene takes title, narration, caption and visualHint"


def _invalid(path: Path, why: str) -> ReelcastError:
    return ReelcastError(errors.SCRIPT_FILE_INVALID, f"--script {path}: {why}")


def read_script_file(path: Path) -> list[job_pb2.Scene]:
    """The scenes of the script at ``path``; E350 when the file cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _invalid(path, "the file is not UTF-8 text") from None
    except OSError as error:
        raise _invalid(path, f"cannot read the file ({error.strerror or error})") from None
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    is_json = path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{")
    scenes = _json_scenes(path, text) if is_json else _text_scenes(text)
    if not scenes:
        raise _invalid(path, "the file has no scene (write one paragraph per scene)")
    return scenes


def _text_scenes(text: str) -> list[job_pb2.Scene]:
    paragraphs = (" ".join(part.split()) for part in _PARAGRAPH_BREAK.split(text.replace("\r\n", "\n")))
    return [job_pb2.Scene(narration=paragraph) for paragraph in paragraphs if paragraph]


def _json_scenes(path: Path, text: str) -> list[job_pb2.Scene]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise _invalid(
            path, f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    if not isinstance(document, list):
        raise _invalid(path, "the JSON must be a list of scenes")
    scenes: list[job_pb2.Scene] = []
    for number, item in enumerate(document, start=1):
        if not isinstance(item, dict):
            raise _invalid(path, f"scene {number} is not an object with a narration")
        unknown = sorted(set(item) - SCENE_FIELDS)
        if unknown:
            raise _invalid(
                path, f"scene {number} has unknown fields {', '.join(map(repr, unknown))} ({FIELDS_HELP})"
            )
        try:
            scenes.append(json_format.ParseDict(item, job_pb2.Scene()))
        except json_format.ParseError as error:
            raise _invalid(path, f"scene {number}: {error}") from None
    return scenes
