"""Timed narration through the real build: pauses inside packed requests, sentence timings,
cues that match the audio, the read-along EPUB and the review page of a real build."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from pipeline.audio import decode
from pipeline.timing import block_levels
from tests.conftest import run_cli
from tests.emulator_helpers import emulator, remote_env
from tests.readers import epubcheck

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


def levels(path: Path) -> list[float]:
    """dBFS per 10 ms block of a finished file, measured as the stitcher measures."""
    return block_levels(decode(path.read_bytes(), "mp3", RATE))


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
    quiet_gaps = sum(all(db < SILENT_DB for db in lv[(a["end_ms"] + 20) // BLOCK_MS:
                                                      (b["start_ms"] - 20) // BLOCK_MS])
                     for a, b in zip(sentences, sentences[1:]))
    voiced_cues = sum(any(db > -40 for db in lv[s["start_ms"] // BLOCK_MS:s["end_ms"] // BLOCK_MS])
                      for s in sentences)
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
    clips = re.findall(r'clipBegin="0:(\d\d):(\d\d\.\d+)" clipEnd="0:(\d\d):(\d\d\.\d+)"', smil)
    assert len(clips) == len(entry["sentences"])
    for m1, s1, m2, s2 in clips:  # every clip lies inside the audio file it names
        assert 0 <= int(m1) * 60 + float(s1) < int(m2) * 60 + float(s2) <= entry["duration_ms"] / 1000
    first = {p.name: p.read_bytes() for p in build.iterdir() if p.is_file()}
    shutil.rmtree(build)
    assert run_cli("build", cwd=tmp_path).returncode == 0
    assert {p.name: p.read_bytes() for p in build.iterdir() if p.is_file()} == first


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
    project("title: Stories\nauthor: A. Tester\noutput: {formats: [mp3, vtt, epub], "
            "loudness: none}\nchapters: [book.epub]\n")
    done = run_cli("build", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    build = tmp_path / "build"
    entries = json.loads((build / "manifest.json").read_text())["chapters"]
    assert len(entries) == 3 and all(e["sentences"] for e in entries)
    result = epubcheck(build / "stories.epub")
    assert "0 fatals / 0 errors / 0 warnings" in result.stdout + result.stderr, result.stdout
    assert len(list(build.glob("*.vtt"))) == 3
