"""The orchestration: build() = make_plan -> synthesize -> write_outputs.

Each stage returns its own report; build() composes them into BuildResult.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline import package
from pipeline.cache import CachedAudio, SegmentCache, open_cache
from pipeline.config import Config
from pipeline.errors import BudgetError, OfflineMissError
from pipeline.plan import Plan, make_plan
from pipeline.progress import LogProgress, Progress
from pipeline.tts import get_backend
from pipeline.tts.base import Audio, SynthesisRequest

log = logging.getLogger("pipeline")


@dataclass
class BuildResult:
    segments_synthesized: int = 0
    segments_cached: int = 0
    credits_spent: int = 0
    chapters_written: int = 0
    chapters_unchanged: int = 0
    outputs: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {
            "segments_synthesized": self.segments_synthesized,
            "segments_cached": self.segments_cached,
            "credits_spent": self.credits_spent,
            "chapters_written": self.chapters_written,
            "chapters_unchanged": self.chapters_unchanged,
            "outputs": self.outputs,
            **self.extra,
        }


def build(cfg: Config, chapters: Sequence[str] = (), backend: str | None = None, jobs: int = 4,
          max_credits: int | None = None, offline: bool = False, force: bool = False,
          progress: Progress | None = None) -> BuildResult:
    progress = progress or LogProgress()
    with open_cache(cfg) as cache, cache.shared():
        plan = make_plan(cfg, cache, backend, chapters)
        result = BuildResult()
        synthesize(plan, cache, jobs, max_credits, offline, progress, result)
        written = package.write_outputs(plan, cache, jobs, force, progress)
        result.chapters_written = written.chapters_written
        result.chapters_unchanged = written.chapters_unchanged
        result.outputs = written.outputs
        result.extra["book_written"] = written.book_written
        return result


def synthesize(plan: Plan, cache: SegmentCache, jobs: int = 4, max_credits: int | None = None,
               offline: bool = False, progress: Progress | None = None,
               result: BuildResult | None = None) -> BuildResult:
    """Make and cache every segment the plan still needs; nothing is encoded."""
    progress = progress or LogProgress()
    result = result if result is not None else BuildResult()
    to_send = plan.to_send()
    need = sum(s.credits for _, s in to_send)
    result.segments_cached = plan.totals()["cached_segments"]
    if not to_send:
        return result
    if offline:
        first = to_send[0]
        raise OfflineMissError(
            f"--offline: {len(to_send)} segment(s) are not in the cache, first in chapter "
            f"{first[0].index} '{first[0].title}' ({first[0].source}, line {first[1].line}); "
            "build once without --offline to make them")
    # The same rule offline: the budget is about the plan, so a CI job that
    # guards a remote build can be rehearsed on the free backend.
    if max_credits is not None and need > max_credits:
        raise BudgetError(f"this build needs {need} credits, more than --max-credits {max_credits}; "
                          "raise the limit or build fewer chapters (see `audiobook plan`)")
    requests = [SynthesisRequest(s.key, s.text, s.voice,
                                 f"chapter {cp.index} '{cp.title}' ({cp.source}, line {s.line})")
                for cp, s in to_send]
    make_audio(plan.backend, plan.identity, plan.resolver.genders(), requests, cache, jobs,
               progress, result)
    return result


def make_audio(backend: str, identity: str, genders: dict[int, int],
               requests: Sequence[SynthesisRequest], cache: SegmentCache, jobs: int,
               progress: Progress, result: BuildResult) -> None:
    """Synthesize requests, storing each in the cache the moment it is done."""
    tts = get_backend(backend, genders=genders, journal=cache)
    progress.start("synthesizing", len(requests))

    def store(request: SynthesisRequest, audio_out: Audio) -> None:
        cache.put(request.key, CachedAudio(audio_out.data, audio_out.format, audio_out.credits,
                                           identity, tuple(getattr(audio_out, "marks", ()))))
        result.segments_synthesized += 1
        result.credits_spent += audio_out.credits
        progress.advance()

    try:
        tts.synthesize_all(requests, jobs, store)
    finally:
        progress.finish()
        tts.close()
        stats = getattr(tts, "stats", None)
        if stats:
            result.extra.update(stats())
