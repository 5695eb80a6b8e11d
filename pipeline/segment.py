"""Blocks -> segments: sentence splitting and credit-frugal, edit-local packing.

The service bills ceil(len(text) / 100) credits per request, so what a book
costs is decided here. The design, and why it is right:

1. Text is cut into *atoms*: sentences (pysbd, which knows abbreviations,
   decimals, initials, ellipses and full-width CJK punctuation), and, for a
   sentence longer than `max_chars` alone, its clauses, then its words, then
   fixed-size pieces. Every atom remembers the separator that follows it
   (" ", "" between CJK sentences, "\\n" at a paragraph or verse-line end),
   so the atoms of a run concatenate back to exactly its text: nothing is
   dropped, nothing padded.
2. A *run* is a stretch of text that one request may carry: paragraphs
   between two hard boundaries (a heading, a scene break, a voice switch,
   the chapter's ends) with one voice. Segments never cross a run.
3. Within a run, `pack_run` chooses the cuts by dynamic programming over atom
   boundaries. The cost of a candidate segment is what it would spend: 0 if
   the cache already holds its audio (that credit is spent), else
   ceil(len / 100). The minimum over all packings is found exactly, not
   greedily, so a fresh build pays the least the text allows under the
   `max_chars` bound. Ties go to the cut that sounds best (a paragraph end
   over a sentence end over a clause over a word), then to fewer requests.
4. Because cached segments cost nothing, after an edit the optimum keeps
   every cached segment it can and re-packs only the text between the
   nearest unchanged cuts: the edit stays local *by construction*, and what
   is re-packed is itself packed optimally. `plan` and `build` call the same
   function with the same cache, so the plan is exactly what the build does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

from pipeline.book import Voice
from pipeline.sources.text import is_speakable

if TYPE_CHECKING:
    import pysbd

CREDIT_CHARS = 100

# What a cut after an atom costs in naturalness (a tie-breaker after credits).
CUT_PARAGRAPH, CUT_LINE, CUT_SENTENCE, CUT_CLAUSE, CUT_WORD, CUT_HARD = 0, 1, 2, 10, 40, 200
# Headings and scene breaks are the most natural cuts of all, but a request
# may cross them (same voice): their pause is laid in at the aligned boundary.
CUT_HEADING = 0

_PYSBD_LANG = {
    "en": "en", "all": "en", "zh": "zh", "zh_yue": "zh", "ja": "ja", "ar": "ar",
    "ru": "ru", "es": "es", "fr": "fr", "de": "de", "pt": "es", "ko": "en",
}
# pysbd is quadratic in its input: feed it pieces of at most this size,
# cut at places that are sentence ends by any reading.
_PYSBD_CHUNK = 2000
_SURE_END = re.compile(r"(?<=[.!?。！？…])[\"'”’)\]]*\s+(?=[\"'“‘(\[]*[A-Z0-9\u3000-\u9fff])")
_ANY_END = re.compile(r"[.!?。！？…‼⁇⁈⁉]")
_LEADING_CLOSER = re.compile(r"[”’\"]+(?:\s+|$)")
_QUOTE_OPENERS = re.compile("[“‘\"]")
# A sentence end, closing quotes, a space, then (after opening quotes) a capital.
_QUOTED_END = re.compile(r"[.!?…]+(?:[”’\"]+)?\s+(?=[“‘\"(]*[^\W\d_a-z])")
_WORD_BEFORE = re.compile(r"[^\s“‘\"(\[—–]+$")
# Titles and short forms that end in a full stop without ending a sentence.
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "mx", "dr", "st", "prof", "rev", "fr", "sr", "jr", "gen", "col", "capt",
    "cpt", "lt", "sgt", "maj", "cmdr", "adm", "gov", "sen", "rep", "hon", "mt", "ft", "no",
    "nos", "vol", "vols", "ch", "chap", "fig", "figs", "p", "pp", "ed", "eds", "co", "corp",
    "inc", "ltd", "bros", "vs", "etc", "cf", "approx", "dept", "est", "messrs", "mme", "mlle",
    "mssrs", "rt", "ave", "rd", "blvd", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
    "sep", "sept", "oct", "nov", "dec",
})
_CLAUSE_END = re.compile(r"(?<=[,;:，、；：—–])\s*")


def credits_for(characters: int) -> int:
    return math.ceil(characters / CREDIT_CHARS) if characters else 0


@dataclass(frozen=True)
class Atom:
    text: str
    sep: str  # what follows it inside a segment
    cut: int  # naturalness penalty of a cut right after it
    # Where it comes from, for sentence timings and read-along text. source is
    # the sentence as written (before lexicon and spoken form) on the first
    # atom of a sentence, "" on the pieces that continue a long one.
    source: str = ""
    block: int = -1  # index of its heading or paragraph in the chapter
    kind: str = "paragraph"  # "heading" | "paragraph"
    line: int | None = None
    pause: str = ""  # the pause kind after it when a cut or boundary falls there


@dataclass(frozen=True)
class Part:
    """One atom's place in a segment: where its text is, and what it was in the source."""

    start: int  # character offsets in the segment's text
    end: int
    source: str
    block: int
    kind: str
    line: int | None
    pause_after: str  # the pause kind at its end ("" for the segment's last part)


