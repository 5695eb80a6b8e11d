"""How far a character-proportional guess of sentence starts is from the truth.

The offline backend knows where each sentence starts (Audio.marks, from
eSpeak's SENTENCE events). A backend that reports nothing (the Audio Cleaner
API) leaves a caller to guess, typically by spreading the audio over the text
in proportion to characters. This prints how wrong that guess is on the
sample book's segments, spoken offline, so a subtitle or chapter-mark design
can see what the guess costs.

    python benchmarks/bench_align.py [audiobook.yml]
"""

from __future__ import annotations

import io
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path

from pipeline.cache import SegmentCache
from pipeline.config import load_config
from pipeline.plan import make_plan
from pipeline.tts.base import Audio, SynthesisRequest
from pipeline.tts.local import LocalBackend


def duration_ms(audio: Audio) -> int:
    with wave.open(io.BytesIO(audio.data)) as w:
        return w.getnframes() * 1000 // w.getframerate()


def guessed_ms(text: str, offset: int, total_ms: int) -> int:
    """A sentence start placed by its share of the characters before it."""
    return round(total_ms * offset / max(1, len(text)))


def main(config: Path) -> None:
    cfg = load_config(config)
    with tempfile.TemporaryDirectory() as scratch, SegmentCache(Path(scratch)) as cache:
        plan = make_plan(cfg, cache)
    segments = [s for cp in plan.chapters for s in cp.segments]
    backend = LocalBackend(plan.resolver.genders())
    requests = [SynthesisRequest(s.key, s.text, s.voice, "bench") for s in segments]
    made: list[tuple[SynthesisRequest, Audio]] = []
    started = time.perf_counter()
    backend.synthesize_all(requests, 2, lambda request, audio: made.append((request, audio)))
    took = time.perf_counter() - started
    errors = []
    for request, audio in made:
        total = duration_ms(audio)
        errors += [abs(ms - guessed_ms(request.text, offset, total)) for offset, ms in audio.marks[1:]]
    audio_s = sum(duration_ms(a) for _, a in made) / 1000
    print(f"{len(made)} segments, {audio_s:.0f} s of audio, spoken in {took:.2f} s (2 at once)")
    if not errors:
        print("no segment has more than one sentence")
        return
    errors.sort()
    print(f"{len(errors)} sentence starts after the first of a segment")
    print(f"proportional guess off by: median {statistics.median(errors):.0f} ms, "
          f"90th percentile {errors[int(0.9 * (len(errors) - 1))]} ms, worst {errors[-1]} ms")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "audiobook.yml"))
