"""The offline backend (eSpeak NG): whole, reproducible, interruptible audio, with sentence marks."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import pytest

from pipeline.book import Voice
from pipeline.cache import open_cache
from pipeline.config import load_config
from pipeline.plan import make_plan
from pipeline.tts.local import (
    FEMALE_VARIANTS,
    MALE_VARIANTS,
    OFFLINE_VOICES,
    LocalBackend,
    SynthesisIncomplete,
    _Child,
    _Engine,
    espeak_voice,
    offline_voices,
)
from pipeline.voices import load_library
from tests.conftest import REPO, wait_for

# One offline voice per kind of variant eSpeak's leaking state affected, plus Alex (never did).
VARIANT_IDS = {v.variant: v.id for v in OFFLINE_VOICES if v.id < 100}
UNSTABLE = ("f1", "f2", "f4", "f5", "Annie", "belinda", "linda", "m1")
TEXT = "Then I would have kept turning it until he did."


def frames(wav_bytes: bytes) -> int:
    with wave.open(io.BytesIO(wav_bytes)) as w:
        return w.getnframes()


def pcm(wav_bytes: bytes) -> bytes:
    with wave.open(io.BytesIO(wav_bytes)) as w:
        return w.readframes(w.getnframes())


# ---------------------------------------------------------------- F15: same text, same bytes


@pytest.mark.slow
def test_the_same_text_gives_the_same_bytes_whatever_was_spoken_before():
    backend = LocalBackend()
    for variant in UNSTABLE:
        voice = Voice(VARIANT_IDS[variant])
        first = backend.synthesize(TEXT, voice)
        backend.synthesize("Something else entirely was said here, and loudly!", voice)
        backend.synthesize("A third thing, in another voice.", Voice(VARIANT_IDS["m3"], emotion=2))
        again = backend.synthesize(TEXT, voice)
        assert hashlib.sha256(first.data).hexdigest() == hashlib.sha256(again.data).hexdigest(), \
            variant
        assert first.marks == again.marks == ((0, 0),)


def test_a_fresh_process_gives_the_same_bytes_as_this_one():
    script = textwrap.dedent(f"""
        import hashlib
        from pipeline.book import Voice
        from pipeline.tts.local import LocalBackend
        b = LocalBackend()
        b.synthesize("Warm the engine up first.", Voice({VARIANT_IDS['f2']}))
        print(hashlib.sha256(b.synthesize({TEXT!r}, Voice({VARIANT_IDS['f4']})).data).hexdigest())
    """)
    theirs = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=True).stdout.strip()
    ours = hashlib.sha256(LocalBackend().synthesize(TEXT, Voice(VARIANT_IDS["f4"])).data).hexdigest()
    assert theirs == ours


SAMPLE_OUTPUT = "output: {dir: build, formats: [mp3], loudness: none}"


def _sample_copy(root: Path) -> Path:
    root.mkdir()
    shutil.copytree(REPO / "samples", root / "samples")
    config = (REPO / "audiobook.yml").read_text(encoding="utf-8")
    lines = [SAMPLE_OUTPUT if line.startswith("output:") else line for line in config.splitlines()]
    (root / "audiobook.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.mark.slow
def test_four_cold_builds_of_the_samples_are_byte_identical(tmp_path):
    # Each build in a fresh process with a fresh cache: nothing is shared but the inputs.
    roots = [_sample_copy(tmp_path / f"run{i}") for i in range(4)]
    for pair in (roots[:2], roots[2:]):
        procs = [subprocess.Popen([sys.executable, "-m", "pipeline", "build", "-q"], cwd=root,
                                  env={**os.environ, "AUDIOBOOK_CACHE_DIR": str(root / "cache")},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for root in pair]
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
    digests = []
    for root in roots:
        built = sorted((root / "build").glob("*.mp3"))
        assert len(built) == 3
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in built})
    assert digests[1] == digests[0] and digests[2] == digests[0] and digests[3] == digests[0]


# ---------------------------------------------------------------- F5: Ctrl-C and whole audio


def test_an_exception_in_the_callback_aborts_and_is_raised_not_swallowed():
    # In a fresh process (this one's engine must stay unspoken): a SIGALRM
    # handler raises KeyboardInterrupt while eSpeak runs the callback.
    script = textwrap.dedent("""
        import signal, sys
        from pipeline.tts.local import _Engine, espeak_voice
        from pipeline.book import Voice
        def interrupt(*_):
            raise KeyboardInterrupt
        engine = _Engine.get()
        settings = espeak_voice(Voice(2072))
        text = " ".join(f"Sentence number {i} of a long text that takes a while." for i in range(200))
        signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        try:
            speech = engine.speak_here(text, settings)
        except KeyboardInterrupt:
            print("raised")
        else:
            print("returned", len(speech.pcm))
        whole = engine.speak_here("Still works afterwards.", settings)
        print("after", len(whole.pcm) > 0)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["raised", "after", "True"], done.stdout + done.stderr
    assert "Exception ignored" not in done.stderr


