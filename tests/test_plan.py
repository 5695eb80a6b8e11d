"""The plan: chapter selection and the `plan` table, in process (fast)."""

from __future__ import annotations

import pytest

from pipeline.book import Block, Chapter
from pipeline.cli import main
from pipeline.errors import InputError
from pipeline.plan import fold_quotes, select_chapters

LONG = "The Extraordinarily Long Title of a Chapter That Goes On Past Any Column"


def chapters(*titles: str) -> list[Chapter]:
    return [Chapter(t, f"{n}.md", (Block("paragraph", "Text."),)) for n, t in enumerate(titles)]


@pytest.mark.parametrize("typed", ["Don't Panic", "don't panic", "Don’t Panic", "dont-panic", "2"])
def test_a_title_typed_with_straight_or_typographic_quotes_selects_the_chapter(typed):
    book = chapters("Opening", "Don’t Panic", "“Quoted” End")
    assert select_chapters(book, [typed]) == [1]


def test_double_quotes_fold_too():
    book = chapters("Opening", "“Quoted” End")
    assert select_chapters(book, ['"Quoted" End']) == [1]
    assert fold_quotes("‘a’ “b”") == "'a' \"b\""


def test_an_unknown_chapter_names_the_ways_to_choose():
    with pytest.raises(InputError, match="use 1 to 2, a range"):
        select_chapters(chapters("A", "B"), ["Nope"])


def test_plan_shows_whole_titles_wrapped(project, capsys):
    project("output: {formats: [mp3]}\nchapters:\n  - source: one.md\n    title: " + LONG + "\n",
            {"one.md": "Some text to read here.\n"})
    assert main(["plan"]) == 0
    out = capsys.readouterr().out
    words = " ".join(line[5:].strip().split("  ")[0] for line in out.splitlines()[2:-2])
    assert words.split() == LONG.split(), out
    assert all(len(line) < 90 for line in out.splitlines())


def test_options_work_before_and_after_the_command(project, capsys):
    project("chapters:\n  - source: one.md\n", {"one.md": "Some text.\n"})
    assert main(["-q", "plan", "--json"]) == 0
    before = capsys.readouterr().out
    assert main(["plan", "--json", "-q"]) == 0
    assert capsys.readouterr().out == before