@dataclass(frozen=True)
class Run:
    """Text one request may carry: same voice, no hard boundary inside."""

    atoms: tuple[Atom, ...]
    voice: Voice
    pause_after: str  # "paragraph" | "heading" | "scene"
    line: int | None = None


@dataclass(frozen=True)
class Segment:
    key: str
    text: str
    voice: Voice
    pause_after: str  # a pause kind: see Pauses in config.py
    line: int | None = None
    parts: tuple[Part, ...] = ()

    @property
    def characters(self) -> int:
        return len(self.text)

    @property
    def credits(self) -> int:
        return credits_for(len(self.text))

    def written(self) -> str:
        """The segment's text as written in the source, before lexicon and spoken form.

        Each sentence's source stands in for what was sent for it (the pieces
        of a long sentence after its first carry none); the separators stay.
        """
        if not self.parts:
            return self.text
        out, end = [], 0
        for part in self.parts:
            out += [self.text[end:part.start], part.source]
            end = part.end
        out.append(self.text[end:])
        return "".join(out)


@lru_cache(maxsize=16)
def _segmenter(language: str) -> pysbd.Segmenter:
    import pysbd  # here: a no-op build reads its plan from the memo and never segments

    return pysbd.Segmenter(language=_PYSBD_LANG.get(language, "en"), clean=False, char_span=True)


def _chunks(text: str) -> Iterable[str]:
    """Pieces of at most _PYSBD_CHUNK characters, cut at sure sentence ends.

    Where a stretch has no sure end (one 5 MB line), the cut falls at its
    last space, else anywhere: pysbd never sees more than a chunk, so a
    paragraph of any length costs linear time.
    """
    start = 0
    while len(text) - start > _PYSBD_CHUNK:
        window = text[start:start + _PYSBD_CHUNK]
        cut = max((m.end() for m in _SURE_END.finditer(window)), default=0)
        if cut == 0:
            cut = window.rfind(" ") + 1
        if cut == 0:
            cut = _PYSBD_CHUNK
        yield text[start:start + cut]
        start += cut
    yield text[start:]


def split_sentences(text: str, language: str = "en") -> list[tuple[str, str]]:
    """Sentences of one line of text, each with the whitespace that follows it.

    pysbd's sentences, then each multi-sentence quotation cut at its own
    sentence ends (see split_quotations). The pairs concatenate back to
    `text` exactly.
    """
    out: list[tuple[str, str]] = []
    for chunk in _chunks(text):
        if not _ANY_END.search(chunk):
            pieces = [chunk]  # nothing could end a sentence: spare pysbd the work
        else:
            pieces = [span.sent for span in _segmenter(language).segment(chunk)]
            if "".join(pieces) != chunk:  # never trust a splitter to keep every character
                pieces = [chunk]
            pieces = [q for p in _rejoin_closing_quotes(pieces) for q in split_quotations(p)]
        for piece in pieces:
            body = piece.rstrip()
            if body:
                out.append((body, piece[len(body):]))
            elif out:
                out[-1] = (out[-1][0], out[-1][1] + piece)
    return [(s, " " if sep else "") for s, sep in out]


def _rejoin_closing_quotes(pieces: list[str]) -> list[str]:
    """pysbd can cut before a closing quote ("‘Now.", "’ She came."): give it back."""
    out: list[str] = []
    for piece in pieces:
        match = _LEADING_CLOSER.match(piece)
        if out and match and not out[-1][-1:].isspace():
            out[-1] += match.group(0)
            piece = piece[match.end():]
        if piece:
            out.append(piece)
    return out


