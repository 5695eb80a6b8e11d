"""The plan: what a build would make and spend, chapter by chapter.

`make_plan` reads the sources, resolves every block's voice, and packs
segments against the cache, so `plan` shows exactly what `build` will
synthesize and spend; `build` runs from the same Plan.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.book import Chapter, slugify
from pipeline.cache import KeyMaker, SegmentCache
from pipeline.casting import VoiceResolver, chapter_runs, language_warnings
from pipeline.config import Config
from pipeline.errors import InputError, Problem
from pipeline.segment import Segment, credits_for, segment_runs
from pipeline.sources import load_chapters
from pipeline.sources.text import compile_lexicon
from pipeline.tts import backend_identity

log = logging.getLogger("pipeline")


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


def make_plan(cfg: Config, cache: SegmentCache, backend: str | None = None,
              chapters: Sequence[str] = (), identity: str | None = None) -> Plan:
    """identity: the backend's service as recorded by an earlier build (cache prune);
    default: the one this environment points at."""
    backend = backend or cfg.backend
    identity = identity or backend_identity(backend)
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


def lower_bound(plan: Plan) -> int:
    """Credits if each chapter's text were billed as one request."""
    return sum(credits_for(plan.chapters[i].characters) for i in plan.selected)
