"""The segmenter: what every request costs. Properties first, then examples."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.book import Voice
from pipeline.segment import (
    CUT_SENTENCE,
    Atom,
    Run,
    atoms_of_paragraph,
    credits_for,
    pack_run,
    segment_runs,
    segment_text,
    split_sentences,
)

VOICE = Voice(2072)

# Sentences of varied lengths, made of our own words.
WORDS = ["tide", "lamp", "keeper", "harbour", "rope", "gull", "ledger", "stair", "salt",
         "window", "storm", "ferry", "anchor", "quiet", "morning", "north", "signal"]


def sentence_strategy(max_words: int = 40):
    return st.lists(st.sampled_from(WORDS), min_size=1, max_size=max_words).map(
        lambda ws: " ".join(ws).capitalize() + ".")


paragraphs = st.lists(sentence_strategy(), min_size=1, max_size=12).map(" ".join)


def run_of(paras: list[str], max_chars: int) -> Run:
    atoms = tuple(a for p in paras for a in atoms_of_paragraph(p, "en", max_chars))
    return Run(atoms, VOICE, "paragraph")


def run_text(run: Run) -> str:
    return "".join(a.text + a.sep for a in run.atoms)[: -len(run.atoms[-1].sep) or None]


def key_is_text(voice: Voice, text: str) -> str:
    return text


# ---------------------------------------------------------------- properties


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(paragraphs, min_size=1, max_size=6), st.integers(min_value=60, max_value=1200))
def test_segments_cover_the_text_exactly_and_respect_the_limit(paras, max_chars):
    run = run_of(paras, max_chars)
    segments = segment_runs([run], max_chars, key_is_text, frozenset())
    assert all(0 < s.characters <= max_chars for s in segments)
    # Joined back with the separators at the cuts, the segments are the text: nothing
    # dropped, nothing padded.
    ranges = pack_run(run.atoms, max_chars)
    rebuilt = ""
    for k, (i, j) in enumerate(ranges):
        rebuilt += segment_text(run.atoms, i, j)
        if k < len(ranges) - 1:
            rebuilt += run.atoms[j - 1].sep
    assert rebuilt == run_text(run) == "\n".join(paras)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(st.lists(paragraphs, min_size=1, max_size=5), st.integers(min_value=60, max_value=600))
def test_cuts_fall_only_at_sentence_ends_unless_a_sentence_is_too_long(paras, max_chars):
    run = run_of(paras, max_chars)
    sentences = {s for p in paras for s, _ in split_sentences(p)}
    for _i, j in pack_run(run.atoms, max_chars)[:-1]:
        last = run.atoms[j - 1]
        if last.cut > CUT_SENTENCE:
            # A cut inside a sentence: only when that sentence alone exceeds the limit.
            owner = [s for s in sentences if last.text in s and len(s) > max_chars]
            assert owner, f"cut inside a short sentence after {last.text!r}"


def brute_force_credits(atoms: tuple[Atom, ...], max_chars: int) -> int:
    """The cheapest packing by trying every set of cuts."""
    n = len(atoms)
    best = math.inf
    for cuts in itertools.product([False, True], repeat=n - 1):
        total, start, ok = 0, 0, True
        for k in range(n):
            if k == n - 1 or cuts[k]:
                length = len(segment_text(atoms, start, k + 1))
                if length > max_chars:
                    ok = False
                    break
                total += credits_for(length)
                start = k + 1
        if ok:
            best = min(best, total)
    return best


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(st.lists(sentence_strategy(12), min_size=1, max_size=9), st.integers(min_value=80, max_value=400))
def test_packing_is_optimal(sentences, max_chars):
    atoms = tuple(atoms_of_paragraph(" ".join(sentences), "en", max_chars))
    if len(atoms) > 12:
        return
    ranges = pack_run(atoms, max_chars)
    ours = sum(credits_for(len(segment_text(atoms, i, j))) for i, j in ranges)
    assert ours == brute_force_credits(atoms, max_chars)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(paragraphs, min_size=8, max_size=20), st.randoms(use_true_random=False),
       st.sampled_from([300, 500, 1000]))
@pytest.mark.slow
def test_an_edited_sentence_only_repays_the_segments_around_it(paras, rng, max_chars):
    before = segment_runs([run_of(paras, max_chars)], max_chars, key_is_text, frozenset())
    cached = frozenset(s.text for s in before)
    p = rng.randrange(len(paras))
    sentences = [s for s, _ in split_sentences(paras[p])]
    k = rng.randrange(len(sentences))
    sentences[k] = sentences[k][:-1] + " and the lamp burned on."
    edited = paras[:p] + [" ".join(sentences)] + paras[p + 1:]
    after = segment_runs([run_of(edited, max_chars)], max_chars, key_is_text, cached)
    spend = sum(s.credits for s in after if s.text not in cached)
    # The edited sentence lands in new segments; at worst the two around it are re-made.
    assert spend <= 2 * credits_for(max_chars)
    # And everything away from the edit is reused as it was.
    assert sum(1 for s in after if s.text not in cached) <= 3


def test_cached_packing_costs_nothing_and_keeps_the_same_cuts():
    paras = [" ".join(f"Sentence {i} of paragraph {p} is here." for i in range(9)) for p in range(30)]
    run = run_of(paras, 500)
    first = segment_runs([run], 500, key_is_text, frozenset())
    again = segment_runs([run], 500, key_is_text, frozenset(s.text for s in first))
    assert [s.text for s in again] == [s.text for s in first]


# ---------------------------------------------------------------- examples


@pytest.mark.parametrize("text, expected", [
    ("Dr. Watson met Mr. J. R. Smith at 3.50 p.m. in the U.S. embassy. Then he left.",
     ["Dr. Watson met Mr. J. R. Smith at 3.50 p.m. in the U.S. embassy.", "Then he left."]),
    ("Wait... what was that? Nothing! Go on.", ["Wait... what was that?", "Nothing!", "Go on."]),
    ('"Quite so," said he. It cost $3.50, e.g. a lot.',
     ['"Quite so," said he.', "It cost $3.50, e.g. a lot."]),
    ("今天天气很好。我们去公园吧！你说呢？", ["今天天气很好。", "我们去公园吧！", "你说呢？"]),
])
def test_split_sentences_knows_abbreviations_decimals_initials_and_cjk(text, expected):
    language = "zh" if "。" in text else "en"
    pairs = split_sentences(text, language)
    assert [s for s, _ in pairs] == expected
    assert "".join(s + sep for s, sep in pairs).rstrip() == text


def test_cjk_sentences_join_without_spaces():
    run = Run(tuple(atoms_of_paragraph("今天天气很好。我们去公园吧！", "zh", 1000)), VOICE, "paragraph")
    (segment,) = segment_runs([run], 1000, key_is_text, frozenset())
    assert segment.text == "今天天气很好。我们去公园吧！"


@pytest.mark.slow
def test_a_30000_character_paragraph_without_punctuation_is_cut_at_words():
    rng = random.Random(3)
    text = " ".join(rng.choice(WORDS) for _ in range(5000))[:30000].rsplit(" ", 1)[0]
    run = Run(tuple(atoms_of_paragraph(text, "en", 1000)), VOICE, "paragraph")
    segments = segment_runs([run], 1000, key_is_text, frozenset())
    assert all(s.characters <= 1000 for s in segments)
    assert " ".join(s.text for s in segments) == text
    words = set(text.split())
    assert all(s.text.split()[0] in words and s.text.split()[-1] in words for s in segments)
    # Frugal even here: at most one credit over the bound per ten requests.
    assert sum(s.credits for s in segments) <= credits_for(len(text)) + len(segments) // 10 + 1


def test_a_long_sentence_is_cut_at_clauses_before_words():
    clause = "the lamp turned and the tide came in over the black rocks"
    sentence = ", ".join([clause] * 30) + "."
    run = Run(tuple(atoms_of_paragraph(sentence, "en", 300)), VOICE, "paragraph")
    segments = segment_runs([run], 300, key_is_text, frozenset())
    assert len(segments) > 1
    assert all(s.text.endswith((",", ".")) for s in segments)


def test_a_word_longer_than_the_limit_is_cut_into_pieces():
    run = Run(tuple(atoms_of_paragraph("x" * 250, "en", 100)), VOICE, "paragraph")
    segments = segment_runs([run], 100, key_is_text, frozenset())
    assert [s.characters for s in segments] == [100, 100, 50]


def test_pauses_follow_the_cut():
    paras = ["One short sentence here. " * 20, "Another paragraph follows."]
    run = Run(tuple(a for p in paras for a in atoms_of_paragraph(p.strip(), "en", 200)), VOICE, "scene")
    segments = segment_runs([run], 200, key_is_text, frozenset())
    assert segments[-1].pause_after == "scene"
    assert {s.pause_after for s in segments[:-1]} <= {"sentence", "paragraph"}


def test_credits_are_per_started_hundred():
    assert [credits_for(n) for n in (0, 1, 60, 100, 101, 200, 215)] == [0, 1, 1, 1, 2, 2, 3]


# ---------------------------------------------------------------- dialogue


@pytest.mark.parametrize("text, expected", [
    ("“Oh, that! I thought of the salt. There was never any mystery.” He laughed.",
     ["“Oh, that!", "I thought of the salt.", "There was never any mystery.”", "He laughed."]),
    ('He said, "Hold the light. Is anyone there?" Then he left.',
     ['He said, "Hold the light.', 'Is anyone there?"', "Then he left."]),
    ("“Ask Mr. Tobin. He knows J. R. R. Tolkien. Go to St. Brigid’s. Ask Dr. Okafor.”",
     ["“Ask Mr. Tobin.", "He knows J. R. R. Tolkien.", "Go to St. Brigid’s.",
      "Ask Dr. Okafor.”"]),
    ("“It is 3.5 degrees. Cold!” “Yes. Very.”", ["“It is 3.5 degrees.", "Cold!”", "“Yes.", "Very.”"]),
    ("‘Come here. Now.’ She came.", ["‘Come here.", "Now.’", "She came."]),
    ("“Don’t. I can’t.” Fine.", ["“Don’t.", "I can’t.”", "Fine."]),
    ("“Wait... what was that? Nothing!”", ["“Wait... what was that?", "Nothing!”"]),
    ("“The U.S. Navy came at 9 p.m. sharp.”", ["“The U.S. Navy came at 9 p.m. sharp.”"]),
    ("She said “no.” Then she left.", ["She said “no.”", "Then she left."]),
])
def test_a_multi_sentence_quotation_is_cut_at_its_sentence_ends(text, expected):
    pairs = split_sentences(text)
    assert [s for s, _ in pairs] == expected
    assert "".join(s + sep for s, sep in pairs).rstrip() == text


QUOTE_BITS = ["“", "”", "‘", "’", '"', "'", ". ", "! ", "? ", "… ", "Mr. ", "J. ", "don’t ",
              "Salt", "tide", " ", "St. ", "U.S. ", "3.5 "]


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(QUOTE_BITS + WORDS), min_size=1, max_size=60).map("".join))
def test_sentences_with_quotes_cover_the_text_exactly(text):
    text = " ".join(text.split())
    if not text:
        return
    pairs = split_sentences(text)
    assert "".join(s + sep for s, sep in pairs).rstrip() == text
    assert all(s and s == s.strip() for s, _ in pairs)


def test_pysbd_never_sees_more_than_a_chunk_of_a_long_unbroken_line(monkeypatch):
    # One long line with no sentence end at all: pysbd is quadratic in its input.
    from pipeline import segment

    seen: list[int] = []
    real = segment._segmenter("en")

    class Recording:
        def segment(self, text):
            seen.append(len(text))
            return real.segment(text)

    monkeypatch.setattr(segment, "_segmenter", lambda language: Recording())
    text = ("word " * 20000 + "x" * 50000 + ". Then. " + "y" * 30000).strip()
    pairs = split_sentences(text)
    assert "".join(s + sep for s, sep in pairs).rstrip() == text
    assert seen and max(seen) <= segment._PYSBD_CHUNK


def test_a_segment_with_nothing_speakable_is_never_sent_and_keeps_its_pause():
    atoms = (Atom("Hello there.", "\n", 0), Atom("😀😀🎉", "\n", 0), Atom("…", "\n", 0))
    # max_chars so small that each atom is its own segment
    segments = segment_runs([Run(atoms, VOICE, "scene")], 12, key_is_text, frozenset())
    assert [(s.text, s.pause_after) for s in segments] == [("Hello there.", "scene")]
    alone = segment_runs([Run((Atom("👍🏽", "\n", 0),), VOICE, "paragraph")], 100, key_is_text,
                         frozenset())
    assert alone == []
