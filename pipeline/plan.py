"""The plan: what a build would make and spend, chapter by chapter.

`make_plan` reads the sources, resolves every block's voice, and packs
segments against the cache, so `plan` shows exactly what `build` will
synthesize and spend; `build` runs from the same Plan.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from pipeline.book import Block, Chapter, Voice, slugify
from pipeline.cache import KeyMaker, SegmentCache
from pipeline.casting import VoiceResolver, chapter_runs, language_warnings
from pipeline.config import ChapterEntry, Config
from pipeline.errors import InputError, Problem
from pipeline.ledger import FOLDER as LEDGER
from pipeline.ledger import Signatures, code_identity
from pipeline.lexicon import compile_lexicon
from pipeline.segment import Part, Segment, credits_for, segment_runs
from pipeline.sources import load_entry
from pipeline.sources.select import select_positions
from pipeline.sources.text import normalize
from pipeline.tts import backend_identity

log = logging.getLogger("pipeline")


def select_chapters(chapters: list[Chapter], wanted: Sequence[str]) -> list[int]:
    """0-based positions for CHAPTER arguments: 3, 3-5, a title (any quotes) or a slug.

    The grammar is the one EPUB `select:` uses (sources/select.py).
    """
    found = select_positions([ch.title for ch in chapters], wanted)
    if found.unmatched:
        raise InputError([Problem("CHAPTER", None, None,
                                  f"{word!r} is not a chapter; use 1 to {len(chapters)}, a range "
                                  "such as 2-3, or a title (see `audiobook plan`)")
                          for word in found.unmatched])
    return found.positions


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

    @property
    def credits_from_rewriting(self) -> int:
        """Credits the lexicon and spoken form add over the text as written."""
        return sum(s.credits - credits_for(len(s.written())) for s in self.segments)

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
            "credits_from_rewriting": sum(c.credits_from_rewriting for c in chosen),
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
        "credits_from_rewriting": cp.credits_from_rewriting,
        "segments": [
            {"key": s.key, "characters": s.characters, "credits": s.credits,
             "cached": s.key in cp.cached, "voice": s.voice.voice, "emotion": s.voice.emotion,
             "speed": s.voice.speed, "language": s.voice.language, "text": s.text}
            for s in cp.segments
        ],
    }


def make_plan(cfg: Config, cache: SegmentCache, backend: str | None = None,
              chapters: Sequence[str] = (), book: list[Chapter] | None = None,
              identity: str | None = None) -> Plan:
    """The plan of the config's chapters, or of `book` when given (`say`'s one chapter).

    A config entry whose inputs are unchanged since the last plan, and whose
    segments are all in the cache, is read back from the plan memo instead
    of being read, cast and packed again (see PlanMemo). identity: the
    backend's service as recorded by an earlier build (`cache prune`);
    default: the one this environment points at.
    """
    backend = backend or cfg.backend
    identity = identity or backend_identity(backend)
    resolver = VoiceResolver.for_config(cfg, backend)
    cached = frozenset(cache.keys())
    problems: list[Problem] = resolver.problems()

    @lru_cache(maxsize=1)
    def tools() -> tuple[Callable[[str], str], KeyMaker]:
        # Made at the first chapter that is packed: a plan read from the memo needs neither.
        return compile_lexicon(cfg.lexicon), key_function(backend, identity, resolver.genders())

    def packed(chapter: Chapter, context: Config = cfg) -> _Packed:
        lexicon, key_for = tools()
        runs = chapter_runs(chapter, context, resolver, lexicon, problems)
        warnings = language_warnings(resolver, chapter, runs)
        return _Packed(chapter.title, chapter.source,
                       tuple(segment_runs(runs, cfg.max_chars, key_for, cached)), tuple(warnings))

    if book is not None:
        results = [packed(chapter) for chapter in book]
    else:
        memo = PlanMemo(cache.directory, cache.signatures, cfg, backend, identity,
                        resolver.genders())
        results = []
        for entry in cfg.chapters:
            results += _entry_results(entry, memo, packed, cached, problems)
    for warning in (w for r in results for w in r.warnings):
        log.warning("%s", warning)
    selected = select_chapters([Chapter(r.title, r.source, ()) for r in results], chapters)

    opening, closing = credit_tracks(cfg) if book is None else (None, None)
    numbered = [(n, r) for n, r in enumerate(results, start=1)]
    slugs: set[str] = set()
    if opening is not None:  # track 00, before chapter 1; its slug is taken first
        numbered.insert(0, (0, packed(opening, _narrator_only(cfg))))
        selected = [i + 1 for i in selected] + ([0] if not chapters else [])
    if closing is not None:
        numbered.append((len(results) + 1, packed(closing, _narrator_only(cfg))))
        selected += [len(numbered) - 1] if not chapters else []
    plans = []
    for n, r in numbered:
        slug = _unique(slugify(r.title, f"chapter-{n}"), slugs)
        plans.append(ChapterPlan(n, r.title, slug, r.source, r.segments,
                                 frozenset(s.key for s in r.segments if s.key in cached)))
    selected = sorted(selected)
    if problems:
        raise InputError(problems)
    return Plan(cfg, backend, identity, tuple(plans), tuple(selected), resolver)


def credit_tracks(cfg: Config) -> tuple[Chapter | None, Chapter | None]:
    """ACX's opening and closing credits as chapters, when `credits:` asks for them.

    Title, author and narrator, read by the narrator (no chapter overrides):
    their own short tracks, first (00) and last, in the M4B as chapters too.
    """
    by = [f"Written by {cfg.author}." if cfg.author else "",
          f"Narrated by {cfg.narrator_name}." if cfg.narrator_name else ""]

    def track(title: str, lines: list[str]) -> Chapter:
        blocks = tuple(Block("paragraph", normalize(line)) for line in lines if line)
        return Chapter(title, cfg.display, blocks, entry=0)

    opening = track("Opening Credits", [f"{cfg.title}.", *by])
    closing = track("Closing Credits", ["The end.", f"You have been listening to {cfg.title}.", *by])
    return (opening if cfg.credits.opening else None,
            closing if cfg.credits.closing else None)


def _narrator_only(cfg: Config) -> Config:
    """The config with one entry without overrides: credits are read by the book's narrator."""
    entry = ChapterEntry(source=cfg.path, display=cfg.display, index=0, line=None,
                         config_display=cfg.display)
    return replace(cfg, chapters=(entry,))


