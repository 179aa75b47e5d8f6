"""Small stages that tests register through the real hooks. Test code, not stubs of the product: each one
does real (tiny) work in its work dir and reports real progress."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from reelcast.jobs import errors
from reelcast.plugins import ReelcastError, Stage, StageContext, hookimpl

# The built-in pipeline's names and weights, so that tests of the runner see the seed's boundaries.
BUILTIN_SHAPE = (
    ("script", "Script", 20.0, 100),
    ("voice", "Voice", 20.0, 200),
    ("visuals", "Visuals", 20.0, 300),
    ("render", "Rendering", 20.0, 400),
    ("postprocess", "Postprocessing", 10.0, 500),
)


def writing_stage(name: str, steps: int = 4, delay: float = 0.0) -> Callable[[StageContext], Any]:
    async def run(ctx: StageContext) -> dict[str, Any]:
        target = ctx.path(f"{name}.txt")
        with target.open("w") as handle:
            for index in range(1, steps + 1):
                ctx.raise_if_cancelled()
                handle.write(f"{name} {index}\n")
                await asyncio.sleep(delay)
                ctx.report(index / steps, f"{name} {index}/{steps}")
        result: dict[str, Any] = {name: target.name}
        if name == "postprocess":
            result["output"] = {"video_path": str(target), "size_bytes": target.stat().st_size}
        return result

    return run


class PipelinePlugin:
    """Registers the built-in shape with writing stages; ``delay`` slows each step, ``fail_at`` raises (its
    first ``fail_times`` runs only, when given: then it writes like the others, as a fixed cause would).
    Jobs whose brief topic is ``hang_topic`` hang in their first stage until cancelled (long jobs beside
    short ones). ``hold_at`` makes that stage wait, before it starts, until ``release`` is set: a test that
    must act while the job is still running holds it there instead of racing its steps."""

    def __init__(
        self,
        delay: float = 0.0,
        fail_at: str | None = None,
        hang_at: str | None = None,
        fail_times: int | None = None,
        hang_topic: str | None = None,
        hold_at: str | None = None,
    ) -> None:
        self.delay = delay
        self.hold_at = hold_at
        self.release = asyncio.Event()
        self.hang_topic = hang_topic
        self.fail_at = fail_at
        self.hang_at = hang_at
        self.fail_times = fail_times
        # How many times the ``fail_at`` stage ran, when it fails ``fail_times`` times.
        self.runs: dict[str, int] = {}

    @hookimpl
    def register_stages(self, register: Callable[[Stage], None]) -> None:
        for name, title, weight, order in BUILTIN_SHAPE:
            run = writing_stage(name, delay=self.delay)
            if name == self.fail_at:
                run = self._failing if self.fail_times is None else self._fails_first(name)
            elif name == self.hang_at:
                run = self._hanging
            if self.hang_topic is not None and order == BUILTIN_SHAPE[0][3]:
                run = self._hanging_on_topic(run)
            if name == self.hold_at:
                run = self._held(run)
            register(Stage(name=name, title=title, weight=weight, order=order, run=run))

    def _held(self, run: Callable[[StageContext], Any]) -> Callable[[StageContext], Any]:
        async def held(ctx: StageContext) -> Any:
            await self.release.wait()
            return await run(ctx)

        return held

    def _hanging_on_topic(self, run: Callable[[StageContext], Any]) -> Callable[[StageContext], Any]:
        async def maybe_hang(ctx: StageContext) -> Any:
            if ctx.spec.brief.topic == self.hang_topic:
                return await self._hanging(ctx)
            return await run(ctx)

        return maybe_hang

    def _fails_first(self, name: str) -> Callable[[StageContext], Any]:
        writes = writing_stage(name, delay=self.delay)

        async def run(ctx: StageContext) -> Any:
            self.runs[name] = self.runs.get(name, 0) + 1
            if self.runs[name] <= (self.fail_times or 0):
                return self._failing(ctx)
            return await writes(ctx)

        return run

    @staticmethod
    def _failing(ctx: StageContext) -> None:
        ctx.report(0.5, "about to fail")
        raise ValueError("boom: /secret/path must not leak")

    @staticmethod
    async def _hanging(ctx: StageContext) -> None:
        ctx.report(0.1, "hanging")
        result = await ctx.run_subprocess(["sleep", "60"])
        if result.cancelled:
            raise ReelcastError(errors.CANCELLED)
