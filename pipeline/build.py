"""The orchestration: build() = make_plan -> synthesize -> write_outputs.

Each stage returns its own report; build() composes them into BuildResult.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pipeline import package
from pipeline.book import Voice
from pipeline.cache import CachedAudio, SegmentCache, open_cache
from pipeline.config import Config
from pipeline.errors import (
    AudiobookError,
    BudgetError,
    OfflineMissError,
    SegmentMissing,
    SegmentsUndoneError,
)
from pipeline.plan import Plan, make_plan
from pipeline.progress import LogProgress, Progress
from pipeline.tts import get_backend
from pipeline.tts.base import Audio, SynthesisRequest
from pipeline.tts.policy import ServiceLimits

log = logging.getLogger("pipeline")


@dataclass
class SynthesisReport:
    """What synthesize() did: segments made and found, credits, the backend's counters."""

    segments_synthesized: int = 0
    segments_cached: int = 0
    credits_spent: int = 0
    orphans_kept: int = 0  # paid tasks of text that has since left the plan, kept in the cache
    backend_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def credits_maybe_charged(self) -> int:
        return int(self.backend_stats.get("credits_maybe_charged", 0) or 0)

    @property
    def segments_maybe_charged(self) -> int:
        return int(self.backend_stats.get("segments_maybe_charged", 0) or 0)

    def as_json(self) -> dict:
        return {
            "segments_synthesized": self.segments_synthesized,
            "segments_cached": self.segments_cached,
            "credits_spent": self.credits_spent,
            "credits_maybe_charged": self.credits_maybe_charged,
            "segments_maybe_charged": self.segments_maybe_charged,
            **self.backend_stats,
            "orphan_tasks_kept": self.orphans_kept,
        }

    def plus(self, other: SynthesisReport) -> SynthesisReport:
        """This report followed by another (a re-make after a damaged cache entry)."""
        stats = dict(self.backend_stats)
        for name, value in other.backend_stats.items():
            old = stats.get(name)
            both_counts = isinstance(value, int) and isinstance(old, int)
            stats[name] = old + value if both_counts else value
        return SynthesisReport(self.segments_synthesized + other.segments_synthesized,
                               self.segments_cached, self.credits_spent + other.credits_spent,
                               self.orphans_kept + other.orphans_kept, stats)


@dataclass(frozen=True)
class BuildResult:
    synthesis: SynthesisReport
    output: package.OutputReport

    @property
    def segments_synthesized(self) -> int:
        return self.synthesis.segments_synthesized

    @property
    def segments_cached(self) -> int:
        return self.synthesis.segments_cached

    @property
    def credits_spent(self) -> int:
        return self.synthesis.credits_spent

    @property
    def chapters_written(self) -> int:
        return self.output.chapters_written

    @property
    def chapters_unchanged(self) -> int:
        return self.output.chapters_unchanged

    @property
    def outputs(self) -> list[str]:
        return self.output.outputs

    def as_json(self) -> dict:
        return {
            **self.synthesis.as_json(),
            "chapters_written": self.chapters_written,
            "chapters_unchanged": self.chapters_unchanged,
            "outputs": self.outputs,
            "book_written": self.output.book_written,
            "boundaries_unaligned": self.output.boundaries_unaligned,
        }


def build(cfg: Config, chapters: Sequence[str] = (), backend: str | None = None, jobs: int = 4,
          max_credits: int | None = None, offline: bool = False, force: bool = False,
          progress: Progress | None = None, record_as: str | None = None,
          service_deadline: float | None = None) -> BuildResult:
    """Plan, make what is missing, write what is out of date.

    record_as: the config path as the front door names it (pipeline.ledger);
    a whole-book build then leaves a build record, so the next build that
    would find nothing to do is answered before the command line loads.
    service_deadline: seconds after which no new create starts (None: the
    environment's or the default, see pipeline.tts.policy.service_deadline).
    """
    progress = progress or LogProgress()
    limits = ServiceLimits(service_deadline)  # one for both passes: the limits are per build
    with _warnings_noted() as noted, open_cache(cfg, offline=offline) as cache, cache.shared():
        plan = make_plan(cfg, cache, backend, chapters)
        planned = len(noted.lines)  # what a build that finds nothing to do warns of
        _record_use(cache, cfg, plan)
        package.refuse_foreign(cfg)
        made = synthesize(plan, cache, jobs, max_credits, offline, progress, limits)
        try:
            written = package.write_outputs(plan, cache, jobs, force, progress)
        except SegmentMissing as exc:
            # Once: a second loss in the same build is reported, not chased.
            plan = make_plan(cfg, cache, backend, chapters)
            made = made.plus(remake(plan, cache, exc.keys, jobs, _left(max_credits, made),
                                    offline, progress, limits))
            written = package.write_outputs(plan, cache, jobs, force, progress)
        result = BuildResult(made, written)
        # A warning past the plan (a cover that cannot be used, damage found)
        # may or may not come again: such a build leaves no record.
        if (record_as is not None and not chapters and plan.backend == cfg.backend
                and len(noted.lines) == planned):
            _leave_record(record_as, plan, cache, result, noted.lines)
        return result


