"""Text normalization shared by every source.

The rule: what reaches the service is what a narrator would read.

- Invisible characters never do: every Unicode format character (category
  Cf: soft hyphen, zero-width space and joiners, word joiner, BOM, bidi marks
  and isolates, invisible operators, tag characters, ...), variation
  selectors, the combining grapheme joiner and the Hangul fillers.
- Whitespace is collapsed to single spaces; a line break ("\\n", also from
  U+2028, U+2029 or a lone CR) is kept, because in verse it is a pause;
  blank lines and spaces at line ends go.
- Other control characters become spaces.
- Characters that stand for nothing a voice could say never do either:
  private-use characters, code points unassigned in this Python's Unicode
  tables, and U+FFFD (the mark of a decoding error).
- Bare URLs (http://..., www....) and footnote markers ([^1]) are dropped.
  A source marks other things it drops (a link that is only a URL, an
  image, a page number) with `DROPPED`. Where something was dropped the gap
  closes: no space is left before punctuation ("see www.x.org." -> "see."),
  and empty brackets go ("(http://x.org)" -> "").
- Quotes, apostrophes, dashes and ellipses are kept: they shape intonation.
  CJK and other scripts are kept as they are (NFC, never NFKC: full-width
  punctuation stays full-width).

`normalize` is idempotent: normalizing its output changes nothing.
"""

from __future__ import annotations

import re
import unicodedata

# Format characters (Cf, Unicode 15) plus invisible characters of other
# categories: combining grapheme joiner, Hangul fillers, Khmer inherent
# vowels, Mongolian free variation selectors, variation selectors; and lone
# surrogates, which cannot be encoded for the service at all.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160"
    "\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164"
    "\ud800-\udfff\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001-\U000e007f\U000e0100-\U000e01ef]"
)
_LINE_BREAKS = re.compile("\r\n?|[\u2028\u2029\x85]")
# Every Unicode space separator, tab and non-breaking space becomes a space.
_SPACES = re.compile(r"[ \t\f\v\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
# Where a source or normalize dropped something unread (NUL never survives
# normalize, so it cannot clash with text).
DROPPED = "\x00"

# Shared by every source's reading rule.
# A paragraph that ends like a sentence; a list item that does not gets a full stop.
SENTENCE_END = re.compile(r"[.!?…:;。！？」』\"'”’)]$")
# A paragraph of ornaments only ("* * *", "⁂", "~ ~ ~") is a scene break.
SCENE_BREAK_TEXT = re.compile(r"^[\s*⁂#~•·✻✽✢❦❧☙⸻⸺—–_=+∗◊◆○●]+$")
# The text of a link that is only a note mark: 1, [2], *, †, iv, a.
NOTE_MARK = re.compile(r"^[\[(]?(\d{1,4}|[*†‡§¶#]+|[ivxlc]{1,6}|[a-z])[\])]?$", re.IGNORECASE)


def as_sentence(text: str) -> str:
    """A list item read as a sentence: a full stop where it has no ending."""
    return text if SENTENCE_END.search(text) else text + "."


_CONTROL = re.compile(r"[\x01-\x08\x0b-\x1f\x7f-\x9f]")
# A URL ends before trailing punctuation: "see www.example.com." keeps its ".".
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"')\]\x00]*[^\s<>\"')\].,;:!?\x00]",
                  re.IGNORECASE)
_FOOTNOTE_MARK = re.compile(r"\[\^[^\]\s\x00]+\]")
# A run of dropped things with the blanks around it, and brackets left empty.
_GAP_UNIT = r"(?:\([ \t\x00]*\x00[ \t\x00]*\)|\[[ \t\x00]*\x00[ \t\x00]*\]|\x00)"
_GAP = re.compile(rf"[ \t]*{_GAP_UNIT}(?:[ \t]*{_GAP_UNIT})*[ \t]*")
_NO_SPACE_BEFORE = ".,;:!?)]\n"
_NO_SPACE_AFTER = "([\n"


def _without_unsayable(text: str) -> str:
    """Text without private-use or unassigned code points, or U+FFFD.

    Only the distinct characters of the text are looked up, so a long text
    costs one pass in C plus a lookup per distinct character.
    """
    drop = {ord(c): None for c in set(text)
            if c > "\x7f" and (c == "\ufffd" or unicodedata.category(c) in ("Cn", "Co"))}
    return text.translate(drop) if drop else text


def normalize(text: str) -> str:
    """Clean text for speech, keeping "\\n" as a line break (verse)."""
    text = _INVISIBLE.sub("", text)
    if not text.isascii():
        text = _without_unsayable(text)
    text = _LINE_BREAKS.sub("\n", text)
    text = _CONTROL.sub(" ", text)
    text = unicodedata.normalize("NFC", text)
    text = _drop_markers(text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line)


def _drop_markers(text: str) -> str:
    """Drop URLs and footnote markers, and close the gaps, until none is left.

    One pass is not enough: dropping "[^1]" from "[[^1]^2]" leaves "[^2]".
    """
    while True:
        new = _FOOTNOTE_MARK.sub(DROPPED, _URL.sub(DROPPED, text))
        new = _GAP.sub(_close_gap, new)
        if new == text:
            return text
        text = new


def _close_gap(match: re.Match[str]) -> str:
    before = match.string[match.start() - 1:match.start()]
    after = match.string[match.end():match.end() + 1]
    if not before or not after or before in _NO_SPACE_AFTER or after in _NO_SPACE_BEFORE:
        return ""
    return " "


def is_speakable(text: str) -> bool:
    """Whether a voice has anything to say: a letter or digit of any script.

    Punctuation alone, symbols and emoji are not (eSpeak NG says nothing for
    emoji, and a request of them only would be billed for silence).
    """
    return any(c.isalnum() for c in text)


def has_invisible(text: str) -> bool:
    return bool(_INVISIBLE.search(text))


def is_blank(text: str) -> bool:
    """Only whitespace, control and invisible characters: nothing a reader could see."""
    return not _CONTROL.sub("", _INVISIBLE.sub("", text)).replace(DROPPED, "").strip()

