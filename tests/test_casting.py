"""Casting: blocks to runs of one voice, and what each sentence becomes before it is sent."""

from __future__ import annotations

from pipeline.casting import VoiceResolver, chapter_runs
from pipeline.config import load_config
from pipeline.lexicon import compile_lexicon
from pipeline.sources import load_chapters

BOOK = """\
# The Keeper

It was 1888. The lamp was lit.

* * *

## Later

<!-- voice: 2080 -->

He climbed 114 steps.
"""


def runs_of(path):
    cfg = load_config(path)
    [chapter] = load_chapters(cfg)
    problems: list = []
    runs = chapter_runs(chapter, cfg, VoiceResolver.for_config(cfg), compile_lexicon(cfg.lexicon),
                        problems)
    assert not problems, problems
    return runs


def texts(run) -> list[str]:
    return [a.text for a in run.atoms]


def test_headings_and_scene_breaks_stay_inside_a_run_and_a_switch_ends_it(project):
    first, second = runs_of(project("chapters: [one.md]\n", {"one.md": BOOK}))
    assert first.voice.voice == 2072 and second.voice.voice == 2080
    assert texts(first)[0] == "The Keeper."  # a heading ends with a stop
    assert [a.pause for a in first.atoms] == ["heading", "sentence", "scene", "heading"]
    assert [a.kind for a in first.atoms] == ["heading", "paragraph", "paragraph", "heading"]
    assert [a.source for a in first.atoms][:3] == ["The Keeper", "It was 1888.", "The lamp was lit."]


def test_the_lexicon_runs_before_the_spoken_form_so_its_entries_win(project):
    path = project("lexicon: {'1888': 'the year of the comet'}\nchapters: [one.md]\n",
                   {"one.md": BOOK})
    first, second = runs_of(path)
    assert texts(first)[1] == "It was the year of the comet."
    assert texts(second) == ["He climbed one hundred and fourteen steps."]


def test_normalize_can_be_turned_off_for_one_chapter(project):
    path = project("chapters:\n  - source: one.md\n    normalize: false\n", {"one.md": BOOK})
    first, second = runs_of(path)
    assert texts(first)[1] == "It was 1888." and texts(second) == ["He climbed 114 steps."]
