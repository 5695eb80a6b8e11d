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
import itertools
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydub import AudioSegment

from pipeline.audio import db
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
# How far the time between two pauses may stray from what the text between
# them predicts: at least STEP_SIGMA_MS, else a share of that time.
STEP_SIGMA_MS, STEP_SIGMA = 250.0, 0.2
MAX_STEP = 4  # events (and pauses, plus one) one step of the alignment may pass over
BAND_MS, BAND = 3000.0, 0.1  # how far from the prior a pause may be to pair at all
CONFIDENT = -1.0  # a joint's match scoring less is left as the voice made it
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
    parts = parts or _whole(text)
    levels = block_levels(audio)
    voiced = [i for i, db in enumerate(levels) if db > VOICE_DBFS]
    if not voiced:
        return Layout((), tuple((0, 0) for _ in parts), 0, 0, ())
    speech = (voiced[0] * BLOCK_MS, (voiced[-1] + 1) * BLOCK_MS)
    joints = [k for k in range(len(parts) - 1) if parts[k].pause_after in RETIMED]
    pauses = find_pauses(levels, speech)
    if marks:
        found = _by_marks(joints, parts, marks, pauses)
        if len(found) < len(joints):
            # A sentence end the engine does not mark (eSpeak reads "..." before
            # a capital as a clause, not a sentence): the aligner places it,
            # between the joints its marks did place.
            found = _between_marked(found, _by_prior(joints, parts, text, speech, pauses))
    else:
        found = _by_prior(joints, parts, text, speech, pauses)
    return _assemble(audio, parts, speech, joints, found, pause_ms, marks)


def _whole(text: str) -> tuple[Part, ...]:
    """A segment that knows nothing of its sentences: one part, the whole text."""
    return (Part(0, len(text), text, -1, "paragraph", None, ""),)


def block_levels(audio: AudioSegment) -> list[float]:
    """dBFS of every BLOCK_MS block (digital silence is audio.SILENCE_DB)."""
    width = audio.sample_width
    step = audio.frame_rate * BLOCK_MS // 1000 * width
    raw = audio.raw_data
    full = float(1 << (8 * width - 1))
    return [db(audioop.rms(raw[start:start + step], width), full)
            for start in range(0, len(raw) - step + 1, step)]


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


def _between_marked(marked: dict[int, Pause], guessed: dict[int, Pause]) -> dict[int, Pause]:
    """The marked joints, plus each guessed one that lies between its marked neighbours."""
    out = dict(marked)
    for k, pause in guessed.items():
        if k in marked:
            continue
        before = [marked[j] for j in marked if j < k]
        after = [marked[j] for j in marked if j > k]
        if ((not before or pause.start_ms >= max(p.end_ms for p in before))
                and (not after or pause.end_ms <= min(p.start_ms for p in after))):
            out[k] = pause
    return _monotone(out)


def _mark_for(offset: int, marks: Sequence[tuple[int, int]]) -> int | None:
    """The mark at this character offset (engines may count a space or two differently)."""
    best = min(marks, key=lambda m: abs(m[0] - offset), default=None)
    return best[1] if best is not None and abs(best[0] - offset) <= 3 else None


def _by_prior(joints: list[int], parts: Sequence[Part], text: str,
              speech: tuple[int, int], pauses: list[Pause]) -> dict[int, Pause]:
    """Joints matched to pauses by aligning every place the text may pause with the audio.

    The events are every pausing punctuation mark of the text (a comma, a
    sentence end inside a quotation, ...) plus the joints; the pauses are the
    silences found. A dynamic programme pairs them in order, each at most
    once. A pair scores by how well the pause's length suits the event (a
    sentence end wants a pause as long as this voice makes them, a comma a
    short one) and by how well the time since the previous pair matches the
    text between them: timing is judged step by step, so a voice that slows
    down or speeds up over a long request does not shift every later joint.
    Leaving an event or a pause unpaired costs a little. Aligning all events,
    not only the joints, keeps a joint from taking the pause of a sentence
    or clause beside it.
    """
    if not joints or not pauses:
        return {}
    events = _events(text, [parts[k + 1].start for k in joints])
    expected = expected_times([e.offset for e in events], text, speech, pauses)
    ends = sum(1 for e in events if e.strong)
    typical = statistics.median(sorted((p.length for p in pauses), reverse=True)[:max(1, ends)])
    longest = max(p.length for p in pauses)
    pairs = _align(events, expected, pauses, speech, typical, longest)
    by_offset = {parts[k + 1].start: k for k in joints}
    return {by_offset[events[e].joint_offset]: pause for e, (pause, score) in pairs.items()
            if events[e].joint_offset in by_offset and score > CONFIDENT}


