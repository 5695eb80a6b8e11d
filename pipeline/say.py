"""`audiobook say`: a one-chapter build of one paragraph, through the same stages.

The text becomes a Chapter of one paragraph block, read by the same rules as
a source (normalize), cast by the same chapter_runs (lexicon, then the
segmenter), synthesized by build.synthesize and rendered by the package's
chapter renderer, so `say` sends exactly what `build` would for the text.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.book import Block, Chapter
from pipeline.cache import SegmentCache, resolve_cache_dir
from pipeline.config import VOICE_CHECKS, ChapterEntry, Config
from pipeline.errors import InputError, Problem, ValidationError
from pipeline.sources.text import normalize

SUFFIXES = (".mp3", ".wav", ".m4a")
APP_NAME = "audiobook-pipeline"


def user_cache_dir() -> Path:
    """The user's cache folder for `say` outside a project (never the current folder)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME))


def default_config(root: Path) -> Config:
    """The config `say` uses without a file; its cache is the user's cache folder."""
    return replace(Config.default(root), cache_dir=user_cache_dir())


def voice_overrides(settings: dict[str, Any]) -> dict[str, Any]:
    """--voice/--emotion/--speed/--language, checked by config's own table."""
    problems = []
    parsed = {}
    for key, raw in settings.items():
        try:
            parsed[key] = VOICE_CHECKS[key](raw, None)
        except ValidationError as exc:
            problems.append(Problem("--" + key, None, None, str(exc)))
    if problems:
        raise InputError(problems)
    return parsed


def say_chapter(cfg: Config, text: str, settings: dict[str, Any],
                backend: str | None = None) -> tuple[Config, Chapter]:
    """The config narrowed to one chapter, and that chapter: one paragraph of text."""
    from pipeline.casting import VoiceResolver

    overrides = voice_overrides(settings)
    resolver = VoiceResolver.for_config(cfg, backend or cfg.backend)
    try:
        resolver.voice(resolver.base(overrides))
    except ValidationError as exc:
        raise InputError(Problem("--voice", None, None, str(exc))) from None
    body = normalize(text)
    if not body:
        raise InputError(Problem("TEXT", None, None, "is empty"))
    entry = ChapterEntry(source=cfg.root / "TEXT", display="TEXT", index=0, line=None,
                         title="say", overrides=overrides, config_display=cfg.display)
    chapter = Chapter("say", "TEXT", (Block("paragraph", body, line=1),), entry=0)
    return replace(cfg, chapters=(entry,)), chapter


def say(cfg: Config | None, text: str, out: Path, settings: dict[str, Any],
        backend: str | None = None) -> dict:
    if out.suffix.lower() not in SUFFIXES:
        raise InputError(Problem(str(out), None, None, "use a .mp3, .wav or .m4a file name"))
    from pipeline import package
    from pipeline.build import synthesize
    from pipeline.plan import make_plan

    base = cfg if cfg is not None else default_config(Path(os.getcwd()))
    one, chapter = say_chapter(base, text, settings, backend)
    with SegmentCache(resolve_cache_dir(one.cache_dir)) as store, store.shared():
        plan = make_plan(one, store, backend, book=[chapter])
        made = synthesize(plan, store, jobs=4)
        package.render_to(plan, plan.chapters[0], store, out, loudness=None)
    return {"segments": len(plan.chapters[0].segments), "credits_spent": made.credits_spent,
            "texts": [s.text for s in plan.chapters[0].segments]}
