"""The review page: static HTML that a real browser opens from file:// and plays."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from pipeline.audio import ffmpeg_path
from pipeline.errors import InputError
from pipeline.review import changed_keys, summarize, write_review
from tests.readers import chromium


def manifest(tmp_path: Path, keys: list[str]) -> dict:
    build = tmp_path / "build"
    build.mkdir(exist_ok=True)
    subprocess.run([ffmpeg_path(), "-v", "error", "-y", "-f", "lavfi", "-i", "sine=d=3",
                    "-ac", "1", "-b:a", "64k", str(build / "01-one.mp3")], check=True)
    sentences = [
        {"id": "c1-s1", "text": "One & Only", "start_ms": 0, "end_ms": 800, "block": 0,
         "kind": "heading", "segment": keys[0]},
        {"id": "c1-s2", "text": "First <sentence>.", "start_ms": 1000, "end_ms": 1800,
         "block": 1, "kind": "paragraph", "segment": keys[1]},
        {"id": "c1-s3", "text": "Second one.", "start_ms": 1900, "end_ms": 2800, "block": 1,
         "kind": "paragraph", "segment": keys[1]},
    ]
    return {"title": "Review Book", "chapters": [
        {"index": 1, "title": "One & Only", "file": "01-one.mp3", "duration_ms": 3000,
         "segments": [{"key": keys[0], "characters": 10, "credits": 1},
                      {"key": keys[1], "characters": 120, "credits": 2}],
         "sentences": sentences},
        {"index": 2, "title": "Missing Audio", "file": "02-two.mp3", "duration_ms": 0,
         "segments": [], "sentences": []}]}


def test_changed_sentences_are_those_of_new_segments(tmp_path):
    new = manifest(tmp_path, ["a", "b2"])
    old = manifest(tmp_path, ["a", "b1"])
    changed = changed_keys(new, old)
    assert changed == {"b2"}
    summary = summarize(new, changed)
    assert (summary.sentences, summary.segments, summary.credits) == (2, 1, 2)
    assert changed_keys(new, None) == set()


def test_a_manifest_that_is_not_one_is_input_error(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text("[1, 2]")
    with pytest.raises(InputError, match="not a build manifest"):
        write_review(bad, tmp_path / "review")
    with pytest.raises(InputError, match="run `audiobook build` first"):
        write_review(tmp_path / "absent.json", tmp_path / "review")


@pytest.mark.slow
def test_review_page_renders_in_chromium_with_titles_changes_and_playable_audio(tmp_path):
    (tmp_path / "build").mkdir()
    old_path = tmp_path / "old.json"
    old_path.write_text(json.dumps(manifest(tmp_path, ["a", "b1"])))
    path = tmp_path / "build" / "manifest.json"
    path.write_text(json.dumps(manifest(tmp_path, ["a", "b2"])))
    page = write_review(path, tmp_path / "build" / "review", old_path)

    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile").stdout
    assert "<h2>One &amp; Only</h2>" in dom and "<h2>Missing Audio</h2>" in dom
    assert re.search(r'class="s changed"[^>]*>First &lt;sentence&gt;\.', dom)
    assert re.search(r'class="s"[^>]*>One &amp; Only', dom)  # unchanged: no class
    assert "2</strong> sentence(s) changed" in dom and "2 credit(s)" in dom
    # The browser loaded the audio from file:// (its duration is known).
    duration = re.search(r'data-duration="([\d.]+)"', dom)
    assert duration and abs(float(duration.group(1)) - 3.0) < 0.2
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1000,800", page.as_uri(),
             profile=tmp_path / "profile2")
    assert shot.exists() and shot.stat().st_size > 5000
