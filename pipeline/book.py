"""The domain model the stages pass to one another: plain, frozen dataclasses."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# The API's emotion table (guide, "Supported Emotion Parameters").
EMOTIONS: dict[str, int] = {
    "auto": 0,
    "happy": 1,
    "angry": 2,
    "sad": 3,
    "afraid": 4,
    "disgusted": 5,
    "melancholic": 6,
    "surprised": 7,
    "calm": 8,
}
EMOTION_NAMES: dict[int, str] = {v: k for k, v in EMOTIONS.items()}
# The voice library (Playground) spells some emotions its own way: "cheerful"
# is the API's happy. Config values and `voices --emotion` accept both.
EMOTION_ALIASES: dict[str, str] = {
    "cheerful": "happy",
    "terrified": "afraid",
    "neutral": "auto",
}


def emotion_id(name: str) -> int | None:
    """The API's emotion id of a name or library spelling, or None if it is neither."""
    word = name.strip().lower()
    return EMOTIONS.get(EMOTION_ALIASES.get(word, word))

# The API's language keys (guide, "Supported Languages").
LANGUAGES: tuple[str, ...] = (
    "all", "zh", "en", "ar", "ru", "es", "fr", "pt", "de", "ko", "ja", "zh_yue",
)

SPEED_MIN, SPEED_MAX = 0.5, 2.0


@dataclass(frozen=True)
class Voice:
    """Everything that decides how a piece of text sounds."""

    voice: int
    emotion: int = 0
    speed: float = 1.0
    language: str = "en"


@dataclass(frozen=True)
class Block:
    """One unit of a chapter's structure.

    kind is one of:
      heading   text read aloud, followed by the heading pause
      paragraph prose; a "\\n" inside marks a verse line break
      scene     a scene break (no text), read as the scene pause
      switch    an inline voice switch; `settings` holds its key/value pairs,
                an empty tuple resets to the chapter's narrator
    """

    kind: str
    text: str = ""
    line: int | None = None
    level: int = 0
    settings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Chapter:
    """A chapter as read from its source, before voices are resolved."""

    title: str
    source: str
    blocks: tuple[Block, ...]
    # Which config entry produced it (0-based), to find its voice overrides.
    entry: int = 0
    # The config line of that entry, for error messages.
    line: int | None = None


def slugify(text: str, fallback: str = "chapter") -> str:
    """A lowercase ASCII file-name part: 'The Lost Key!' -> 'the-lost-key'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:60].rstrip("-") or fallback