def split_quotations(sentence: str) -> list[str]:
    """A sentence cut at the sentence ends inside its quotations.

    pysbd keeps a quotation whole: “Oh, that! I thought of the salt. There
    was never any mystery.” is one sentence to it. A cut is made where, inside
    quotation marks (or right at their close), a sentence end (. ! ? …) is
    followed by a space and a capital letter (after any opening quote), and
    the end is not an abbreviation or an initial (Mr., Dr., St., J. R. R.).
    Pieces keep their trailing spaces, so they concatenate back to the input.
    """
    if not _QUOTE_OPENERS.search(sentence):
        return [sentence]
    depth = _quote_depths(sentence)
    cuts = [m.end() for m in _QUOTED_END.finditer(sentence)
            if depth[m.start()] > 0 and not _is_abbreviation(sentence, m.start())]
    if not cuts:
        return [sentence]
    bounds = [0, *cuts, len(sentence)]
    return [sentence[a:b] for a, b in zip(bounds, bounds[1:]) if a < b]


def _quote_depths(text: str) -> list[int]:
    """How many quotations are open at each position (curly quotes, straight double)."""
    depths = []
    double = single = 0
    straight = False
    for i, ch in enumerate(text):
        before = text[i - 1] if i else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        if ch == "“":
            double += 1
        elif ch == "”" and double:
            double -= 1
        elif ch == "‘" and (before.isspace() or before in "“\"([—–"):
            single += 1
        elif ch == "’" and single and not after.isalpha():  # else an apostrophe: don’t
            single -= 1
        elif ch == '"':
            straight = not straight if (straight or before.isspace() or before in "([—–") else False
        depths.append(double + single + straight)
    return depths


def _is_abbreviation(text: str, end: int) -> bool:
    """The word before a full stop at `end` is an abbreviation or an initial."""
    if text[end] != "." or text[end:end + 2] == "..":
        return False
    word = _WORD_BEFORE.search(text, 0, end)
    token = word.group(0) if word else ""
    return (len(token) == 1 and token.isalpha()) or "." in token or token.lower() in _ABBREVIATIONS


def _split_long(sentence: str, sep: str, cut: int, max_chars: int) -> list[Atom]:
    """A sentence longer than max_chars as clause, word or fixed-size atoms."""
    if len(sentence) <= max_chars:
        return [Atom(sentence, sep, cut)]
    atoms: list[Atom] = []
    for level, splitter in ((CUT_CLAUSE, _CLAUSE_END), (CUT_WORD, re.compile(r" +"))):
        parts = _split_keep_sep(sentence, splitter)
        if len(parts) > 1:
            for k, (part, part_sep) in enumerate(parts):
                last = k == len(parts) - 1
                atoms.extend(_split_long(part, sep if last else part_sep,
                                         cut if last else level, max_chars))
            return atoms
    # No space at all (a very long word, or CJK with no punctuation): fixed pieces.
    for start in range(0, len(sentence), max_chars):
        last = start + max_chars >= len(sentence)
        atoms.append(Atom(sentence[start:start + max_chars], sep if last else "", cut if last else CUT_HARD))
    return atoms


def _split_keep_sep(text: str, splitter: re.Pattern[str]) -> list[tuple[str, str]]:
    parts: list[tuple[str, str]] = []
    start = 0
    for match in splitter.finditer(text):
        if match.start() == start or match.end() == len(text):
            continue
        if match.start() <= start:
            continue
        parts.append((text[start:match.start()], match.group(0)))
        start = match.end()
    parts.append((text[start:], ""))
    return [p for p in parts if p[0]]


def atoms_of_paragraph(text: str, language: str, max_chars: int,
                       transform: Callable[[str], str] = lambda t: t, *, block: int = -1,
                       kind: str = "paragraph", line: int | None = None) -> list[Atom]:
    """Atoms of one paragraph; its last atom ends with a paragraph cut.

    Sentences are found in the source text, then each is transformed (lexicon,
    spoken form) on its own, so every atom knows the sentence it was written as.
    """
    atoms: list[Atom] = []
    lines = text.split("\n")
    for li, line_text in enumerate(lines):
        sentences = split_sentences(line_text, language)
        for si, (sentence, sep) in enumerate(sentences):
            last_in_line = si == len(sentences) - 1
            if last_in_line:
                last_line = li == len(lines) - 1
                sep, cut = "\n", CUT_PARAGRAPH if last_line else CUT_LINE
                pause = "paragraph" if last_line else "line"
            else:
                cut, pause = CUT_SENTENCE, "sentence"
            spoken = transform(sentence).strip()
            if not spoken:
                continue
            pieces = _split_long(spoken, sep, cut, max_chars)
            for k, piece in enumerate(pieces):
                atoms.append(Atom(piece.text, piece.sep, piece.cut,
                                  source=sentence if k == 0 else "", block=block, kind=kind,
                                  line=line, pause=pause if k == len(pieces) - 1 else "clause"))
    return atoms


