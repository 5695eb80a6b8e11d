"""Levels, finishing and the m4b text, on synthetic audio with known answers."""

from __future__ import annotations

import math
import re
import subprocess
from array import array
from pathlib import Path

import imageio_ffmpeg
import pytest

from pipeline import audio, package
from pipeline import loudness as rules
from tests.helpers import dbfs, pcm_of

RATE = 44100
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def write_raw(path: Path, samples: list[int]) -> audio.Stitched:
    path.write_bytes(array("h", samples).tobytes())
    return audio.Stitched(path, len(samples), RATE)


def sine(seconds: float, amplitude: float, freq: float = 440.0) -> list[int]:
    n = int(seconds * RATE)
    return [int(32767 * amplitude * math.sin(2 * math.pi * freq * i / RATE)) for i in range(n)]


def speechlike(seconds: float) -> list[int]:
    """Bursts of harmonics with sharp peaks and gaps: crest factor like a voice."""
    out: list[int] = []
    for _ in range(int(seconds / 0.5)):
        burst = [int(9000 * math.sin(2 * math.pi * 180 * i / RATE)
                     + 5000 * math.sin(2 * math.pi * 2300 * i / RATE)
                     + (20000 if i % 4000 == 0 else 0)) for i in range(int(0.35 * RATE))]
        out += burst + [0] * int(0.15 * RATE)
    return out


def test_meter_finds_rms_peak_head_and_tail_of_a_known_signal():
    meter = audio.LevelMeter(RATE)
    signal = [0] * RATE + sine(1.0, 0.5) + [0] * (2 * RATE)
    data = array("h", signal).tobytes()
    for start in range(0, len(data), 7777):  # odd chunk sizes must not matter
        meter.feed(data[start:start + 7777])
    lv = meter.levels()
    assert lv.frames == 4 * RATE
    assert lv.rms_db == pytest.approx(10 * math.log10(0.125 / 4), abs=0.05)
    assert lv.peak_db == pytest.approx(-6.02, abs=0.05)
    assert lv.head_ms == 1000
    assert lv.tail_ms == 2000
    assert lv.floor_db == audio.SILENCE_DB


@pytest.mark.slow
@pytest.mark.parametrize("loudness,kind", [("rms:-18", "rms"), (-20.0, "lufs")])
def test_finished_chapter_hits_the_target_with_peaks_limited(tmp_path, loudness, kind):
    pcm = write_raw(tmp_path / "in.raw", [0] * RATE + speechlike(12.0) + [0] * (2 * RATE))
    level = float(str(loudness).removeprefix("rms:"))
    target = rules.Target(kind, level, rules.TARGET_CEILING_DB)
    treatment = rules.treatment_for(target, pcm, audio.raw_levels(pcm.path, RATE))
    out = tmp_path / "out.mp3"
    audio.encode_chapter(pcm, treatment, mp3=out, tags={"title": "t"})
    samples = pcm_of(out)
    assert len(samples) == pcm.frames  # gapless: not a sample gained or lost
    peak = dbfs(max(abs(min(samples)), max(samples)))
    assert peak <= rules.TARGET_CEILING_DB + 0.3
    if kind == "rms":
        rms = math.sqrt(sum(s * s for s in samples) / len(samples))
        assert dbfs(rms) == pytest.approx(level, abs=0.5)
    else:
        log = subprocess.run([FFMPEG, "-hide_banner", "-nostats", "-i", str(out), "-af", "ebur128",
                              "-f", "null", "-"], capture_output=True, text=True).stderr
        lufs = float(re.findall(r"I:\s+(-?[\d.]+) LUFS", log)[-1])
        assert lufs == pytest.approx(level, abs=1.0)


def test_pauses_become_room_tone_not_digital_silence(tmp_path):
    pcm = write_raw(tmp_path / "in.raw", [0] * (2 * RATE) + sine(1.0, 0.3) + [0] * (2 * RATE))
    out = tmp_path / "out.mp3"
    audio.encode_chapter(pcm, audio.Treatment(), mp3=out)
    pause = pcm_of(out)[: RATE]
    rms = math.sqrt(sum(s * s for s in pause) / len(pause))
    assert -80 < dbfs(rms) <= -60


@pytest.mark.slow
def test_same_input_encodes_to_the_same_bytes(tmp_path):
    pcm = write_raw(tmp_path / "in.raw", speechlike(3.0))
    treatment = audio.Treatment(gain_db=2.0, ceiling_db=-3.5)
    a, b = tmp_path / "a.mp3", tmp_path / "b.mp3"
    audio.encode_chapter(pcm, treatment, mp3=a, tags={"title": "x"})
    audio.encode_chapter(pcm, treatment, mp3=b, tags={"title": "x"})
    assert a.read_bytes() == b.read_bytes()


def test_chapter_marks_count_whole_aac_frames_less_the_first_priming():
    parts = [(f"c{i}", 431 + i) for i in range(100)]
    marks = package.book_chapters(parts, RATE)
    assert marks[0][1] == 0
    total = sum(f for _, f in parts) * audio.AAC_FRAME - audio.AAC_PRIMING
    assert marks[-1][2] == round(total * 1000 / RATE)
    assert all(a[2] == b[1] for a, b in zip(marks, marks[1:]))
    start = sum(f for _, f in parts[:50]) * audio.AAC_FRAME
    assert marks[50][1] == round(start * 1000 / RATE)


def test_ffmetadata_escapes_its_special_characters():
    text = package.ffmetadata({"title": "A=B; #1 \\ x", "comment": ""}, [("One\nTwo", 0, 1500)])
    assert text.startswith(";FFMETADATA1\n")
    assert "title=A\\=B\\; \\#1 \\\\ x" in text
    assert "comment=" not in text
    assert "[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1500\ntitle=One\\\nTwo" in text


def test_acx_clamps_chapter_head_and_tail_into_its_bounds(tmp_path):
    from pipeline.config import load_config

    (tmp_path / "c.md").write_text("# C\n\nText.\n", encoding="utf-8")
    (tmp_path / "audiobook.yml").write_text(
        "title: T\npauses: {chapter_head_ms: 3000, chapter_tail_ms: 200}\n"
        "chapters:\n  - source: c.md\n", encoding="utf-8")
    pauses = rules.chapter_pauses(load_config(tmp_path / "audiobook.yml"))
    assert 500 <= pauses.chapter_head_ms <= 1000
    assert 1000 <= pauses.chapter_tail_ms <= 5000
