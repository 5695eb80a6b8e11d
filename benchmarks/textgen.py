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
