"""Where each sentence of a segment lies in its audio, and the pauses between them re-timed.

A segment may carry several sentences, paragraphs, even a heading; the voice
reads its joints with pauses of its own (the offline engine reads a paragraph
break exactly like a space). `lay_out` finds each joint in the audio, cuts
there, trims both sides and lays in the configured pause, so what a listener
hears no longer depends on where a request was cut.

Finding the joints:
- With engine marks (the offline backend reports where each sentence starts),
  the joint is the silence just before that mark.
- Without them (a remote service), the joints are matched to the pauses
  found in the audio by a dynamic programme: k expected joints, placed in
  order, each near where the characters before it say it should be (a
  character-proportional prior), each on a distinct pause, scored by the
  pause's length and its distance from the prior.
A joint matched with low confidence is never cut: the service's own pause
stays and the joint is counted as unaligned. Cutting only ever happens in
silence, so a wrong match cannot cut into a word.
"""

from __future__ import annotations

import audioop
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydub import AudioSegment

from pipeline.segment import Part

BLOCK_MS = 10
SILENCE_DBFS = -45.0  # quieter than this is a pause between words or sentences
VOICE_DBFS = -50.0  # the same threshold trim() uses for the speech edges
MIN_PAUSE_MS = 60  # shorter gaps are inside words (stops, plosives)
FADE_MS = 5
# Joints we cut and re-time; a clause joint (a long sentence cut for length)
# keeps the voice's own timing.
RETIMED = {"sentence", "line", "paragraph", "heading", "scene"}
# A joint farther than this from where its characters put it is no match.
PRIOR_WINDOW = 0.25  # of the segment's speech length
MARK_WINDOW_MS = (700, 200)  # before and after an engine's sentence mark


@dataclass(frozen=True)
class Pause:
    start_ms: int  # the first silent block
    end_ms: int  # after the last silent block

    @property
    def length(self) -> int:
        return self.end_ms - self.start_ms

    @property
    def middle(self) -> float:
        return (self.start_ms + self.end_ms) / 2


@dataclass(frozen=True)
class Layout:
    pieces: tuple[AudioSegment | int, ...]  # speech, and pauses in ms between them
    spans: tuple[tuple[int, int], ...]  # per part: (start, end) in ms of the laid-out audio
    aligned: int  # joints found and re-timed
    unaligned: int  # joints kept as the voice made them
    # Per joint (the index of the part it follows): the pause it was cut in,
    # in the segment's own audio, or None where it was left as the voice made it.
    joints: tuple[tuple[int, Pause | None], ...] = ()


def lay_out(audio: AudioSegment, text: str, parts: Sequence[Part],
            pause_ms: Callable[[str], int], marks: Sequence[tuple[int, int]] = ()) -> Layout:
    """Speech pieces and pauses for one segment, with every part's time in the result."""
    levels = block_levels(audio)
    voiced = [i for i, db in enumerate(levels) if db > VOICE_DBFS]
    if not voiced:
        return Layout((), tuple((0, 0) for _ in parts), 0, 0, ())
    speech = (voiced[0] * BLOCK_MS, (voiced[-1] + 1) * BLOCK_MS)
    joints = [k for k in range(len(parts) - 1) if parts[k].pause_after in RETIMED]
    pauses = find_pauses(levels, speech)
    if marks:
        found = _by_marks(joints, parts, marks, pauses)
    else:
        found = _by_prior(joints, parts, text, speech, pauses)
    return _assemble(audio, parts, speech, joints, found, pause_ms, marks)


def block_levels(audio: AudioSegment) -> list[float]:
    """dBFS of every BLOCK_MS block."""
    width = audio.sample_width
    step = audio.frame_rate * BLOCK_MS // 1000 * width
    raw = audio.raw_data
    full = float(1 << (8 * width - 1))
    out = []
    for start in range(0, len(raw) - step + 1, step):
        rms = audioop.rms(raw[start:start + step], width)
        out.append(-120.0 if rms == 0 else 20 * _log10(rms / full))
    return out


def _log10(x: float) -> float:
    import math

    return math.log10(x)


def find_pauses(levels: Sequence[float], speech: tuple[int, int]) -> list[Pause]:
    """Silent stretches of at least MIN_PAUSE_MS strictly inside the speech."""
    first, last = speech[0] // BLOCK_MS, speech[1] // BLOCK_MS
    out = []
    start = None
    for i in range(first, last):
        quiet = levels[i] < SILENCE_DBFS
        if quiet and start is None:
            start = i
        elif not quiet and start is not None:
            if (i - start) * BLOCK_MS >= MIN_PAUSE_MS:
                out.append(Pause(start * BLOCK_MS, i * BLOCK_MS))
            start = None
    return out


