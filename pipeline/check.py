"""`audiobook check`: every problem of config, sources and voices at once."""

from __future__ import annotations

import os

from pipeline.build import VoiceResolver, chapter_runs, load_chapters
from pipeline.config import Config
from pipeline.errors import InputError, Problem
from pipeline.sources.text import compile_lexicon


def check_project(cfg: Config) -> list[Problem]:
    """Problems found (warnings included); config errors were raised on load."""
    problems: list[Problem] = []
    if cfg.backend == "audiocleaner" and not os.environ.get("AUDIOCLEANER_API_KEY"):
        problems.append(Problem(cfg.display, cfg.line_of("backend"), "backend",
                                "audiocleaner needs the AUDIOCLEANER_API_KEY environment variable"))
    try:
        resolver = VoiceResolver.for_config(cfg)
        chapters = load_chapters(cfg)
    except InputError as exc:
        return problems + exc.problems
    lexicon = compile_lexicon(cfg.lexicon)
    for chapter in chapters:
        runs = chapter_runs(chapter, cfg, resolver, lexicon, problems)
        problems += language_warnings(cfg, resolver, chapter, runs)
    return _unique(problems)


def language_warnings(cfg: Config, resolver: VoiceResolver, chapter, runs) -> list[Problem]:
    """A voice whose library language differs from the language it is asked to read."""
    if resolver.library is None:
        return []
    by_id = {v.id: v for v in resolver.library}
    out = []
    for run in runs:
        info = by_id.get(run.voice.voice)
        if info and info.language and info.language not in (run.voice.language, "all"):
            out.append(Problem(chapter.source, run.line, "voice",
                               f"voice {info.id} ({info.display_name}) speaks {info.language!r} "
                               f"but reads {run.voice.language!r} text here", warning=True))
    return out


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
