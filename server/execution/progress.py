"""Overall percent from stage weights.

The first 10 % belong to the job's initialization (the seed's "Initialization" stage: workspace and
checkpoints prepared); the other 90 % are shared by the stages in proportion to their weights. With the
built-in weights (script 20, voice 20, visuals 20, render 20, postprocess 10) each stage starts at the seed's
boundary: Script 10, Voice 30, Visuals 50, Rendering 70, Postprocessing 90, Done 100. A stage added by a
plugin takes its share without code changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

INITIALIZATION_PERCENT = 10.0


@dataclass(frozen=True)
class StageSpan:
    name: str
    start: float
    end: float


class ProgressModel:
    def __init__(self, weights: Sequence[tuple[str, float]]) -> None:
        total = sum(weight for _, weight in weights)
        spans: dict[str, StageSpan] = {}
        position = INITIALIZATION_PERCENT
        for name, weight in weights:
            share = (100.0 - INITIALIZATION_PERCENT) * weight / total if total else 0.0
            spans[name] = StageSpan(name, position, position + share)
            position += share
        self._spans = spans

    def knows(self, name: str) -> bool:
        return name in self._spans

    def share(self, name: str) -> float:
        """The stage's share of the overall percent."""
        span = self._spans[name]
        return span.end - span.start

    def stage_start(self, name: str) -> float:
        return round(self._spans[name].start, 4)

    def job_percent(self, name: str, fraction: float) -> float:
        """The overall percent when stage ``name`` is ``fraction`` (0..1) done."""
        span = self._spans[name]
        return round(span.start + (span.end - span.start) * min(1.0, max(0.0, fraction)), 4)