def _by_marks(joints: list[int], parts: Sequence[Part], marks: Sequence[tuple[int, int]],
              pauses: list[Pause]) -> dict[int, Pause]:
    """Each joint at the longest pause just before the engine's mark for the next part."""
    found: dict[int, Pause] = {}
    for k in joints:
        at = _mark_for(parts[k + 1].start, marks)
        if at is None:
            continue
        before, after = MARK_WINDOW_MS
        near = [p for p in pauses if p.end_ms >= at - before and p.start_ms <= at + after]
        if near:
            found[k] = max(near, key=lambda p: (p.length, -abs(p.end_ms - at)))
    return _monotone(found)


def _mark_for(offset: int, marks: Sequence[tuple[int, int]]) -> int | None:
    """The mark at this character offset (engines may count a space or two differently)."""
    best = min(marks, key=lambda m: abs(m[0] - offset), default=None)
    return best[1] if best is not None and abs(best[0] - offset) <= 3 else None


def _by_prior(joints: list[int], parts: Sequence[Part], text: str,
              speech: tuple[int, int], pauses: list[Pause]) -> dict[int, Pause]:
    """Joints matched in order to distinct pauses near where the text puts them."""
    if not joints or not pauses:
        return {}
    length = speech[1] - speech[0]
    window = max(300.0, PRIOR_WINDOW * length)
    expected = expected_times([parts[k + 1].start for k in joints], text, speech, pauses)
    longest = max(p.length for p in pauses)

    def score(j: int, p: Pause) -> float:
        distance = abs(p.middle - expected[j])
        if distance > window:
            return float("-inf")
        return p.length / longest - distance / window

    # best[j][i]: best total for the first j joints using only the first i pauses;
    # how[j][i] says which move got there.
    n, m = len(joints), len(pauses)
    neg = float("-inf")
    best = [[0.0] * (m + 1)] + [[neg] * (m + 1) for _ in range(n)]
    how = [[_PAUSE_UNUSED] * (m + 1) for _ in range(n + 1)]
    for j in range(1, n + 1):
        best[j][0], how[j][0] = best[j - 1][0] + _SKIP_COST, _JOINT_UNMATCHED
        for i in range(1, m + 1):
            options = [(best[j][i - 1], _PAUSE_UNUSED),
                       (best[j - 1][i] + _SKIP_COST, _JOINT_UNMATCHED),
                       (best[j - 1][i - 1] + score(j - 1, pauses[i - 1]), _MATCHED)]
            best[j][i], how[j][i] = max(options)
    found: dict[int, Pause] = {}
    j, i = n, m
    while j > 0:
        move = how[j][i]
        if move == _MATCHED:
            if score(j - 1, pauses[i - 1]) > 0:  # confident enough to cut
                found[joints[j - 1]] = pauses[i - 1]
            j, i = j - 1, i - 1
        elif move == _PAUSE_UNUSED:
            i -= 1
        else:
            j -= 1
    return found


def expected_times(offsets: Sequence[int], text: str, speech: tuple[int, int],
                   pauses: Sequence[Pause]) -> list[float]:
    """Where speech should reach each character offset: a prior that knows about pauses.

    Characters take a steady time each, and every punctuation mark that
    voices pause at adds one average pause; both rates are fitted to this
    audio (its speech length, and the pauses found in it).
    """
    marks = [m.end() for m in _PAUSING.finditer(text)]
    mean_pause = sum(p.length for p in pauses) / len(pauses) if pauses else 0.0
    length = speech[1] - speech[0]
    talk = length - mean_pause * len(marks)
    if talk <= length * 0.3:  # the pauses explain too much: fall back to characters alone
        mean_pause, talk = 0.0, float(length)
    per_char = talk / max(1, len(text))
    out = []
    for offset in offsets:
        before = sum(1 for m in marks if m <= offset)
        out.append(speech[0] + offset * per_char + before * mean_pause)
    return out


# Punctuation voices pause at (with the quotes and brackets that may close it).
_PAUSING = re.compile(r"[,;:.!?…—–。！？，；：]+[\"'”’)\]]*(?=\s|$)")


