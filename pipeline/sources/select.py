"""The chapter selection grammar, written once: EPUB `select:` and CHAPTER arguments.

A word picks chapters by:
- position: `3` (1-based);
- range: `3-5` (both ends included; spaces around the dash allowed);
- title: the whole title, ignoring case, with typographic and straight
  quotes alike (’ ‘ ʼ ′ read as ', “ ” „ ″ as ") and runs of spaces as one;
- slug: the title's file-name form (`the-lost-key`, see book.slugify).

Every word must match something; the chapters come back in book order,
each once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.book import slugify

_RANGE = re.compile(r"(\d+)\s*[-–—]\s*(\d+)")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "′": "'", "‛": "'", "`": "'",
                         "“": '"', "”": '"', "„": '"', "″": '"', "‟": '"', "«": '"', "»": '"'})


@dataclass(frozen=True)
class Selection:
    """What a selection picked (0-based, in book order) and the words that matched nothing."""

    positions: list[int]
    unmatched: list[str]


def fold_title(text: str) -> str:
    """A title as compared: NFKC, quotes straightened, spaces collapsed, case folded."""
    text = unicodedata.normalize("NFKC", str(text)).translate(_QUOTES)
    return " ".join(text.split()).casefold()


def select_positions(titles: Sequence[str], wanted: Sequence[str]) -> Selection:
    """The 0-based positions `wanted` names among chapters titled `titles`.

    An empty `wanted` selects every chapter. The caller turns `unmatched`
    into its own problem lines (it knows the config key or argument).
    """
    if not wanted:
        return Selection(list(range(len(titles))), [])
    folded = [fold_title(t) for t in titles]
    slugs = [slugify(t, "") for t in titles]
    picked: set[int] = set()
    unmatched: list[str] = []
    for word in wanted:
        found = _positions_of(str(word).strip(), folded, slugs)
        if found:
            picked.update(found)
        else:
            unmatched.append(str(word))
    return Selection(sorted(picked), unmatched)


def _positions_of(word: str, folded: list[str], slugs: list[str]) -> list[int]:
    n = len(folded)
    if word.isdecimal():
        return [int(word) - 1] if 1 <= int(word) <= n else []
    bounds = _RANGE.fullmatch(word)
    if bounds:
        a, b = int(bounds.group(1)), int(bounds.group(2))
        return list(range(a - 1, b)) if 1 <= a <= b <= n else []
    key = fold_title(word)
    if not key:
        return []
    by_title = [i for i, t in enumerate(folded) if t == key]
    return by_title or [i for i, s in enumerate(slugs) if s and s == key]


def describe_choices(titles: Sequence[str], limit: int = 12) -> str:
    """'use 1 to N, a range such as 2-3, or a title (1 One; 2 Two ...)' for error messages."""
    listing = "; ".join(f"{i} {t}" for i, t in enumerate(titles[:limit], 1))
    more = " ..." if len(titles) > limit else ""
    return f"use 1 to {len(titles)}, a range such as 2-3, or a title ({listing}{more})"
