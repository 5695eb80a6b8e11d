"""Documents -> chapters of blocks: Markdown files and EPUBs, read by one rule."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.book import Chapter
from pipeline.errors import InputError, Problem

if TYPE_CHECKING:
    from pipeline.config import ChapterEntry, Config


def load_chapters(cfg: Config) -> list[Chapter]:
    """Every chapter of every source, in order; all source problems at once."""
    chapters: list[Chapter] = []
    problems: list[Problem] = []
    for entry in cfg.chapters:
        try:
            chapters += load_entry(entry)
        except InputError as exc:
            problems += exc.problems
    if problems:
        raise InputError(problems)
    return chapters


def load_entry(entry: ChapterEntry) -> list[Chapter]:
    """The chapters of one config entry: one for Markdown, the selected spine for an EPUB."""
    if entry.source.suffix.lower() == ".epub":
        from pipeline.sources.epub import load_epub

        return list(load_epub(entry.source, entry.display, entry=entry))
    from pipeline.sources.markdown import load_markdown

    return [load_markdown(entry.source, entry.display, entry.title, entry.index, entry.line)]
