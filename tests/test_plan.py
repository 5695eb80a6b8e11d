"""The plan: chapter selection and the `plan` table, in process (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.book import Block, Chapter
from pipeline.cli import main
from pipeline.errors import InputError
from pipeline.plan import select_chapters
from pipeline.sources.select import fold_title

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
    assert fold_title("‘a’ “b”") == "'a' \"b\""


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


# --- the plan memo

MEMO_CONFIG = """\
narrator: {voice: 2072}
lexicon: {lamp: lantern}
output: {formats: [mp3], loudness: none}
chapters:
  - source: one.md
  - source: two.md
"""


def _plan(cfg_path):
    from pipeline.cache import open_cache
    from pipeline.config import load_config
    from pipeline.plan import make_plan

    cfg = load_config(cfg_path)
    with open_cache(cfg) as cache:
        return make_plan(cfg, cache)


def _fill_cache(plan) -> None:
    from pipeline.build import synthesize
    from pipeline.cache import open_cache

    with open_cache(plan.cfg) as cache:
        synthesize(plan, cache)


@pytest.fixture
def memo_project(project, monkeypatch):
    path = project(MEMO_CONFIG, {"one.md": "# One\n\nThe lamp was lit.\n",
                                 "two.md": "# Two\n\nThe stair was dark.\n"})
    _fill_cache(_plan(path))
    return path


def _no_reading(monkeypatch):
    import pipeline.plan

    def refuse(entry):
        raise AssertionError(f"read {entry.display} again")

    monkeypatch.setattr(pipeline.plan, "load_entry", refuse)


def test_an_unchanged_cached_book_is_planned_from_the_memo(memo_project, monkeypatch):
    fresh = _plan(memo_project).as_json()
    _no_reading(monkeypatch)
    assert _plan(memo_project).as_json() == fresh


def test_each_spelling_of_the_config_keeps_its_memo(memo_project, monkeypatch):
    # `audiobook build` and `audiobook -c /abs/path/audiobook.yml build` by turns
    # must not overwrite each other's memo (each would plan the book afresh).
    monkeypatch.chdir(memo_project.parent)
    relative, absolute = Path(memo_project.name), memo_project.resolve()
    fresh = [_plan(relative).as_json(), _plan(absolute).as_json()]
    _no_reading(monkeypatch)
    assert [_plan(relative).as_json(), _plan(absolute).as_json()] == fresh


def test_an_edited_source_is_read_again(memo_project, monkeypatch):
    import pipeline.plan

    read = []
    real = pipeline.plan.load_entry
    monkeypatch.setattr(pipeline.plan, "load_entry", lambda e: read.append(e.display) or real(e))
    (memo_project.parent / "two.md").write_text("# Two\n\nThe stair was very dark.\n")
    texts = [s["text"] for c in _plan(memo_project).as_json()["chapters"] for s in c["segments"]]
    # A heading shares its request with the paragraph after it.
    assert read == ["two.md"] and any("The stair was very dark." in t for t in texts)


def test_a_config_change_plans_afresh(memo_project):
    memo_project.write_text(memo_project.read_text().replace("lantern", "torch"))
    texts = [s["text"] for c in _plan(memo_project).as_json()["chapters"] for s in c["segments"]]
    assert any("The torch was lit." in t for t in texts)


def test_a_segment_gone_from_the_cache_plans_afresh(memo_project, monkeypatch):
    import pipeline.plan
    from pipeline.cache import open_cache

    plan = _plan(memo_project)
    with open_cache(plan.cfg) as cache:
        cache.prune({s.key for s in plan.chapters[1].segments})
    read = []
    real = pipeline.plan.load_entry
    monkeypatch.setattr(pipeline.plan, "load_entry", lambda e: read.append(e.display) or real(e))
    after = _plan(memo_project)
    assert read == ["one.md"]  # packing depends on the cache: this entry is packed again
    assert after.chapters[0].cached == frozenset()
    assert after.as_json()["chapters"][1] == plan.as_json()["chapters"][1]


def test_a_damaged_memo_is_ignored(memo_project, isolated_cache):
    fresh = _plan(memo_project).as_json()
    for memo in (isolated_cache / "ledger" / "plans").glob("*.json"):
        memo.write_text("{not json")
    assert _plan(memo_project).as_json() == fresh


def test_plan_shows_the_credits_spoken_form_adds_and_none_when_it_is_off(project, capsys):
    numbers = "In 1888 he paid £4,250 for 3/4 of the 114 steps, on 12 May 1889 at 10:30. " * 3
    project("chapters: [one.md]\n", {"one.md": numbers + "\n"})
    assert main(["plan", "--json"]) == 0
    spoken = json.loads(capsys.readouterr().out)
    text = spoken["chapters"][0]["segments"][0]["text"]
    assert "eighteen eighty-eight" in text
    assert spoken["totals"]["credits_from_rewriting"] > 0
    project("normalize: false\nchapters: [one.md]\n", {"one.md": numbers + "\n"})
    assert main(["plan", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["totals"]["credits_from_rewriting"] == 0
    assert plain["totals"]["credits"] == (spoken["totals"]["credits"]
                                          - spoken["totals"]["credits_from_rewriting"])
