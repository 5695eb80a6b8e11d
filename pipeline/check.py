"""`audiobook check`: every problem of config, sources and voices at once."""

from __future__ import annotations

import os

from pipeline.casting import VoiceResolver, chapter_runs, language_warnings
from pipeline.config import Config
from pipeline.errors import InputError, Problem
from pipeline.lexicon import compile_lexicon
from pipeline.sources import load_chapters, source_warnings


def check_project(cfg: Config) -> list[Problem]:
    """Problems found (warnings included); config errors were raised on load."""
    problems: list[Problem] = []
    if cfg.backend == "audiocleaner" and not os.environ.get("AUDIOCLEANER_API_KEY"):
        problems.append(Problem(cfg.display, cfg.line_of("backend"), "backend",
                                "audiocleaner needs the AUDIOCLEANER_API_KEY environment variable"))
    problems += source_warnings(cfg)
    try:
        resolver = VoiceResolver.for_config(cfg)
        chapters = load_chapters(cfg)
    except InputError as exc:
        return problems + exc.problems
    problems += resolver.problems()
    lexicon = compile_lexicon(cfg.lexicon)
    for chapter in chapters:
        runs = chapter_runs(chapter, cfg, resolver, lexicon, problems)
        problems += language_warnings(resolver, chapter, runs)
    return _unique(problems)


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