def test_a_child_that_dies_mid_synthesis_gives_no_audio():
    text = " ".join(f"Sentence number {i} of a long text." for i in range(300))
    child = _Child.start(_Engine.get(), text, espeak_voice(Voice(2072)), [])
    try:
        os.kill(child.pid, signal.SIGKILL)
        with pytest.raises(SynthesisIncomplete):
            child.result()
    finally:
        child.reap()


def _book(tmp_path: Path, paragraphs: int) -> Path:
    import random

    rng = random.Random(5)
    words = ["tide", "lamp", "keeper", "harbour", "rope", "gull", "ledger", "stair", "salt",
             "window", "storm", "ferry", "anchor", "quiet", "morning", "north", "signal"]
    body = ["# A Long Chapter", ""]
    for p in range(paragraphs):
        sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(6, 20))).capitalize()
                     + "." for _ in range(rng.randint(3, 6))]
        body += [f"Paragraph {p}. " + " ".join(sentences), ""]
    (tmp_path / "one.md").write_text("\n".join(body), encoding="utf-8")
    (tmp_path / "audiobook.yml").write_text(textwrap.dedent("""\
        title: Interrupted
        narrator: {voice: 2072}
        segments: {max_chars: 1000}
        output: {formats: [mp3], loudness: none}
        chapters: [one.md]
        """), encoding="utf-8")
    return tmp_path / "audiobook.yml"


def _stored_count(cfg, at_least: int) -> int:
    """How many segments the cache holds, or 0 while fewer than at_least."""
    with open_cache(cfg) as cache:
        count = len(cache.keys())
    return count if count >= at_least else 0


@pytest.mark.slow
def test_ctrl_c_during_offline_synthesis_exits_130_and_keeps_only_whole_segments(tmp_path):
    config = _book(tmp_path, 60)
    cfg = load_config(config)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "build", "--jobs", "1"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    before = wait_for(lambda: _stored_count(cfg, at_least=3), timeout=120)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    try:
        _, err = proc.communicate(timeout=120)  # a hang guard; how soon: benchmarks/bench_bounds.py
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the build was still running 120 s after Ctrl-C")
    assert proc.returncode == 130, err
    assert "Exception ignored" not in err
    with open_cache(cfg) as cache:
        plan = make_plan(cfg, cache)
        stored = {s.key: s for cp in plan.chapters for s in cp.segments if s.key in cp.cached}
        total = plan.totals()["segments"]
        assert 3 <= len(stored) < total  # interrupted mid-synthesis, not after it
        # One segment may have been stored between the count and the signal; the one being
        # spoken when it came was abandoned, not finished (--jobs 1).
        assert len(stored) <= before + 1, (before, len(stored))
        backend = LocalBackend(genders=plan.resolver.genders())
        for key, segment in stored.items():
            fresh = backend.synthesize(segment.text, segment.voice).data
            kept = cache.get(key).data
            assert frames(kept) == frames(fresh), segment.line
            assert pcm(kept) == pcm(fresh)


# ---------------------------------------------------------------- sentence marks