@dataclass(frozen=True)
class _Packed:
    """One chapter, cast and packed: what the plan memo keeps."""

    title: str
    source: str
    segments: tuple[Segment, ...]
    warnings: tuple[Problem, ...] = ()


def _entry_results(entry: ChapterEntry, memo: PlanMemo, packed, cached: frozenset[str],
                   problems: list[Problem]) -> list[_Packed]:
    key = memo.key(entry)
    remembered = memo.get(entry, key)
    if remembered is not None and all(s.key in cached for r in remembered for s in r.segments):
        return remembered
    try:
        book = load_entry(entry)
    except InputError as exc:
        problems += exc.problems
        return []
    before = len(problems)
    results = [packed(chapter) for chapter in book]
    if len(problems) == before:
        memo.put(entry, key, results)
    return results


# ------------------------------------------------------------------ the plan memo

MEMO_FORMAT = 3  # 3: keyed by content digests, in the ledger's plans/


class PlanMemo:
    """Each config entry's packed chapters, keyed by a hash of everything they depend on.

    A table of the build ledger (pipeline/ledger.py). The key covers the
    source file and the voice library file by content (their SHA-256, taken
    again only when their stat changed), the whole config except the other
    chapter entries (the lexicon file's words are in it), the backend and its
    identity, and the code (this package's files by content and the version
    of every installed distribution), so any change recomputes, while a fresh
    checkout of the same bytes does not. A remembered entry is used only
    when all its segments are in the cache: packing depends on the cache,
    and a fully cached packing is what a fresh one would choose. One small
    JSON file per config entry (and spelling of the config's path) in the
    cache folder's ledger/plans/ (bounded: the next plan overwrites it).
    """

    def __init__(self, cache_dir: Path, signatures: Signatures, cfg: Config, backend: str,
                 identity: str, genders: dict[int, int]):
        self.folder = cache_dir / LEDGER / "plans"
        self.signatures = signatures
        self.config_path = str(cfg.path)
        shared = {
            "format": MEMO_FORMAT,
            "code": code_identity(signatures),
            "config": repr(replace(cfg, chapters=())),
            "voices": signatures.digest(cfg.voices) if cfg.voices else None,
            "backend": [backend, identity, sorted(genders.items())],
        }
        self.shared = json.dumps(shared, sort_keys=True, default=str)

    def key(self, entry: ChapterEntry) -> str:
        spec = json.dumps([self.shared, repr(entry), self.signatures.digest(entry.source)],
                          default=str)
        return hashlib.sha256(spec.encode()).hexdigest()

    def _file(self, entry: ChapterEntry) -> Path:
        # The config's spelling too (audiobook.yml, or an absolute -c path): the
        # entry's messages name it as given, so each spelling keeps a memo of its
        # own instead of two overwriting each other and planning afresh by turns.
        name = hashlib.sha256(f"{self.config_path}\0{entry.config_display}\0{entry.index}"
                              .encode()).hexdigest()[:32]
        return self.folder / f"{name}.json"

    def get(self, entry: ChapterEntry, key: str) -> list[_Packed] | None:
        try:
            data = json.loads(self._file(entry).read_text(encoding="utf-8"))
            if data.get("key") != key:
                return None
            return [_Packed(c["title"], c["source"],
                            tuple(Segment(k, t, Voice(*v), p, line,
                                          tuple(Part(*part) for part in parts))
                                  for k, t, v, p, line, parts in c["segments"]),
                            tuple(Problem(*w) for w in c["warnings"]))
                    for c in data["chapters"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: plan afresh

    def put(self, entry: ChapterEntry, key: str, results: list[_Packed]) -> None:
        data = {"key": key, "chapters": [
            {"title": r.title, "source": r.source,
             "segments": [[s.key, s.text, astuple(s.voice), s.pause_after, s.line,
                           [astuple(part) for part in s.parts]]
                          for s in r.segments],
             "warnings": [astuple(w) for w in r.warnings]}
            for r in results]}
        path = self._file(entry)
        tmp: Path | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".plan-", suffix=".tmp", dir=path.parent)
            tmp = Path(name)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, ensure_ascii=False)
            os.replace(tmp, path)
        except OSError as exc:  # a read-only cache still plans, only slower
            log.debug("plan memo not written: %s", exc)
            if tmp is not None:
                tmp.unlink(missing_ok=True)


def key_function(backend: str, identity: str, genders: dict[int, int]) -> KeyMaker:
    """The segment-key function of a backend (see cache.segment_key)."""
    if backend != "local":
        return KeyMaker(identity)
    from pipeline.tts.local import LocalBackend

    # The backend says what its engine makes of a voice; that goes into the
    # key, so a change of the mapping (a new table, a new gender) changes it.
    return KeyMaker(identity, LocalBackend(genders=genders).voice_identity)


def _unique(slug: str, taken: set[str]) -> str:
    candidate, k = slug, 2
    while candidate in taken:
        candidate, k = f"{slug}-{k}", k + 1
    taken.add(candidate)
    return candidate


def lower_bound(plan: Plan) -> int:
    """Credits if each chapter's text were billed as one request."""
    return sum(credits_for(plan.chapters[i].characters) for i in plan.selected)
