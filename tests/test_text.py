"""Normalization (what reaches the service) and the lexicon (how words are said)."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.lexicon import compile_lexicon
from pipeline.sources.text import has_invisible, is_speakable, normalize

# Invisible characters named in the brief and the contract, each in a word.
INVISIBLES = {
    "word joiner": "\u2060",
    "zero-width space": "\u200b",
    "zero-width non-joiner": "\u200c",
    "zero-width joiner": "\u200d",
    "BOM": "\ufeff",
    "soft hyphen": "\u00ad",
    "left-to-right mark": "\u200e",
    "right-to-left mark": "\u200f",
    "arabic letter mark": "\u061c",
    "LRE": "\u202a",
    "RLO": "\u202e",
    "LRI": "\u2066",
    "PDI": "\u2069",
    "invisible times": "\u2062",
    "variation selector 16": "\ufe0f",
    "combining grapheme joiner": "\u034f",
    "tag letter": "\U000e0041",
}


def is_invisible(char: str) -> bool:
    """Independent of text.py: what must never reach the service."""
    category = unicodedata.category(char)
    if category in ("Cf", "Cs", "Zl", "Zp"):
        return True
    if category == "Cc" and char != "\n":
        return True
    if category == "Zs" and char != " ":
        return True
    return char in "\u034f\u115f\u1160\u3164\uffa0\u17b4\u17b5" or "\ufe00" <= char <= "\ufe0f" \
        or "\U000e0100" <= char <= "\U000e01ef" or "\u180b" <= char <= "\u180f"


@pytest.mark.parametrize("name", sorted(INVISIBLES))
def test_invisible_characters_are_removed(name):
    char = INVISIBLES[name]
    assert normalize(f"tele{char}phone {char}call{char}") == "telephone call"


def test_every_format_character_of_this_python_is_removed():
    format_chars = [chr(c) for c in range(sys.maxunicode + 1)
                    if unicodedata.category(chr(c)) == "Cf"]
    assert len(format_chars) > 150
    text = "a" + "".join(format_chars) + "b"
    assert normalize(text) == "ab"
    assert all(has_invisible(c) for c in format_chars)


def test_soft_hyphen_joins_the_word():
    assert normalize("extra\u00adordinary") == "extraordinary"


@pytest.mark.parametrize(("raw", "clean"), [
    ("  two   spaces\tand tab  ", "two spaces and tab"),
    ("non\u00a0breaking\u202fnarrow\u3000ideographic\u2009thin", "non breaking narrow ideographic thin"),
    ("line one\n\n\n   line two  ", "line one\nline two"),
    ("windows\r\nline\rold mac", "windows\nline\nold mac"),
    ("separator\u2028line\u2029para", "separator\nline\npara"),
    ("bell\x07and\x00nul", "bell and nul"),
    ("form\x0cfeed\x0bvtab", "form feed vtab"),
    ("", ""),
    ("\u200b \n \u00a0", ""),
])
def test_whitespace_is_collapsed_and_line_breaks_kept(raw, clean):
    assert normalize(raw) == clean


@pytest.mark.parametrize("text", [
    "\u201cYes,\u201d she said. \u2018No.\u2019",
    "\"Plain\" and 'single' quotes, it's fine",
    "A dash \u2014 and a range 3\u20135, a hyphen-word",
    "Wait\u2026 what?!",
    "\u300c\u6771\u4eac\u3078\u884c\u304f\u300d\u3068\u5f7c\u306f\u8a00\u3063\u305f\u3002",
    "\u6211\u4eec\u8d70\u5427\uff01\u4f60\u597d\uff1f\u597d\uff0c\u8d70\u3002",
    "\u00ab Bonjour \u00bb, dit-il.",
    "\ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc785\ub2c8\ub2e4.",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0643",
    "Full-width \uff21\uff22\uff23 stays full-width",
])
def test_quotes_dashes_and_scripts_are_kept(text):
    assert normalize(text) == text


def test_nfc_composes_accents():
    assert normalize("Cafe\u0301") == "Caf\u00e9"
    # An invisible character between a letter and its accent does not block composition.
    assert normalize("e\u200b\u0301") == "\u00e9"


@pytest.mark.parametrize(("raw", "clean"), [
    ("See https://example.com/a?b=1 for more.", "See for more."),
    ("Visit www.example.org.", "Visit."),
    ("Visit www.example.org, then leave", "Visit, then leave"),
    ("(http://example.com) said so", "said so"),
    ("An HTTP://EXAMPLE.COM upper", "An upper"),
    ("Not a url: example.com or http:// alone", "Not a url: example.com or http:// alone"),
    ("The httpd daemon", "The httpd daemon"),
])
def test_bare_urls_are_dropped_keeping_the_sentence(raw, clean):
    assert normalize(raw) == clean


@pytest.mark.parametrize(("raw", "clean"), [
    ("A claim.[^1] More[^note-2].", "A claim. More."),
    ("Nested [[^1]^2] marker", "Nested marker"),
    ("A [bracket] stays, as does [^ spaced]", "A [bracket] stays, as does [^ spaced]"),
])
def test_footnote_markers_are_dropped(raw, clean):
    assert normalize(raw) == clean


# ------------------------------------------------------------ properties

_tricky = st.sampled_from(
    list(INVISIBLES.values())
    + [" ", "\n", "\r", "\t", "\u00a0", "\u2028", "\u3000", "\x00", "\x85", "\u0301", "e",
       "http://", "www.", ".", "[^", "]", "[", "(", ")", "x", "1", "\u6771", "\u201c"]
)
_texts = st.lists(st.one_of(_tricky, st.characters(), st.text(max_size=3)), max_size=40).map("".join)


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(_texts)
@example("[[^1]^2]")
@example("e\u200b\u0301")
@example("see www.x.com.\u2028next")
def test_normalize_never_leaves_invisible_characters(text):
    out = normalize(text)
    assert not any(is_invisible(c) for c in out), [hex(ord(c)) for c in out if is_invisible(c)]
    assert not has_invisible(out)
    assert "  " not in out and "\n\n" not in out
    assert out == out.strip()


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(_texts)
@example("[[^1]^2]")
@example("e\u200b\u0301")
@example("(www.a) (http://b)")
def test_normalize_is_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(whitelist_categories=("L", "N", "P", "S"),
                                      blacklist_characters="\u115f\u1160\u3164\uffa0\ufffd"),
               max_size=60))
@pytest.mark.slow
def test_visible_text_without_markers_survives(text):
    # Letters, digits, punctuation and symbols are never dropped, only NFC-composed.
    if "[^" in text or "http" in text.lower() or "www." in text.lower() or \
            "()" in text or "[]" in text:
        return
    assert normalize(text) == unicodedata.normalize("NFC", text).strip()


# ------------------------------------------------------------ lexicon


def test_empty_lexicon_is_identity():
    say = compile_lexicon({})
    assert say("Anything at all.") == "Anything at all."


def test_whole_words_only():
    say = compile_lexicon({"cat": "kitty", "SQL": "sequel"})
    assert say("cat concatenate cats bobcat cat.") == "kitty concatenate cats bobcat kitty."
    assert say("SQL, MySQL, SQLite, NoSQL and SQL-based") == "sequel, MySQL, SQLite, NoSQL and sequel-based"
    assert say("cat_food and cat9") == "cat_food and cat9"


def test_lower_case_key_matches_any_case_and_keeps_a_capital():
    say = compile_lexicon({"sql": "sequel"})
    assert say("sql Sql SQL sQL") == "sequel Sequel sequel sequel"


def test_key_with_capitals_matches_exactly():
    say = compile_lexicon({"SQL": "sequel", "iOS": "eye oh ess"})
    assert say("SQL sql Sql") == "sequel sql Sql"
    assert say("iOS IOS ios") == "eye oh ess IOS ios"


def test_exact_key_wins_over_lower_case_key():
    say = compile_lexicon({"us": "uss", "US": "you ess"})
    assert say("US and us and Us") == "you ess and uss and Uss"
    say = compile_lexicon({"US": "you ess", "us": "uss"})  # order of entries does not matter
    assert say("US and us and Us") == "you ess and uss and Uss"


def test_keys_with_punctuation():
    say = compile_lexicon({"Dr.": "Doctor", "e.g.": "for example", "C++": "C plus plus",
                           "St.": "Saint"})
    assert say("Dr. Watson met Dr. Mortimer.") == "Doctor Watson met Doctor Mortimer."
    assert say("Fruit (e.g. apples)") == "Fruit (for example apples)"
    assert say("C++ and C++.") == "C plus plus and C plus plus."
    assert say("St. Ives") == "Saint Ives"
    # Not inside a longer word, on either side.
    assert say("XDr. Dr.No dr. ST.") == "XDr. Dr.No dr. ST."


def test_longest_key_first():
    say = compile_lexicon({"New York": "the Big Apple", "New York City": "the city", "York": "Yorck"})
    assert say("New York City, New York, York.") == "the city, the Big Apple, Yorck."


def test_multi_word_key_matches_across_a_normalized_space():
    say = compile_lexicon({"new   york": "nyc"})
    assert say(normalize("New\u00a0York and new york")) == "Nyc and nyc"


def test_replacements_are_not_rewritten_again():
    say = compile_lexicon({"SQL": "sequel", "sequel": "follow-up"})
    assert say("SQL") == "sequel"
    assert say("a sequel") == "a follow-up"


def test_keys_with_regex_characters_are_literal():
    say = compile_lexicon({"a.b": "A B", "(x)": "ex"})
    assert say("a.b axb (x) x") == "A B axb ex x"


def test_cjk_keys_match_inside_unspaced_text():
    say = compile_lexicon({"\u6771\u4eac": "Tokyo", "sql": "sequel"})
    assert say("\u5728\u6771\u4eac\u3067") == "\u5728Tokyo\u3067"
    # A Latin key next to CJK letters is still a whole word.
    assert say("\u7528sql\u67e5\u8be2") == "\u7528sequel\u67e5\u8be2"


def test_wide_case_folding_does_not_crash():
    # re's IGNORECASE matches the long s and the Kelvin sign, which str.lower() keeps.
    say = compile_lexicon({"sky": "the sky", "ok": "okay"})
    assert say("\u017fky") == "the sky"
    assert say("o\u212a") == "okay"


def test_blank_keys_are_ignored():
    say = compile_lexicon({"": "x", "  ": "y", "a": "b"})
    assert say("a c") == "b c"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abc .-", max_size=30))
def test_lexicon_never_changes_text_without_its_keys(text):
    say = compile_lexicon({"xyz": "QQQ", "Dr.": "Doctor"})
    assert say(text) == text


# ------------------------------------------------------------ nothing to say


@pytest.mark.parametrize(("raw", "clean"), [
    ("Hello\ufffdworld again.", "Helloworld again."),  # a decoding error's mark
    ("Private \ue000\U000f0001use.", "Private use."),
    ("Unassigned \u0378\U000e0fffhere.", "Unassigned here."),
    ("Emoji stay 😀 for the service.", "Emoji stay 😀 for the service."),
])
def test_unsayable_characters_are_removed(raw, clean):
    assert normalize(raw) == clean


@pytest.mark.parametrize(("text", "speakable"), [
    ("😀😀🎉 👍🏽 👨\u200d👩\u200d👧", False),
    ("?! … — “”", False),
    ("", False),
    ("A", True), ("3", True), ("漢", True), ("😀 ok", True), ("1️⃣", True),
])
def test_is_speakable(text, speakable):
    assert is_speakable(text) is speakable
