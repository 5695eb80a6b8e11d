"""A long, deterministic book of synthetic prose for the benchmarks.

The words are ours, recombined by a seeded generator: sentence lengths,
dialogue, abbreviations, numbers and paragraph sizes vary the way a novel's
do, which is what the segmenter's cost depends on.
"""

from __future__ import annotations

import random

_SUBJECTS = ["The keeper", "Marta", "Mr. Tobin", "Dr. Okafor", "The coxswain", "A gull",
             "The old trawler", "Her brother", "The harbour master", "Nobody in the village",
             "The lamp", "A young deckhand", "St. Brigid's bell", "The tide"]
_VERBS = ["watched", "remembered", "carried", "counted", "ignored", "mended", "followed",
          "wrote down", "listened to", "measured", "forgot", "painted", "found", "lost"]
_OBJECTS = ["the long grey swell", "a lantern with a cracked glass", "the ledger by the stove",
            "every step of the spiral stair", "the smell of tar and rope", "the radio's hiss",
            "the 6:40 ferry", "a letter from Galway", "the wind off the headland",
            "three miles of black water", "the U.S. weather report", "a cup of tea gone cold"]
_TAILS = ["before the light failed", "as if it mattered more than anything",
          "while the kettle sang", "until the sky went pale", "without a word",
          "at 9 p.m. precisely", "for the 23rd winter running", "e.g. the way her father had",
          "though it was 3.5 degrees and falling", "and then, slowly, did it again"]
_SPEECH = ["Hold the light", "Is anyone there", "We'll wait for the morning",
           "You never could leave a thing alone", "Count the seconds between flashes",
           "It's only the sea", "Tell Mr. Tobin I'm fine"]


def sentence(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.15:
        words = rng.choice(_SPEECH)
        mark = rng.choice([".", "?", "!"])
        return f'"{words}{mark}" said {rng.choice(_SUBJECTS).lower().replace("the ", "the ")}.'
    if kind < 0.25:
        return f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} it."
    parts = [f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"]
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        parts.append(rng.choice([", ", "; ", " and "]) + f"{rng.choice(_OBJECTS)}")
    if rng.random() < 0.6:
        parts.append(" " + rng.choice(_TAILS))
    return "".join(parts) + rng.choice([".", ".", ".", "...", "!"])


def paragraph(rng: random.Random) -> str:
    n = rng.choice([1, 1, 2, 3, 4, 5, 6, 8, 12])
    return " ".join(sentence(rng) for _ in range(n))


def chapter(rng: random.Random, title: str, characters: int) -> str:
    out = [f"# {title}", ""]
    size = 0
    while size < characters:
        if rng.random() < 0.03:
            out += ["* * *", ""]
        p = paragraph(rng)
        out += [p, ""]
        size += len(p)
    return "\n".join(out)


def book(chapters: int, characters_each: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [chapter(rng, f"Chapter {i + 1}", characters_each) for i in range(chapters)]


# ---------------------------------------------------------------- dialogue-heavy

_SPEAKERS = ["Marta", "Mr. Tobin", "Dr. Okafor", "the keeper", "her brother", "St. John"]
_LINES = ["Oh, that", "I thought of the salt", "There was never any mystery",
          "Hold the light steady", "Is anyone there", "Tell Mr. Tobin I'm fine",
          "The ferry leaves at 6:40", "We'll wait for the morning", "It's only the sea",
          "Count the seconds between flashes", "Nobody asked you", "Ask Dr. Okafor",
          "The U.S. report said rain", "Not again", "Go and see for yourself"]


def speech(rng: random.Random) -> str:
    """A curly-quoted speech of one to four sentences, often with an attribution."""
    parts = [rng.choice(_LINES) + rng.choice([".", ".", "!", "?"])
             for _ in range(rng.choice([1, 2, 2, 3, 4]))]
    said = f"{rng.choice(['said', 'asked', 'called'])} {rng.choice(_SPEAKERS)}"
    roll = rng.random()
    if roll < 0.4:
        return f"“{' '.join(parts)}” {said[0].upper() + said[1:]}."
    if roll < 0.7:
        return f"{rng.choice(_SPEAKERS).capitalize()} said, “{' '.join(parts)}”"
    return f"“{' '.join(parts)}”"


def dialogue_chapter(rng: random.Random, title: str, characters: int) -> str:
    """Mostly short paragraphs of speech, as in a dialogue-heavy novel."""
    out = [f"# {title}", ""]
    size = 0
    while size < characters:
        if rng.random() < 0.75:
            p = " ".join(speech(rng) for _ in range(rng.choice([1, 1, 1, 2])))
        else:
            p = paragraph(rng)
        out += [p, ""]
        size += len(p)
    return "\n".join(out)


# ---------------------------------------------------------------- poetry-like

_VERSE = ["the tide comes in", "the lamp goes round", "a gull above the stair",
          "salt on the window", "north of the harbour", "the ferry, late again",
          "and nobody listening", "a rope, a ledger, a cup", "under the signal mast",
          "all of the quiet morning"]


def poem(rng: random.Random, number: int) -> str:
    """A titled short poem: a heading, then one or two stanzas of verse lines."""
    stanzas = []
    for _ in range(rng.choice([1, 1, 2])):
        lines = [rng.choice(_VERSE).capitalize() + rng.choice([",", "", ";"])
                 for _ in range(rng.choice([2, 3, 4]))]
        lines[-1] = lines[-1].rstrip(",;") + "."
        stanzas.append("  \n".join(lines))  # hard line breaks: verse
    return f"## {number}. {rng.choice(_VERSE).title()}\n\n" + "\n\n".join(stanzas)


def poetry_chapter(rng: random.Random, title: str, characters: int) -> str:
    """Hundreds of short titled poems: every heading is a hard boundary."""
    out = [f"# {title}", ""]
    size = 0
    number = 1
    while size < characters:
        p = poem(rng, number)
        out += [p, ""]
        size += len(p)
        number += 1
    return "\n".join(out)


KINDS = {"novel": chapter, "dialogue": dialogue_chapter, "poetry": poetry_chapter}


def book_of(kind: str, chapters: int, characters_each: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    make = KINDS[kind]
    return [make(rng, f"Chapter {i + 1}", characters_each) for i in range(chapters)]