def test_marks_give_each_sentence_start_as_text_offset_and_audio_ms():
    text = "Oh, that! I thought of the salt. There was never any mystery."
    audio = LocalBackend().synthesize(text, Voice(2072))
    assert [offset for offset, _ in audio.marks] == [0, 10, 33]
    assert [text[o:o + 5] for o, _ in audio.marks] == ["Oh, t", "I tho", "There"]
    with wave.open(io.BytesIO(audio.data)) as w:
        rate, samples = w.getframerate(), w.readframes(w.getnframes())
    duration_ms = len(samples) // 2 * 1000 // rate
    positions = [ms for _, ms in audio.marks]
    assert positions[0] == 0 and positions == sorted(positions) and positions[-1] < duration_ms
    # Each later sentence starts after a pause: the 40 ms before its mark are near silence.
    for ms in positions[1:]:
        start = (ms - 40) * rate // 1000
        window = memoryview(samples)[start * 2:ms * rate // 1000 * 2].cast("h")
        assert max(abs(s) for s in window) < 1500, ms


def test_mark_offsets_count_characters_not_bytes():
    text = "Café au lait. Über naïve “quotes” here. Done."
    audio = LocalBackend().synthesize(text, Voice(2080))
    assert [text[o:o + 4] for o, _ in audio.marks] == ["Café", "Über", "Done"]


# ---------------------------------------------------------------- voices


def test_offline_voices_are_a_voice_library_of_distinct_voices(tmp_path):
    records = offline_voices()
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids))
    assert {2072, 2080, 2091} <= set(ids)  # the default narrator and the sample cast
    assert len(records) == 3 + len(FEMALE_VARIANTS) + len(MALE_VARIANTS)
    library = tmp_path / "offline.json"
    import json

    library.write_text(json.dumps({"code": 100000, "data": {"records": records}}))
    loaded = load_library(library)
    assert [v.id for v in loaded] == ids
    assert {v.gender for v in loaded} == {1, 2}
    backend = LocalBackend()
    assert len({backend.voice_identity(Voice(i)) for i in ids}) == len(ids)
    for record in records:
        kind = espeak_voice(Voice(record["id"])).name.split("+")[1]
        assert kind in (FEMALE_VARIANTS if record["gender"] == 2 else MALE_VARIANTS)


def test_table_voices_ignore_the_library_gender_and_others_follow_it():
    assert espeak_voice(Voice(2072), gender=1) == espeak_voice(Voice(2072), gender=2)
    assert espeak_voice(Voice(5555), gender=2).name.split("+")[1] in FEMALE_VARIANTS
    assert espeak_voice(Voice(5555), gender=1).name.split("+")[1] in MALE_VARIANTS


def test_offline_voices_differ_by_id_and_by_emotion():
    ids = [2072, 2080, 2091, 3104, 1, 2, 3, 4]
    settings = {espeak_voice(Voice(i)) for i in ids}
    assert len(settings) == len(ids)
    emotions = {(v.pitch, v.range, v.rate) for v in (espeak_voice(Voice(2072, e)) for e in range(9))}
    assert len(emotions) == 9
    # Gender from the library picks a variant of that kind.
    assert espeak_voice(Voice(4321), gender=2).name.split("+")[1] in FEMALE_VARIANTS
    slow, fast = espeak_voice(Voice(2072, speed=0.5)), espeak_voice(Voice(2072, speed=2.0))
    assert slow.rate < fast.rate


def test_offline_audio_differs_by_voice_and_emotion():
    backend = LocalBackend()
    words = "The lamp turned all night."
    takes = [backend.synthesize(words, v).data for v in
             (Voice(2072), Voice(2080), Voice(2072, emotion=3))]
    assert len({hashlib.sha256(t).hexdigest() for t in takes}) == 3


def test_the_key_carries_what_the_engine_makes_of_a_voice():
    from pipeline.plan import key_function

    backend = LocalBackend()
    assert backend.identity().endswith(":map2")
    keys = key_function("local", backend.identity(), {5555: 2})
    as_female = keys(Voice(5555), "Hello.")
    as_male = key_function("local", backend.identity(), {5555: 1})(Voice(5555), "Hello.")
    assert as_female != as_male
