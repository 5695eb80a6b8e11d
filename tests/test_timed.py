"""Timed narration through the real build: pauses inside packed requests, sentence timings,
cues that match the audio, the read-along EPUB and the review page of a real build."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import zipfile
from array import array
from pathlib import Path

import pytest
from pydub import AudioSegment

from pipeline.audio import ffmpeg_path
from pipeline.timing import block_levels
from tests.conftest import run_cli
from tests.emulator_helpers import emulator, remote_env
from tests.readers import chromium, epubcheck

RATE, BLOCK_MS, SILENT_DB = 16000, 10, -55.0

LINES = ["“Is the lamp lit?”", "“Not yet. The wick wants trimming.”",
         "She set the kettle on the stove. “Then trim it, and quickly,” she said.",
         "“You never could leave a thing alone.”", "He did not answer at once.",
         "“Hold the light steady. Count the flashes.”", "“It's only the sea,” said Tobin."]


def dialogue(paragraphs: int) -> str:
    body = ["# The Long Night", ""]
    for n in range(paragraphs):
        if n == paragraphs // 2:
            body += ["## Later", ""]
        body += [LINES[n % len(LINES)], ""]
    return "\n".join(body)


CONFIG = """\
title: Timed Book
author: A. Writer
{backend}
output: {{formats: [mp3, vtt, epub], loudness: none}}
chapters: [ch/01.md]
"""


def pcm(path: Path, rate: int = RATE) -> array:
    """16-bit mono samples of an audio file (MP3 or .m4a) as ffmpeg decodes it."""
    raw = subprocess.run([ffmpeg_path(), "-v", "error", "-i", str(path), "-map", "0:a:0",
                          "-f", "s16le", "-ac", "1", "-ar", str(rate), "-"],
                         capture_output=True, check=True).stdout
    samples = array("h")
    samples.frombytes(raw)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def levels(path: Path) -> list[float]:
    """dBFS per 10 ms block of a finished file, measured as the stitcher measures."""
    return block_levels(AudioSegment(data=pcm(path).tobytes(), sample_width=2, frame_rate=RATE,
                                     channels=1))


def quiet_gaps_and_voiced_cues(spans: list[tuple[int, int]], lv: list[float]) -> tuple[int, int]:
    """How many gaps between consecutive (start_ms, end_ms) spans are silent in lv, and how
    many spans hold voice: where the timings match the audio, nearly all of both."""
    quiet = sum(all(db < SILENT_DB for db in lv[(a_end + 20) // BLOCK_MS:(b_start - 20) // BLOCK_MS])
                for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
    voiced = sum(any(db > -40 for db in lv[start // BLOCK_MS:end // BLOCK_MS])
                 for start, end in spans)
    return quiet, voiced


def long_pauses(lv: list[float], min_ms: int = 550) -> int:
    """Silent stretches of at least min_ms strictly inside the audio (not head or tail)."""
    count, start = 0, None
    for i, db in enumerate(lv):
        if db < SILENT_DB and start is None:
            start = i
        elif db >= SILENT_DB and start is not None:
            count += start > 0 and (i - start) * BLOCK_MS >= min_ms
            start = None
    return count


def check_timed_chapter(build: Path) -> dict:
    manifest = json.loads((build / "manifest.json").read_text())
    entry = manifest["chapters"][0]
    sentences = entry["sentences"]
    lv = levels(build / entry["file"])
    boundaries = sum(1 for a, b in zip(sentences, sentences[1:]) if a["block"] != b["block"])
    paragraphs = len({s["block"] for s in sentences})
    assert len(entry["segments"]) < paragraphs / 3  # the requests really were packed
    # Every paragraph and heading joint is heard as a pause, and no other place is.
    assert long_pauses(lv) == boundaries
    quiet_gaps, voiced_cues = quiet_gaps_and_voiced_cues(
        [(s["start_ms"], s["end_ms"]) for s in sentences], lv)
    assert quiet_gaps >= 0.97 * (len(sentences) - 1)
    assert voiced_cues >= 0.97 * len(sentences)
    cues = (build / Path(entry["file"]).with_suffix(".vtt")).read_text()
    assert cues.count(" --> ") == len(sentences)
    assert "“Is the lamp lit?”" in cues  # cue text as written in the source
    return entry


@pytest.mark.slow
def test_offline_build_times_every_sentence_and_pauses_every_paragraph(project, tmp_path):
    project(CONFIG.format(backend="backend: local"), {"ch/01.md": dialogue(24)})
    done = run_cli("build", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    entry = check_timed_chapter(tmp_path / "build")
    assert entry["boundaries_unaligned"] == 0 == json.loads(done.stdout)["boundaries_unaligned"]
    assert entry["boundaries_aligned"] > 20
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "build").iterdir() if p.is_file()}
    again = run_cli("build", "--json", cwd=tmp_path)
    assert json.loads(again.stdout)["chapters_written"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "build").iterdir()
            if p.is_file()} == before  # a no-op build writes nothing, new outputs included


TRAILING = ["The tide came in, and the tide went out again... Nobody on the pier said a word.",
            "He counted the flashes twice… Then he wrote the number in the log.",
            "She waited by the stove, by the window, by the door... The kettle never sang.",
            "It was late. The lamp was lit... Tobin climbed the stair with the oil can."]


@pytest.mark.slow
def test_sentences_the_engine_does_not_mark_are_placed_between_those_it_does(project, tmp_path):
    # eSpeak reads "..." or "…" before a capital as a clause, not a sentence:
    # it reports no sentence event there, yet the joint must still be cut and timed.
    body = "\n\n".join(["# Trailing Off", *(TRAILING * 3)])
    project(CONFIG.format(backend="backend: local").replace("vtt, epub", "vtt"),
            {"ch/01.md": body + "\n"})
    done = run_cli("build", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    entry = json.loads((tmp_path / "build" / "manifest.json").read_text())["chapters"][0]
    assert entry["boundaries_unaligned"] == 0, entry["boundaries_unaligned"]
    sentences = entry["sentences"]
    # The heading, then per round 2 + 1 + 2 + 3 sentences: the splitter (like
    # pysbd) ends a sentence at "..." before a capital, but not at "…".
    assert len(sentences) == 1 + 3 * (2 + 1 + 2 + 3)
    lv = levels(tmp_path / "build" / entry["file"])
    quiet = [all(db < SILENT_DB for db in lv[(a["end_ms"] + 20) // BLOCK_MS:
                                             (b["start_ms"] - 20) // BLOCK_MS])
             for a, b in zip(sentences, sentences[1:])]
    assert all(quiet), [s["text"] for s, q in zip(sentences[1:], quiet) if not q]


@pytest.mark.slow
def test_emulator_build_aligns_the_services_audio(project, tmp_path):
    project(CONFIG.format(backend="backend: audiocleaner"), {"ch/01.md": dialogue(24)})
    with emulator(latency=0.05, audio_kind="speech") as emu:
        done = run_cli("build", "--json", cwd=tmp_path, env=remote_env(emu.url))
    assert done.returncode == 0, done.stderr
    check_timed_chapter(tmp_path / "build")


def best_lag(reference: array, signal: array, at: int, search: int) -> int:
    """The shift of reference within signal near `at` that matches best (cross-correlation)."""
    best, best_score = 0, -math.inf
    for lag in range(-search, search + 1):
        window = signal[at + lag:at + lag + len(reference)]
        score = sum(a * b for a, b in zip(reference, window))
        if score > best_score:
            best, best_score = lag, score
    return best


@pytest.mark.slow
def test_read_along_epub_and_cues_of_a_build_are_valid_and_reproducible(project, tmp_path):
    project(CONFIG.format(backend="backend: local"), {"ch/01.md": dialogue(8)})
    assert run_cli("build", cwd=tmp_path).returncode == 0
    build = tmp_path / "build"
    epub = build / "timed-book.epub"
    result = epubcheck(epub)
    assert "0 fatals / 0 errors / 0 warnings" in result.stdout + result.stderr, result.stdout
    entry = json.loads((build / "manifest.json").read_text())["chapters"][0]
    with zipfile.ZipFile(epub) as z:
        smil = z.read("EPUB/smil/001.smil").decode()
        opf = z.read("EPUB/content.opf").decode()
        audio_members = [n for n in z.namelist() if n.startswith("EPUB/audio/")]
        m4a = tmp_path / "001.m4a"
        m4a.write_bytes(z.read("EPUB/audio/001.m4a"))
    # The audio is AAC in MP4 (an EPUB 3 core media type), not the chapter MP3.
    assert audio_members == ["EPUB/audio/001.m4a"]
    assert 'href="audio/001.m4a" id="audio-001" media-type="audio/mp4"' in opf
    assert set(re.findall(r'<audio src="([^"]+)"', smil)) == {"../audio/001.m4a"}
    clips = re.findall(r'clipBegin="0:(\d\d):(\d\d\.\d+)" clipEnd="0:(\d\d):(\d\d\.\d+)"', smil)
    assert len(clips) == len(entry["sentences"])
    spans = [(round((int(m1) * 60 + float(s1)) * 1000), round((int(m2) * 60 + float(s2)) * 1000))
             for m1, s1, m2, s2 in clips]
    for start, end in spans:  # every clip lies inside the audio file it names
        assert 0 <= start < end <= entry["duration_ms"]
    # The clips match the .m4a as a reader decodes it: a pause between clips, voice in each.
    quiet, voiced = quiet_gaps_and_voiced_cues(spans, levels(m4a))
    assert quiet >= 0.97 * (len(spans) - 1) and voiced >= 0.97 * len(spans)
    # To the sample: the .m4a's edit list skips the AAC priming frame, so the voice sits
    # where it sits in the MP3 (the times were measured on that PCM). Without it, 1024
    # samples (23 ms) late.
    ours, mp3 = pcm(m4a, 44100), pcm(build / entry["file"], 44100)
    onset = next(i for i, x in enumerate(mp3) if abs(x) > 32768 * 10 ** (-30 / 20))
    assert abs(best_lag(mp3[onset - 256:onset + 768], ours, onset - 256, 1200)) <= 2
    assert len(ours) == entry["aac"]["frames"] * 1024 - 1024
    first = {p.name: p.read_bytes() for p in build.iterdir() if p.is_file()}
    shutil.rmtree(build)
    assert run_cli("build", cwd=tmp_path).returncode == 0
    assert {p.name: p.read_bytes() for p in build.iterdir() if p.is_file()} == first
    # A reading system on Chromium (Thorium, Readium) skips the priming too: the duration
    # it reports is the edit list's, 1024 samples short of the frames it holds.
    page = tmp_path / "player.html"
    page.write_text('<audio src="001.m4a" preload="auto"></audio><p id="d">none</p><script>'
                    'const a = document.querySelector("audio");'
                    'a.addEventListener("loadedmetadata",'
                    ' () => document.getElementById("d").textContent = "d=" + a.duration);'
                    '</script>')
    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile").stdout
    found = re.search(r"d=([\d.]+)", dom)
    assert found, dom
    assert abs(float(found.group(1)) - len(ours) / 44100) < 0.001


@pytest.mark.slow
def test_review_since_marks_the_edited_sentence_changed(project, tmp_path):
    text = dialogue(40)  # a few requests: the edit re-makes one of them
    project(CONFIG.format(backend="backend: local"), {"ch/01.md": text})
    assert run_cli("build", cwd=tmp_path).returncode == 0
    old = tmp_path / "old-manifest.json"
    shutil.copy(tmp_path / "build" / "manifest.json", old)
    (tmp_path / "ch" / "01.md").write_text(text.replace("He did not answer at once.",
                                                        "He did not answer for a long time.", 1))
    assert run_cli("build", cwd=tmp_path).returncode == 0
    done = run_cli("review", "--since", str(old), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "build" / "review" / "index.html").read_text()
    assert re.search(r'class="s changed"[^>]*>He did not answer for a long time\.', page)
    assert re.search(r'class="s"[^>]*>“Is the lamp lit\?”', page)  # far from the edit: unchanged
    assert "sentence(s) changed" in page


@pytest.mark.slow
def test_a_source_epub_becomes_a_read_along_epub_that_epubcheck_accepts(project, tmp_path):
    from tests.epub_factory import collection_docs, write_epub

    write_epub(tmp_path / "book.epub", collection_docs())
    # No mp3: the read-along EPUB is made from the chapters' AAC alone.
    project("title: Stories\nauthor: A. Tester\noutput: {formats: [m4b, vtt, epub], "
            "loudness: none}\nchapters: [book.epub]\n")
    done = run_cli("build", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    build = tmp_path / "build"
    entries = json.loads((build / "manifest.json").read_text())["chapters"]
    assert len(entries) == 3 and all(e["sentences"] for e in entries)
    result = epubcheck(build / "stories.epub")
    assert "0 fatals / 0 errors / 0 warnings" in result.stdout + result.stderr, result.stdout
    assert len(list(build.glob("*.vtt"))) == 3
    assert not list(build.glob("*.mp3"))
    with zipfile.ZipFile(build / "stories.epub") as z:
        assert sorted(n for n in z.namelist() if n.startswith("EPUB/audio/")) == [
            f"EPUB/audio/00{i}.m4a" for i in (1, 2, 3)]
    assert (build / "stories.m4b").stat().st_size > 0
