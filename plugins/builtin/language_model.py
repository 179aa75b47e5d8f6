"""The script stage's language model: any OpenAI-compatible Chat Completions endpoint writes the scenes.

Ollama, llama.cpp's server, llama-cpp-python's server, vLLM, LM Studio and OpenAI all speak
``POST {base_url}/chat/completions``. The request asks for structured output (a JSON schema of scenes) and
streams its tokens, so the Script step's progress follows the tokens received against the length a script
of the target duration needs. The answer gets the checks of a user-supplied script; an invalid answer is
asked for once more, then the job fails with E113. Every failure is a catalogue code (E110-E114), a
cancel ends the request at once, and the stage's timeout bounds both tries together.

The API key goes into the ``Authorization`` header only: it is never logged, and every text that leaves
this module (error details, progress messages) has it removed, in case a server echoes it back.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from reelcast.jobs import errors
from reelcast.jobs.v1 import job_pb2
from reelcast.jobs.validation import validate_scenes
from reelcast.plugins import ReelcastError, StageContext

# What the JSON schema of the answer calls each scene's fields; visualHint as in the API's JSON.
SCENE_FIELDS = ("title", "narration", "caption", "visualHint")
RESPONSE_FORMATS = ("json_schema", "json_object")
# Roughly what one word of narration costs in tokens once wrapped in the JSON of its scene (narration,
# caption, title): the expected length that progress is measured against.
TOKENS_PER_NARRATED_WORD = 2.5
TOKENS_PER_SCENE = 30


@dataclass(frozen=True)
class ScriptSettings:
    """The script stage's settings, ``REELCAST_PLUGIN_SCRIPT_<FIELD>``: an OpenAI-compatible language model,
    off while base_url is empty (the built-in writer writes then)."""

    # The endpoint's base, the part before /chat/completions: http://127.0.0.1:11434/v1 for Ollama.
    base_url: str = ""
    model: str = ""
    # Sent as "Authorization: Bearer <key>" when set; never logged, never in an event.
    api_key: str = ""
    # Both tries (the first answer and the one retry) together.
    timeout_seconds: float = 120.0
    temperature: float = 0.7
    max_tokens: int = 2048
    # json_schema (OpenAI's form: OpenAI, Ollama, vLLM, LM Studio, llama.cpp's server) or json_object
    # (llama-cpp-python's server, which takes the schema beside it).
    response_format: str = "json_schema"


def scene_schema(max_scenes: int) -> dict[str, Any]:
    """The JSON schema of the answer: ``{"scenes": [{title, narration, caption, visualHint}, ...]}``."""
    return {
        "type": "object",
        "properties": {
            "scenes": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_scenes,
                "items": {
                    "type": "object",
                    "properties": {name: {"type": "string"} for name in SCENE_FIELDS},
                    "required": list(SCENE_FIELDS),
                    "additionalProperties": False,
                },
            }
        },
        "required": ["scenes"],
        "additionalProperties": False,
    }


def response_format(kind: str, schema: dict[str, Any]) -> dict[str, Any]:
    """``json_schema`` is OpenAI's form (OpenAI, Ollama, vLLM, LM Studio, llama.cpp's own server);
    ``json_object`` with a ``schema`` is llama-cpp-python's server's form."""
    if kind == "json_object":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": "script", "strict": True, "schema": schema}}


def messages(spec: job_pb2.JobSpec, words: int, scenes: int) -> list[dict[str, str]]:
    brief = spec.brief
    lines = [f"Topic: {brief.topic}"]
    for label, value in (("Audience", brief.audience), ("Goal", brief.goal), ("Tone", brief.tone)):
        if value:
            lines.append(f"{label}: {value}")
    if brief.key_points:
        lines.append("Key points, in order (one scene each, say only what they say):")
        lines.extend(f"- {point}" for point in brief.key_points)
    system = (
        "You write the narration of a short video. Answer with JSON only: an object with a list of scenes, "
        "each with a short title, the narration spoken aloud, an on-screen caption and a two-word visual "
        f"hint. Write in the language '{brief.language or 'en'}'. Write about {words} words of narration "
        f"in about {scenes} scenes: a hook, the points, a close. State no fact the brief does not give."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


def parse_scenes(spec: job_pb2.JobSpec, content: str) -> tuple[list[job_pb2.Scene], str]:
    """The scenes of an answer and ``""``, or ``[]`` and why the answer is not a usable script."""
    try:
        document = json.loads(content)
    except json.JSONDecodeError as error:
        return [], f"the answer is not JSON ({error.msg} at character {error.pos})"
    raw = document.get("scenes") if isinstance(document, dict) else None
    if not isinstance(raw, list):
        return [], "the answer has no list of scenes"
    scenes: list[job_pb2.Scene] = []
    for number, item in enumerate(raw, start=1):
        if not isinstance(item, dict) or not all(
            isinstance(item.get(name, ""), str) for name in SCENE_FIELDS
        ):
            return [], f"scene {number} is not an object of strings"
        scenes.append(
            job_pb2.Scene(
                title=item.get("title", ""),
                narration=item.get("narration", ""),
                caption=item.get("caption", ""),
                visual_hint=item.get("visualHint", ""),
            )
        )
    # The checks of a user-supplied script: narration required, lengths, no control characters, duration.
    violations = validate_scenes(spec, scenes)
    if violations:
        return [], f"{violations[0].field} {violations[0].description}"
    return scenes, ""


class _Redactor:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def __call__(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text


class ChatClient:
    """One script's requests to the model server, with the stage's progress, cancel and deadline."""

    def __init__(self, ctx: StageContext, settings: ScriptSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.redact = _Redactor(settings.api_key)
        self.url = settings.base_url.rstrip("/") + "/chat/completions"

    async def write(self) -> list[job_pb2.Scene]:
        """The model's scenes, asked for at most twice; raises a catalogued ReelcastError otherwise."""
        spec = self.ctx.spec
        target = spec.plan.target_duration_seconds or 30.0
        words = max(10, round(target * (spec.voice.rate or 160) / 60.0))
        scenes_wanted = max(2, min(8, round(target / 8)))
        expected_tokens = min(
            self.settings.max_tokens,
            round(words * TOKENS_PER_NARRATED_WORD + scenes_wanted * TOKENS_PER_SCENE),
        )
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": messages(spec, words, scenes_wanted),
            "stream": True,
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
            "response_format": response_format(
                self.settings.response_format, scene_schema(max(2, scenes_wanted * 2))
            ),
        }
        headers = {"Accept": "text/event-stream"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        deadline = time.monotonic() + self.settings.timeout_seconds
        problem = ""
        for attempt in (1, 2):
            low, high = (0.05, 0.45) if attempt == 1 else (0.45, 0.85)
            self.ctx.report(
                low, "Asking the language model" if attempt == 1 else "Asking the language model again"
            )
            content = await self._bounded(self._complete(body, headers, expected_tokens, low, high), deadline)
            scenes, problem = parse_scenes(spec, content)
            if scenes:
                return scenes
            self.ctx.log.warning("language model answer %d is not a usable script: %s", attempt, problem)
            # The retry says what was wrong (a model that can follow it will), without the bad answer itself,
            # which may have filled the context.
            body = {
                **body,
                "messages": [
                    *body["messages"],
                    {
                        "role": "user",
                        "content": f"That answer was not usable: {problem}. Answer with the JSON only.",
                    },
                ],
            }
        raise ReelcastError(
            errors.MODEL_OUTPUT_INVALID,
            self.redact(f"The language model's answer was not a valid script, twice; the last: {problem}."),
        )

    async def _bounded(self, work: Any, deadline: float) -> str:
        """``work`` raced against the job's cancel and the stage's deadline."""
        task = asyncio.ensure_future(work)
        cancelled = asyncio.ensure_future(self.ctx.cancel_event.wait())
        try:
            done, _ = await asyncio.wait(
                {task, cancelled},
                timeout=max(0.0, deadline - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            cancelled.cancel()
        if task in done:
            return str(task.result())
        # Cancelling the task closes the connection, which tells the server to stop generating.
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if cancelled in done:
            raise ReelcastError(errors.CANCELLED)
        raise ReelcastError(
            errors.MODEL_TIMEOUT,
            f"The language model did not finish the script within {self.settings.timeout_seconds:g} s.",
        )

    async def _complete(
        self, body: dict[str, Any], headers: dict[str, str], expected_tokens: int, low: float, high: float
    ) -> str:
        parts: list[str] = []
        reported = low
        try:
            # No timeout of httpx's own: _bounded holds the one deadline, for both tries together.
            async with (
                httpx.AsyncClient(timeout=None) as client,
                client.stream("POST", self.url, json=body, headers=headers) as response,
            ):
                if response.status_code >= 400:
                    raise self._http_error(
                        response.status_code, (await response.aread()).decode(errors="replace")
                    )
                tokens = 0
                async for text in _sse_contents(response):
                    parts.append(text)
                    tokens += 1
                    fraction = low + (high - low) * min(1.0, tokens / max(1, expected_tokens))
                    # A tick per 2 % of the stage: real progress, not an event per token.
                    if fraction - reported >= 0.02:
                        reported = fraction
                        self.ctx.report(fraction, f"Writing the script: {tokens} tokens")
        except httpx.ConnectError as error:
            raise ReelcastError(
                errors.MODEL_UNREACHABLE,
                self.redact(
                    f"Could not connect to the language model at {self.settings.base_url} ({error})."
                ),
            ) from None
        except httpx.TransportError as error:
            raise ReelcastError(
                errors.MODEL_UNREACHABLE,
                self.redact(
                    f"The connection to the language model at {self.settings.base_url} broke ({error})."
                ),
            ) from None
        return "".join(parts)

    def _http_error(self, status: int, text: str) -> ReelcastError:
        if status in (401, 403):
            return ReelcastError(
                errors.MODEL_UNAUTHORIZED,
                f"The language model at {self.settings.base_url} refused the API key (HTTP {status}).",
            )
        snippet = " ".join(text.split())[:300]
        return ReelcastError(
            errors.MODEL_HTTP_ERROR,
            self.redact(f"The language model at {self.settings.base_url} answered HTTP {status}: {snippet}"),
        )


async def _sse_contents(response: httpx.Response) -> AsyncIterator[str]:
    """The ``choices[0].delta.content`` of each ``data:`` event of a streamed Chat Completion."""
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            continue
        if isinstance(chunk, dict) and chunk.get("error"):
            raise ReelcastError(errors.MODEL_HTTP_ERROR, "The language model reported an error mid-stream.")
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not choices:
            continue
        text = (choices[0].get("delta") or {}).get("content")
        if text:
            yield text


async def write_scenes(ctx: StageContext, settings: ScriptSettings) -> list[job_pb2.Scene]:
    """The scenes the language model at ``settings.base_url`` writes for ``ctx.spec``."""
    return await ChatClient(ctx, settings).write()
