"""Text normalization shared by every source, and the lexicon.

The rule: what reaches the service is what a narrator would read. Invisible
characters never do; whitespace is collapsed; quotes and dashes are kept
because they shape intonation.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

# Zero-width and formatting characters that carry no sound: word joiner,
# zero-width space/joiners, BOM, soft hyphen, invisible operators, Mongolian
# vowel separator, bidi marks and embeddings.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufe00-\ufe0f]"
)
# Every Unicode space separator, tab and non-breaking space becomes a space.
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"')\]]+", re.IGNORECASE)
_FOOTNOTE_MARK = re.compile(r"\[\^[^\]\s]+\]")


def normalize(text: str) -> str:
    """Clean text for speech, keeping "\\n" as a line break (verse)."""
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE.sub("", text)
    text = _CONTROL.sub(" ", text.replace("\r\n", "\n"))
    text = _URL.sub("", text)
    text = _FOOTNOTE_MARK.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line)


def has_invisible(text: str) -> bool:
    return bool(_INVISIBLE.search(text))


def compile_lexicon(lexicon: Mapping[str, str]):
    """A function that rewrites whole words per the lexicon.

    A key matches only as a whole word (not inside a longer word). A key
    written in lower case matches any capitalisation, and the replacement's
    first letter follows the match's ("sql" -> "sequel", "Sql" -> "Sequel",
    "SQL" -> "sequel" unless "SQL" has its own entry). Any other key matches
    exactly as written. Longer keys win over shorter ones.
    """
    if not lexicon:
        return lambda text: text
    exact = {k: v for k, v in lexicon.items() if k != k.lower()}
    folded = {k: v for k, v in lexicon.items() if k == k.lower()}
    keys = sorted(lexicon, key=len, reverse=True)
    pattern = re.compile(
        "|".join(
            rf"(?<!\w){re.escape(k)}(?!\w)" if k != k.lower()
            else rf"(?<!\w)(?i:{re.escape(k)})(?!\w)"
            for k in keys
        )
    )

    def replace(match: re.Match[str]) -> str:
        word = match.group(0)
        if word in exact:
            return exact[word]
        replacement = folded[word.lower()]
        if word[:1].isupper() and not word.isupper():
            return replacement[:1].upper() + replacement[1:]
        return replacement

    return lambda text: pattern.sub(replace, text)