def _align(events: list[_Event], expected: list[float], pauses: list[Pause],
           speech: tuple[int, int], typical: float, longest: int
           ) -> dict[int, tuple[Pause, float]]:
    """The best in-order pairing of events with pauses: event index -> (pause, its score)."""
    n, m = len(events), len(pauses)
    neg = float("-inf")

    def fit(e: int, p: Pause) -> float:
        if not events[e].strong:
            return 0.3 * min(1.0, p.length / 150)
        if p.length < 0.4 * typical:  # far too short for this voice's sentence ends
            return -0.5
        return min(1.0, p.length / typical)

    def step(span_expected: float, span_actual: float) -> float:
        spread = max(STEP_SIGMA_MS, STEP_SIGMA * span_expected)
        return 0.5 * ((span_actual - span_expected) / spread) ** 2

    # Prefix sums of what skipping costs: skipped(events, a, b) is events a..b-1.
    event_cost = list(itertools.accumulate((_skip_event(e) for e in events), initial=0.0))
    pause_cost = list(itertools.accumulate((_skip_pause(p, longest) for p in pauses), initial=0.0))
    # Only pauses near where the text puts an event are worth trying: a band.
    band = max(BAND_MS, BAND * (speech[1] - speech[0]))
    near = [[j for j in range(m) if abs(pauses[j].middle - expected[i]) <= band]
            for i in range(n)]
    # best[i][j]: best score with event i paired to pause j; back[i][j]: the pair before.
    best = [[neg] * m for _ in range(n)]
    back: list[list[tuple[int, int] | None]] = [[None] * m for _ in range(n)]
    for i in range(n):
        for j in near[i]:
            here = fit(i, pauses[j])
            # From the start of speech, skipping everything before.
            value = (here - event_cost[i] - pause_cost[j]
                     - step(expected[i] - speech[0], pauses[j].middle - speech[0]))
            choice = None
            for a in range(max(0, i - MAX_STEP), i):
                for b in near[a]:
                    if not j - MAX_STEP - 1 <= b < j or best[a][b] == neg:
                        continue
                    cand = (best[a][b] + here - (event_cost[i] - event_cost[a + 1])
                            - (pause_cost[j] - pause_cost[b + 1])
                            - step(expected[i] - expected[a], pauses[j].middle - pauses[b].middle))
                    if cand > value:
                        value, choice = cand, (a, b)
            best[i][j], back[i][j] = value, choice
    final, last = neg, None
    for i in range(n):
        for j in near[i]:
            if best[i][j] == neg:
                continue
            value = (best[i][j] - (event_cost[n] - event_cost[i + 1])
                     - (pause_cost[m] - pause_cost[j + 1])
                     - step(speech[1] - expected[i], speech[1] - pauses[j].middle))
            if value > final:
                final, last = value, (i, j)
    pairs: dict[int, tuple[Pause, float]] = {}
    while last is not None:
        i, j = last
        prev = back[i][j]
        since = (expected[i] - (expected[prev[0]] if prev else speech[0]),
                 pauses[j].middle - (pauses[prev[1]].middle if prev else speech[0]))
        pairs[i] = (pauses[j], fit(i, pauses[j]) - step(*since))
        last = prev
    return pairs


@dataclass(frozen=True)
class _Event:
    offset: int  # where the text after it starts
    strong: bool  # a sentence end (or a joint) rather than a clause mark
    joint_offset: int = -1  # the start of the part after it, when it is a joint


def _events(text: str, joint_starts: Sequence[int]) -> list[_Event]:
    """Every place the text may pause, in order; a joint absorbs the mark that ends its part."""
    events = [_Event(found.end(), strong) for found, strong in _pausing_marks(text)]
    for start in joint_starts:
        near = [k for k, e in enumerate(events) if abs(e.offset - start) <= 3]
        if near:
            events[near[-1]] = _Event(events[near[-1]].offset, True, start)
        else:
            events.append(_Event(start, True, start))
    return sorted(events, key=lambda e: e.offset)


def _pausing_marks(text: str):
    """(match, is a sentence end) for each punctuation mark a voice may pause at.

    A full stop after an abbreviation or an initial (Mr. Tobin, J. R. Hale)
    counts as a clause mark: some voices read through it, others (eSpeak)
    stop briefly.
    """
    for found in _PAUSING.finditer(text):
        mark = found.group(0)
        if not any(c in ".!?…。！？" for c in mark):
            yield found, False
            continue
        if mark.startswith(".") and "." == mark.rstrip("\"'”’)]"):
            word = text[:found.start()].rsplit(None, 1)[-1] if text[:found.start()].strip() else ""
            word = word.lstrip("\"'“‘(")
            if word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                yield found, False
                continue
        yield found, True


_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "lt", "col", "gen", "capt", "prof", "rev", "sr",
                  "jr", "mt", "vol", "fig", "e.g", "i.e", "etc", "vs", "cf", "p.m", "a.m"}


def _skip_event(event: _Event) -> float:
    return 0.6 if event.joint_offset >= 0 else 0.4 if event.strong else 0.05


def _skip_pause(pause: Pause, longest: int) -> float:
    return 0.3 * pause.length / longest


def expected_times(offsets: Sequence[int], text: str, speech: tuple[int, int],
                   pauses: Sequence[Pause]) -> list[float]:
    """Where speech should reach each character offset: a prior that knows about pauses.

    Characters take a steady time each, and every punctuation mark that
    voices pause at adds one average pause; both rates are fitted to this
    audio (its speech length, and the pauses found in it).
    """
    marks = [found.end() for found, _ in _pausing_marks(text)]
    mean_pause = sum(p.length for p in pauses) / len(pauses) if pauses else 0.0
    length = speech[1] - speech[0]
    talk = length - mean_pause * len(marks)
    if talk <= length * 0.3:  # the pauses explain too much: fall back to characters alone
        mean_pause, talk = 0.0, float(length)
    per_char = talk / max(1, len(text))
    return [speech[0] + offset * per_char + sum(1 for m in marks if m < offset) * mean_pause
            for offset in offsets]


# Punctuation voices pause at (with the quotes and brackets that may close it).
_PAUSING = re.compile(r"[,;:.!?…—–。！？，；：]+[\"'”’)\]]*(?=\s|$)")
# Moves of the matching programmes.
_PAUSE_UNUSED, _JOINT_UNMATCHED, _MATCHED = 0, 1, 2


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
    parts = parts or _whole(text)
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