def pack_run(
    atoms: tuple[Atom, ...],
    max_chars: int,
    is_cached: Callable[[str], bool] | None = None,
) -> list[tuple[int, int]]:
    """The cheapest packing of atoms into segments: a list of (start, end) atom ranges.

    Minimizes (credits still to spend, cut penalty, number of requests),
    where a segment whose text is_cached costs no credits (None: nothing is).
    The work is linear in the number of atoms times the atoms one request
    can hold; the inner loop is kept plain for that reason.
    """
    n = len(atoms)
    if n == 0:
        return []
    # The run's text, and where each atom starts and ends in it.
    starts, ends, pieces = [], [], []
    pos = 0
    for atom in atoms:
        starts.append(pos)
        pos += len(atom.text)
        ends.append(pos)
        pos += len(atom.sep)
        pieces.append(atom.text + atom.sep)
    run_text = "".join(pieces)

    inf = (math.inf, math.inf, math.inf)
    best: list[tuple[float, float, float]] = [inf] * (n + 1)
    back = [0] * (n + 1)
    best[0] = (0, 0, 0)
    unit = CREDIT_CHARS
    for j in range(1, n + 1):
        cut = 0 if j == n else atoms[j - 1].cut
        end = ends[j - 1]
        choice = inf
        for i in range(j - 1, -1, -1):
            length = end - starts[i]
            if length > max_chars and i < j - 1:
                break
            prev = best[i]
            if prev[0] == math.inf:
                continue
            if is_cached is not None and is_cached(run_text[starts[i]:end]):
                spend = 0
            else:
                spend = (length + unit - 1) // unit  # credits_for(length), inlined
            cand = (prev[0] + spend, prev[1] + cut, prev[2] + 1)
            if cand < choice:
                choice, back[j] = cand, i
        best[j] = choice
    ranges = []
    j = n
    while j > 0:
        i = back[j]
        ranges.append((i, j))
        j = i
    ranges.reverse()
    return ranges


def segment_text(atoms: tuple[Atom, ...], start: int, end: int) -> str:
    parts = [a.text + a.sep for a in atoms[start:end - 1]]
    parts.append(atoms[end - 1].text)
    return "".join(parts)


_CUT_PAUSE = {CUT_PARAGRAPH: "paragraph", CUT_LINE: "line", CUT_SENTENCE: "sentence"}


def segment_runs(
    runs: list[Run],
    max_chars: int,
    key_for: Callable[[Voice, str], str],
    cached_keys: set[str] | frozenset[str],
) -> list[Segment]:
    """Every run packed; each segment carries its key and the pause after it."""
    segments: list[Segment] = []
    for run in runs:
        def is_cached(text: str, voice: Voice = run.voice) -> bool:
            return key_for(voice, text) in cached_keys

        ranges = pack_run(run.atoms, max_chars, is_cached if cached_keys else None)
        kept = 0
        for k, (i, j) in enumerate(ranges):
            text = segment_text(run.atoms, i, j)
            if k == len(ranges) - 1:
                pause = run.pause_after
            else:
                last = run.atoms[j - 1]
                pause = last.pause or _CUT_PAUSE.get(last.cut, "clause")
            if not is_speakable(text):
                # Emoji or punctuation only: never sent. Its pause stays with the text before.
                if kept:
                    segments[-1] = replace(segments[-1], pause_after=pause)
                continue
            segments.append(Segment(key_for(run.voice, text), text, run.voice, pause,
                                    run.atoms[i].line or run.line,
                                    segment_parts(run.atoms, i, j)))
            kept += 1
    return segments


def segment_parts(atoms: tuple[Atom, ...], start: int, end: int) -> tuple[Part, ...]:
    """Where each atom of atoms[start:end] lies in segment_text(atoms, start, end)."""
    parts = []
    pos = 0
    for k in range(start, end):
        atom = atoms[k]
        last = k == end - 1
        pause = "" if last else (atom.pause or _CUT_PAUSE.get(atom.cut, "clause"))
        parts.append(Part(pos, pos + len(atom.text), atom.source, atom.block, atom.kind,
                          atom.line, pause))
        pos += len(atom.text) + len(atom.sep)
    return tuple(parts)
