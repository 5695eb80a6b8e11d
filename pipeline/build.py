"""The orchestration: plan() says what a build would do; build() does it.

Both start from the same `make_plan`, which reads the sources, resolves every
block's voice, and packs segments against the cache, so `plan` shows exactly
what `build` will synthesize and spend.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline import package
from pipeline.book import Chapter, slugify
from pipeline.cache import CachedAudio, KeyMaker, SegmentCache, resolve_cache_dir
from pipeline.casting import VoiceResolver, chapter_runs, language_warnings
from pipeline.config import Config
from pipeline.errors import BudgetError, InputError, OfflineMissError, Problem
from pipeline.segment import Segment, credits_for, segment_runs
from pipeline.sources.text import compile_lexicon
from pipeline.tts.base import Audio, SynthesisRequest, backend_identity, get_backend

log = logging.getLogger("pipeline")



class Progress(Protocol):
    def start(self, label: str, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def finish(self) -> None: ...


class LogProgress:
    def start(self, label: str, total: int) -> None:
        log.info("%s: %d", label, total)

    def advance(self, n: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass


# ------------------------------------------------------------------ the book


def load_chapters(cfg: Config) -> list[Chapter]:
    """Every chapter of every source, in order; all source problems at once."""
    from pipeline.sources.markdown import load_markdown

    chapters: list[Chapter] = []
    problems: list[Problem] = []
    for entry in cfg.chapters:
        try:
            if entry.source.suffix.lower() == ".epub":
                from pipeline.sources.epub import load_epub

                chapters += load_epub(entry.source, entry.display, entry=entry)
            else:
                chapters.append(load_markdown(entry.source, entry.display, entry.title,
                                              entry.index, entry.line))
        except InputError as exc:
            problems += exc.problems
    if problems:
        raise InputError(problems)
    return chapters


def select_chapters(chapters: list[Chapter], wanted: Sequence[str]) -> list[int]:
    """0-based positions for CHAPTER arguments: 3, 3-5, a title or a slug."""
    if not wanted:
        return list(range(len(chapters)))
    picked: list[int] = []
    problems = []
    for word in wanted:
        found = _match_chapter(chapters, word.strip())
        if found is None:
            problems.append(Problem("CHAPTER", None, None,
                                    f"{word!r} is not a chapter; use 1 to {len(chapters)}, a range "
                                    "such as 2-3, or a title (see `audiobook plan`)"))
        picked += [i for i in found or [] if i not in picked]
    if problems:
        raise InputError(problems)
    return sorted(picked)


def _match_chapter(chapters: list[Chapter], word: str) -> list[int] | None:
    n = len(chapters)
    if word.isdigit():
        i = int(word)
        return [i - 1] if 1 <= i <= n else None
    if "-" in word and all(p.strip().isdigit() for p in word.split("-", 1)):
        a, b = (int(p) for p in word.split("-", 1))
        return list(range(a - 1, b)) if 1 <= a <= b <= n else None
    for i, ch in enumerate(chapters):
        if word.lower() in (ch.title.lower(), slugify(ch.title)):
            return [i]
    return None


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class ChapterPlan:
    index: int  # 1-based
    title: str
    slug: str
    source: str
    segments: tuple[Segment, ...]
    cached: frozenset[str]

    @property
    def characters(self) -> int:
        return sum(s.characters for s in self.segments)

    @property
    def credits(self) -> int:
        return sum(s.credits for s in self.segments)

    @property
    def credits_to_spend(self) -> int:
        return sum(s.credits for s in self.unique_uncached())

    def unique_uncached(self) -> list[Segment]:
        seen: set[str] = set()
        out = []
        for s in self.segments:
            if s.key not in self.cached and s.key not in seen:
                seen.add(s.key)
                out.append(s)
        return out


@dataclass(frozen=True)
class Plan:
    cfg: Config
    backend: str
    identity: str
    chapters: tuple[ChapterPlan, ...]
    selected: tuple[int, ...]  # 0-based positions of the chapters to build
    resolver: VoiceResolver = field(repr=False)

    def to_send(self) -> list[tuple[ChapterPlan, Segment]]:
        """Uncached segments of the selected chapters, each key once."""
        seen: set[str] = set()
        out = []
        for i in self.selected:
            cp = self.chapters[i]
            for s in cp.unique_uncached():
                if s.key not in seen:
                    seen.add(s.key)
                    out.append((cp, s))
        return out

    def totals(self) -> dict[str, int]:
        chosen = [self.chapters[i] for i in self.selected]
        return {
            "characters": sum(c.characters for c in chosen),
            "segments": sum(len(c.segments) for c in chosen),
            "credits": sum(c.credits for c in chosen),
            "cached_segments": sum(1 for c in chosen for s in c.segments if s.key in c.cached),
            "credits_to_spend": sum(s.credits for _, s in self.to_send()),
        }

    def as_json(self) -> dict:
        return {
            "title": self.cfg.title,
            "backend": self.backend,
            "max_chars": self.cfg.max_chars,
            "chapters": [_chapter_json(self.chapters[i]) for i in self.selected],
            "totals": self.totals(),
        }


def _chapter_json(cp: ChapterPlan) -> dict:
    return {
        "index": cp.index, "title": cp.title, "slug": cp.slug, "source": cp.source,
        "characters": cp.characters, "credits": cp.credits,
        "credits_to_spend": cp.credits_to_spend,
        "segments": [
            {"key": s.key, "characters": s.characters, "credits": s.credits,
             "cached": s.key in cp.cached, "voice": s.voice.voice, "emotion": s.voice.emotion,
             "speed": s.voice.speed, "language": s.voice.language, "text": s.text}
            for s in cp.segments
        ],
    }


def open_cache(cfg: Config) -> SegmentCache:
    return SegmentCache(resolve_cache_dir(cfg.cache_dir))


def make_plan(cfg: Config, cache: SegmentCache, backend: str | None = None,
              chapters: Sequence[str] = ()) -> Plan:
    backend = backend or cfg.backend
    identity = backend_identity(backend)
    resolver = VoiceResolver.for_config(cfg)
    book = load_chapters(cfg)
    selected = select_chapters(book, chapters)
    lexicon = compile_lexicon(cfg.lexicon)
    cached = frozenset(cache.keys())
    problems: list[Problem] = resolver.problems()

    key_for = key_function(backend, identity, resolver.genders())
    plans = []
    slugs: set[str] = set()
    for n, chapter in enumerate(book, start=1):
        runs = chapter_runs(chapter, cfg, resolver, lexicon, problems)
        for warning in language_warnings(resolver, chapter, runs):
            log.warning("%s", warning)
        segments = segment_runs(runs, cfg.max_chars, key_for, cached)
        slug = _unique(slugify(chapter.title, f"chapter-{n}"), slugs)
        plans.append(ChapterPlan(n, chapter.title, slug, chapter.source, tuple(segments),
                                 frozenset(s.key for s in segments if s.key in cached)))
    if problems:
        raise InputError(problems)
    return Plan(cfg, backend, identity, tuple(plans), tuple(selected), resolver)


def key_function(backend: str, identity: str, genders: dict[int, int]):
    """The segment-key function of a backend (see cache.segment_key)."""
    if backend != "local":
        return KeyMaker(identity)
    from pipeline.tts.local import espeak_voice

    return KeyMaker(identity, lambda voice: repr(espeak_voice(voice, genders.get(voice.voice))))


def _unique(slug: str, taken: set[str]) -> str:
    candidate, k = slug, 2
    while candidate in taken:
        candidate, k = f"{slug}-{k}", k + 1
    taken.add(candidate)
    return candidate


# ------------------------------------------------------------------ the build


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
        package.write_outputs(plan, cache, jobs, force, progress, result)
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
                                           identity))
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


def lower_bound(plan: Plan) -> int:
    """Credits if each chapter's text were billed as one request."""
    return sum(credits_for(plan.chapters[i].characters) for i in plan.selected)