# Moves of the matching programme, and what leaving a joint unmatched costs
# (more than a poor match loses, less than a good one wins).
_PAUSE_UNUSED, _JOINT_UNMATCHED, _MATCHED = 0, 1, 2
_SKIP_COST = -0.5


def _monotone(found: dict[int, Pause]) -> dict[int, Pause]:
    """Drop matches that would put joints out of order or on one pause."""
    out: dict[int, Pause] = {}
    last_end = -1
    for k in sorted(found):
        p = found[k]
        if p.start_ms >= last_end:
            out[k] = p
            last_end = p.end_ms
    return out


def _assemble(audio: AudioSegment, parts: Sequence[Part], speech: tuple[int, int],
              joints: list[int], found: dict[int, Pause], pause_ms: Callable[[str], int],
              marks: Sequence[tuple[int, int]]) -> Layout:
    """Cut at the found joints; time every part in the laid-out audio."""
    cuts = sorted(found)
    groups = []  # (first part, last part, speech start, speech end) in source ms
    first, start = 0, speech[0]
    for k in cuts:
        groups.append((first, k, start, found[k].start_ms))
        first, start = k + 1, found[k].end_ms
    groups.append((first, len(parts) - 1, start, speech[1]))

    pieces: list[AudioSegment | int] = []
    spans: list[tuple[int, int]] = []
    out_ms = 0
    for g, (a, b, s, e) in enumerate(groups):
        piece = audio[s:e].fade_in(FADE_MS).fade_out(FADE_MS)
        pieces.append(piece)
        spans += _spans_in_group(parts, a, b, s, e, out_ms, marks)
        out_ms += len(piece)
        if g < len(groups) - 1:
            gap = pause_ms(parts[b].pause_after)
            pieces.append(gap)
            out_ms += gap
    return Layout(tuple(pieces), tuple(spans), len(cuts), len(joints) - len(cuts),
                  tuple((k, found.get(k)) for k in joints))


def _spans_in_group(parts: Sequence[Part], a: int, b: int, s: int, e: int, out_ms: int,
                    marks: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Times of parts a..b that share one piece of speech [s, e) starting at out_ms."""
    if a == b:
        return [(out_ms, out_ms + e - s)]
    chars = parts[b].end - parts[a].start
    starts = []
    for k in range(a, b + 1):
        at = _mark_for(parts[k].start, marks) if marks and k > a else None
        if at is None or not s <= at <= e:
            at = s + (e - s) * (parts[k].start - parts[a].start) // max(1, chars)
        starts.append(min(max(at, s), e))
    starts = [max(starts[i], starts[i - 1]) if i else starts[i] for i in range(len(starts))]
    ends = starts[1:] + [e]
    return [(out_ms + x - s, out_ms + y - s) for x, y in zip(starts, ends)]


# ------------------------------------------------------------------ a chapter


@dataclass
class Timeline:
    """The sentences of one chapter, timed in its stitched audio, as the manifest keeps them."""

    chapter: int
    rate: int
    sentences: list[dict]
    aligned: int = 0
    unaligned: int = 0
    frames: int = 0  # how far the stitched audio has come

    def advance(self, piece: AudioSegment | int) -> None:
        if isinstance(piece, int):
            self.frames += self.rate * piece // 1000
        else:
            self.frames += int(piece.frame_count())

    @property
    def ms(self) -> int:
        return self.frames * 1000 // self.rate


def segment_pieces(timeline: Timeline, key: str, text: str, parts: Sequence[Part],
                   audio: AudioSegment, pause_ms: Callable[[str], int],
                   marks: Sequence[tuple[int, int]] = ()):
    """One segment's speech and inner pauses, its sentences added to the timeline."""
    layout = lay_out(audio, text, parts, pause_ms, marks)
    timeline.aligned += layout.aligned
    timeline.unaligned += layout.unaligned
    start = timeline.ms
    for part, (a, b) in zip(parts, layout.spans):
        if part.source or not timeline.sentences:
            n = len(timeline.sentences) + 1
            timeline.sentences.append({
                "id": f"c{timeline.chapter}-s{n}", "text": part.source or text[part.start:part.end],
                "start_ms": start + a, "end_ms": start + b, "block": part.block,
                "kind": part.kind, "line": part.line, "segment": key})
        else:  # a piece of a long sentence: the sentence goes on
            timeline.sentences[-1]["end_ms"] = start + b
    for piece in layout.pieces:
        timeline.advance(piece)
        yield piece
