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
backend: local              # local: offline eSpeak NG; audiocleaner: the paid API,
                            # its key read from AUDIOCLEANER_API_KEY, never from here
narrator: {voice: 2072, emotion: auto, speed: 1}
# lexicon: {"Dr.": Doctor}  # how to say words, applied before synthesis
# output: {dir: build, formats: [mp3, m4b]}
chapters:                   # in order; paths are relative to this file's folder
  - source: chapters/01-first-chapter.md
"""

CHAPTER = """\
# The First Chapter

This is where your book begins. Each paragraph is read in the narrator's
voice, and a new paragraph gets a short pause.

Edit this text and build again: only the sentences you changed are made again.
"""


def write_starter(directory: Path) -> list[Path]:
    """Write the starter files into `directory`; never overwrite anything."""
    if directory.exists() and not directory.is_dir():
        raise InputError(Problem(str(directory), None, None,
                                 "is a file; name a folder for the new project"))
    config = directory / "audiobook.yml"
    chapter = directory / "chapters" / "01-first-chapter.md"
    existing = [p for p in (config, chapter) if p.exists()]
    if existing:
        raise InputError([Problem(str(p), None, None, "already exists; init writes only new projects")
                          for p in existing])
    try:
        chapter.parent.mkdir(parents=True, exist_ok=True)
        chapter.write_text(CHAPTER, encoding="utf-8")
        config.write_text(CONFIG, encoding="utf-8")
    except OSError as exc:
        raise InputError(Problem(str(exc.filename or directory), None, None,
                                 f"cannot write: {exc.strerror}")) from None
    return [config, chapter]
