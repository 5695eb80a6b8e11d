"""The lexicon: words and /patterns/, one pass, and a compile cost that stays linear."""

from __future__ import annotations

import re

import pytest

from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.lexicon import compile_lexicon

CHAPTER = {"chapters/01.md": "# One\n\nSome text.\n"}


def test_pattern_keys_rewrite_what_they_match():
    say = compile_lexicon({r"/\bch\.? ?(\d+)/": r"chapter \1", "/[0-9]+ ?km/": "some kilometres"})
    assert say("See ch. 4 and ch 12.") == "See chapter 4 and chapter 12."
    assert say("It was 40 km away.") == "It was some kilometres away."


def test_pattern_keys_are_case_sensitive_unless_they_say_so():
    say = compile_lexicon({"/colou?r/": "hue", "/(?i)grey/": "gray"})
    assert say("Colour, color, GREY, grey") == "Colour, hue, gray, gray"


def test_a_word_beats_a_pattern_of_the_same_length_and_the_longer_match_wins():
    say = compile_lexicon({"/N[A-Z]SA/": "an agency", "NASA": "nasa", "/NASA'?s budget/": "money"})
    assert say("NASA, NOSA and NASA's budget") == "nasa, an agency and money"


def test_pattern_replacements_are_not_rewritten_again():
    say = compile_lexicon({"/a+/": "b", "b": "c"})
    assert say("aaa b") == "b c"


def test_word_groups_keep_the_longest_key_across_boundary_kinds():
    # "SQL" (spaced word) and "SQL查询" (ends in CJK: no boundary after) are in different groups.
    say = compile_lexicon({"SQL": "sequel", "SQL查询": "a query", "查询": "lookup"})
    assert say("用SQL查询。SQL!") == "用a query。sequel!"


@pytest.mark.parametrize("n", [5000, pytest.param(20000, marks=pytest.mark.slow)])
def test_a_large_lexicon_compiles_in_linear_time(n, monkeypatch):
    """One trie-shaped pattern with one pair of boundaries, however many keys.

    Attack review F20: one lookaround per key cost ~3.5 ms each (5k entries
    15.7 s); a flat alternation tried every key at every position. The time
    itself: benchmarks/bench_bounds.py.
    """
    lexicon = {f"w{i}": f"word{i} number" for i in range(n)}
    compiled: list[str] = []
    real = re.compile

    def spy(pattern, flags=0):
        compiled.append(pattern if isinstance(pattern, str) else pattern.pattern)
        return real(pattern, flags)

    monkeypatch.setattr(re, "compile", spy)
    say = compile_lexicon(lexicon)
    monkeypatch.undo()
    assert say("w1 and W4999x and w4999.") == "word1 number and W4999x and word4999 number."
    assert len(compiled) == 1  # one group of keys: one pattern
    assert sum(p.count("(?<!") + p.count("(?!") for p in compiled) == 2  # not one per key
    # Shared prefixes written once: shorter than the keys themselves (a flat list is longer).
    assert len(compiled[0]) < sum(map(len, lexicon)) + 1000


@pytest.mark.parametrize(("text", "line", "key"), [
    ("lexicon:\n  SQL: sequel\n  /(unclosed/: x\n", 3, "lexicon./(unclosed/"),
    ("lexicon:\n  /a*/: x\n", 2, "lexicon./a*/"),
])
def test_a_malformed_pattern_is_exit_2_with_its_line(project, text, line, key):
    with pytest.raises(ConfigError) as info:
        load_config(project(text + "chapters: [chapters/01.md]\n", CHAPTER))
    [problem] = info.value.problems
    assert (problem.line, problem.key) == (line, key)
    assert "pattern" in problem.message and info.value.exit_code == 2


def test_a_malformed_pattern_in_the_lexicon_file_names_that_file(project):
    path = project("lexicon_file: words.yml\nchapters: [chapters/01.md]\n",
                   {**CHAPTER, "words.yml": "Dr.: Doctor\n'/[a-/': x\n"})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [problem] = info.value.problems
    assert (problem.file, problem.line, problem.key) == ("words.yml", 2, "/[a-/")


def test_pattern_keys_from_the_config_reach_the_plan(project):
    cfg = load_config(project("lexicon: {'/(\\d+)%/': '\\1 percent'}\nchapters: [chapters/01.md]\n",
                              CHAPTER))
    assert compile_lexicon(cfg.lexicon)("Up 5% today") == "Up 5 percent today"


@pytest.mark.parametrize("entries", [{"straße": "street", "strasse": "road"},
                                     {"strasse": "road", "straße": "street"}])
def test_keys_that_casefold_alike_keep_their_own_replacements(entries):
    assert compile_lexicon(entries)("Straße, STRASSE, strasse") == "Street, road, road"
