"""Documents -> chapters of blocks: Markdown files and EPUBs, read by one rule."""

from __future__ import annotations

import os
from pathlib import Path
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


def source_warnings(cfg: Config) -> list[Problem]:
    """A warning for each source that lies outside the book's folder.

    Build tools may read outside their tree, so this is not an error; but a
    chapter's text goes into `plan --json` and, on the remote backend, to the
    service, so `check` says where a path or a symlink really leads.
    """
    root = Path(os.path.realpath(cfg.root))
    warnings: list[Problem] = []
    for entry in cfg.chapters:
        real = Path(os.path.realpath(entry.source))
        if real.is_relative_to(root):
            continue
        written = Path(os.path.normpath(Path(cfg.root) / Path(entry.display.strip()).expanduser()))
        by_name_inside = written.is_relative_to(Path(os.path.normpath(cfg.root))) or \
            written.is_relative_to(root)
        how = "is a symlink to" if by_name_inside else "lies outside the book folder, at"
        warnings.append(Problem(
            entry.config_display, entry.line, f"chapters[{entry.index}].source",
            f"{entry.display} {how} {real}; its text is read and, on the remote backend, sent "
            "to the service. Move the file into the book folder if that is not meant",
            warning=True))
    return warnings


def load_entry(entry: ChapterEntry) -> list[Chapter]:
    """The chapters of one config entry: one for Markdown, the selected spine for an EPUB."""
    if entry.source.suffix.lower() == ".epub":
        from pipeline.sources.epub import load_epub

        return list(load_epub(entry.source, entry.display, entry=entry))
    from pipeline.sources.markdown import load_markdown

    return [load_markdown(entry.source, entry.display, entry.title, entry.index, entry.line)]
