"""Read-along outputs: WebVTT cues and an EPUB 3 with Media Overlays that epubcheck accepts."""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from pipeline.audio import ffmpeg_path
from pipeline.readalong import (
    ACTIVE_CLASS,
    BookInfo,
    ChapterText,
    Sentence,
    epub_bytes,
    vtt_text,
)
from tests.readers import epubcheck


def tone(path: Path, seconds: float) -> Path:
    """A tone as AAC in MP4 (.m4a), what the build hands the EPUB."""
    subprocess.run([ffmpeg_path(), "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=d={seconds}",
                    "-ac", "1", "-c:a", "aac", "-b:a", "64k", "-f", "ipod", str(path)], check=True)
    return path


def cover_png() -> bytes:
    return subprocess.run([ffmpeg_path(), "-v", "error", "-f", "lavfi", "-i", "color=c=navy:s=64x64",
                           "-frames:v", "1", "-f", "image2pipe", "-vcodec", "png", "-"],
                          capture_output=True, check=True).stdout


def chapters(tmp_path: Path) -> list[ChapterText]:
    out = []
    for i in (1, 2):
        sentences = (
            Sentence(f"c{i}-s1", f"Part {i} & more", 0, 900, 0, "heading", 1),
            Sentence(f"c{i}-s2", "It was a <dark> night.", 1200, 2500, 1, "paragraph", 3),
            Sentence(f"c{i}-s3", "She said --> no.\n\nThen left.", 2600, 3900, 1, "paragraph", 3),
        )
        out.append(ChapterText(i, f"Chapter {i}", tone(tmp_path / f"{i:02d}.m4a", 4), 4000,
                               sentences))
    return out


BOOK = BookInfo("A Test Book", "A. Writer", "en",
                "urn:uuid:12345678-1234-5678-1234-567812345678", None, "N. Reader")


def test_vtt_has_one_cue_per_sentence_with_escaped_text():
    sentences = (Sentence("a", "One & two", 0, 1500, 0, "paragraph"),
                 Sentence("b", "x --> y\n\nz", 1500, 3_723_004, 0, "paragraph"),
                 Sentence("c", "empty", 10, 10, 0, "paragraph"))
    text = vtt_text(sentences)
    assert text.startswith("WEBVTT\n\n")
    assert "00:00:00.000 --> 00:00:01.500\nOne &amp; two" in text
    assert "00:00:01.500 --> 01:02:03.004\nx -- &gt; y z" in text
    assert "empty" not in text  # a zero-length cue is no cue
    assert text.count(" --> ") == 2


@pytest.mark.slow
def test_read_along_epub_passes_epubcheck_and_clips_lie_inside_the_audio(tmp_path):
    book = BookInfo(BOOK.title, BOOK.author, BOOK.language, BOOK.identifier,
                    (cover_png(), "png"), BOOK.narrator)
    path = tmp_path / "book.epub"
    path.write_bytes(epub_bytes(book, chapters(tmp_path)))
    result = epubcheck(path)
    assert "0 fatals / 0 errors / 0 warnings" in result.stdout + result.stderr, result.stdout

    with zipfile.ZipFile(path) as z:
        assert z.namelist()[0] == "mimetype"
        opf = etree.fromstring(z.read("EPUB/content.opf"))
        metas = {m.get("property"): m.text for m in opf.iter("{*}meta")
                 if m.get("property") and not m.get("refines")}
        assert metas["media:active-class"] == ACTIVE_CLASS
        assert metas["media:duration"] == "0:00:08.000"
        audio = {i.get("href"): i.get("media-type") for i in opf.iter("{*}item")
                 if i.get("href", "").startswith("audio/")}
        assert audio == {"audio/001.m4a": "audio/mp4", "audio/002.m4a": "audio/mp4"}
        smil = z.read("EPUB/smil/001.smil").decode()
        page = z.read("EPUB/chapter-001.xhtml").decode()
    clips = re.findall(r'clipBegin="0:00:(\d+\.\d+)" clipEnd="0:00:(\d+\.\d+)"', smil)
    assert len(clips) == 3 and all(0 <= float(a) < float(b) <= 4.0 for a, b in clips)
    for ref in re.findall(r'#(c1-s\d)"', smil):
        assert f'id="{ref}"' in page


def test_read_along_epub_is_byte_reproducible(tmp_path):
    chs = chapters(tmp_path)
    assert epub_bytes(BOOK, chs) == epub_bytes(BOOK, chs)
