"""`audiobook init`: a starter project that builds as it is."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import InputError, Problem

CONFIG = """\
# audiobook.yml: the recipe for your audiobook. `audiobook check` validates it,
# `audiobook plan` shows what a build costs, `audiobook build` makes it.
title: My Book
author: Your Name
language: en
backend: local              # local: offline eSpeak NG; audiocleaner: the paid API
narrator: {voice: 2072, emotion: auto, speed: 1}
chapters:
  - source: chapters/01-first-chapter.md
"""

CHAPTER = """\
# The First Chapter

This is where your book begins. Each paragraph is read in the narrator's
voice, and a new paragraph gets a short pause.

Edit this text and build again: only the sentences you changed are made again.
"""


def write_starter(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "audiobook.yml"
    chapter = directory / "chapters" / "01-first-chapter.md"
    existing = [p for p in (config, chapter) if p.exists()]
    if existing:
        raise InputError([Problem(str(p), None, None, "already exists; init writes only new projects")
                          for p in existing])
    chapter.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG, encoding="utf-8")
    chapter.write_text(CHAPTER, encoding="utf-8")
    return [config, chapter]