class _Noted(logging.Handler):
    """The pipeline's warnings while it is attached, as the command line prints them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def _warnings_noted() -> Iterator[_Noted]:
    noted = _Noted()
    logger = logging.getLogger("pipeline")
    logger.addHandler(noted)
    try:
        yield noted
    finally:
        logger.removeHandler(noted)


def _leave_record(config: str, plan: Plan, cache: SegmentCache, result: BuildResult,
                  warnings: list[str]) -> None:
    """The build record of this config (pipeline.ledger), unless something is left to do.

    It names every declared input and every output by content, the cache
    entries the outputs were made from, and the summary a build that finds
    nothing to do prints. None with a remote tier (a bucket is not a file
    this machine can re-check), with journaled tasks still to download, or
    with an ffmpeg found on PATH (what PATH finds is not a declared input).
    """
    from pipeline import audio, ledger

    if cache.remote is not None or cache.pending_keys():
        return
    sigs = cache.signatures
    names = [str(p) for p in plan.cfg.inputs()] + ledger.package_files()
    entries = [sigs.entry(name) for name in names]
    entries += [sigs.entry(name, own=True) for name in package.recorded_files(plan.cfg)]
    binaries = []
    ffmpeg = audio.ffmpeg_path()
    if os.environ.get("AUDIOBOOK_FFMPEG"):
        entries.append(sigs.entry(ffmpeg))
    elif ffmpeg == audio.bundled_ffmpeg():
        binaries.append(ledger.binary_entry(ffmpeg))  # known by imageio-ffmpeg's version
    else:
        return
    found = [entry for entry in entries if entry is not None]
    if len(found) < len(entries):
        return  # an input went away meanwhile: the next build decides
    segments = [str(cache.entry_path(s.key)) for cp in plan.chapters for s in cp.segments]
    written = result.output
    noop = BuildResult(
        SynthesisReport(segments_cached=plan.totals()["segments"]),
        package.OutputReport(chapters_unchanged=written.chapters_written
                             + written.chapters_unchanged, outputs=list(written.outputs)))
    ledger.write_record(str(cache.directory), config, files=found, binaries=binaries,
                        segments=segments, warnings=warnings, noop=noop.as_json(),
                        out_dir=str(plan.cfg.output.dir))


def _record_use(cache: SegmentCache, cfg: Config, plan: Plan) -> None:
    """Tell the store this config uses it (pre-commit's mark_config_used), for `cache prune`.

    Before spending: prune keeps what any recorded config uses under its backend.
    """
    cache.record_use(str(cfg.path.resolve()), plan.backend, plan.identity)


def _left(max_credits: int | None, made: SynthesisReport) -> int | None:
    if max_credits is None:
        return None
    return max(0, max_credits - made.credits_spent - made.credits_maybe_charged)


def remake(plan: Plan, cache: SegmentCache, keys: Sequence[str], jobs: int,
           max_credits: int | None, offline: bool, progress: Progress,
           limits: ServiceLimits | None = None) -> SynthesisReport:
    """Make again the segments the renderer found missing or damaged.

    `plan` was made after the loss, so its to_send() is what the cache lacks
    now: the reported keys, and any other the renderer stopped before seeing.
    """
    to_send = plan.to_send()
    log.debug("the renderer reported %d missing: %s", len(keys), ", ".join(k[:12] for k in keys))
    cost = sum(s.credits for _, s in to_send)
    price = "free on the offline backend" if plan.backend == "local" else f"{cost} credit(s)"
    log.warning("%d segment(s) were missing or damaged in the cache; making them again (%s)",
                len(to_send), price)
    return _send(plan, cache, to_send, jobs, max_credits, offline, progress, limits)


def synthesize(plan: Plan, cache: SegmentCache, jobs: int = 4, max_credits: int | None = None,
               offline: bool = False, progress: Progress | None = None,
               limits: ServiceLimits | None = None) -> SynthesisReport:
    """Make and cache every segment the plan still needs; nothing is encoded."""
    cached = plan.totals()["cached_segments"]  # as planned: the cache had them before
    try:
        report = _send(plan, cache, plan.to_send(), jobs, max_credits, offline,
                       progress or LogProgress(), limits, resume=not offline)
    except SegmentsUndoneError as exc:
        exc.summary["segments_cached"] = cached
        raise
    report.segments_cached = cached
    return report


def _send(plan: Plan, cache: SegmentCache, to_send: list, jobs: int, max_credits: int | None,
          offline: bool, progress: Progress, limits: ServiceLimits | None = None,
          resume: bool = False) -> SynthesisReport:
    need = sum(s.credits for _, s in to_send)
    if to_send and offline:
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
    orphans = orphan_tasks(plan, cache) if resume else []
    if orphans:
        log.info("%d task(s) paid for before their text was edited: downloading them to keep",
                 len(orphans))
    if not requests and not orphans:
        return SynthesisReport()
    report = make_audio(plan.backend, plan.identity, plan.resolver.genders(), requests + orphans,
                        cache, jobs, progress, max_credits, limits)
    resumed = sum(1 for r in orphans if r.key in cache)
    report.orphans_kept = resumed
    report.segments_synthesized -= resumed
    return report


def orphan_tasks(plan: Plan, cache: SegmentCache) -> list[SynthesisRequest]:
    """Resume-only requests for journalled remote tasks whose text left the plan.

    They were (maybe) paid for; downloading them costs nothing more, and
    the text may come back. An empty text never creates a task.
    """
    if plan.backend == "local":
        return []
    planned = {s.key for cp in plan.chapters for s in cp.segments}
    keys = sorted(k for k in cache.pending_keys() if k not in planned and k not in cache
                  and (cache.pending(k) or {}).get("job_id"))
    return [SynthesisRequest(k, "", Voice(0), f"an earlier task ({k[:12]})") for k in keys]


def make_audio(backend: str, identity: str, genders: dict[int, int],
               requests: Sequence[SynthesisRequest], cache: SegmentCache, jobs: int,
               progress: Progress, max_credits: int | None = None,
               limits: ServiceLimits | None = None) -> SynthesisReport:
    """Synthesize requests, storing each in the cache the moment it is done."""
    options: dict[str, Any] = {"genders": genders, "journal": cache}
    if max_credits is not None:
        options["max_credits"] = max_credits  # the client stops creating before the cap
    if limits is not None:
        options["limits"] = limits  # the service deadline, and the lost creates of this build
    tts = get_backend(backend, **options)
    report = SynthesisReport()
    progress.start("synthesizing", len(requests))

    def store(request: SynthesisRequest, audio_out: Audio) -> None:
        cache.put(request.key, CachedAudio(audio_out.data, audio_out.format, audio_out.credits,
                                           identity, audio_out.marks))
        report.segments_synthesized += 1
        report.credits_spent += audio_out.credits
        progress.advance()

    try:
        tts.synthesize_all(requests, jobs, store)
    except AudiobookError as exc:
        report.backend_stats.update(tts.stats())
        _tell_what_was_risked(exc, report)
        raise
    finally:
        progress.finish()
        tts.close()
        report.backend_stats.update(tts.stats())
    return report


def _tell_what_was_risked(exc: AudiobookError, report: SynthesisReport) -> None:
    """A failed build still says what it made and what may have been charged."""
    if isinstance(exc, SegmentsUndoneError):
        exc.summary = report.as_json()  # its message names the credits itself
    elif report.credits_maybe_charged:
        log.warning("%d credit(s) may have been charged for creates whose answer was lost",
                    report.credits_maybe_charged)
