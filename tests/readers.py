"""The real programs a reader or a reviewer opens our outputs with: epubcheck and Chromium.

CI installs both (`.ci/run`); elsewhere the tests that need them are skipped, never faked.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

EPUBCHECK_JAR = Path("/usr/share/java/epubcheck.jar")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def epubcheck(path: Path) -> subprocess.CompletedProcess:
    """Run epubcheck (Debian ships a jar; its /usr/bin wrapper needs binfmt_misc)."""
    java = shutil.which("java")
    if java and EPUBCHECK_JAR.exists():
        command = [java, "-jar", str(EPUBCHECK_JAR), str(path)]
    elif shutil.which("epubcheck"):
        command = ["epubcheck", str(path)]
    else:
        pytest.skip("epubcheck is not installed (apt-get install epubcheck)")
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def ffprobe_chapters(path: Path) -> list[tuple[str, float, float]]:
    """(title, start s, end s) of each chapter in an M4B's QuickTime chapter track, by ffprobe.

    Players (Apple Books, iOS, VLC) read that track: a text track the audio
    track references. ffprobe falls back to the Nero chpl list (which mutagen
    reads) when the track is missing, so its presence is checked first.
    Debian's ffmpeg package brings ffprobe (`.ci/run` installs it).
    """
    import json

    probe = shutil.which("ffprobe")
    if probe is None:
        pytest.skip("ffprobe is not installed (apt-get install ffmpeg)")
    done = subprocess.run([probe, "-v", "warning", "-show_chapters", "-show_streams", "-of",
                           "json", str(path)], capture_output=True, text=True, timeout=120,
                          check=True)
    assert "chapter track" not in done.stderr, done.stderr
    data = json.loads(done.stdout)
    tracks = [s for s in data["streams"] if s.get("codec_tag_string") == "text"]
    assert len(tracks) == 1, f"no QuickTime chapter track in {path}"
    return [(c.get("tags", {}).get("title", ""), float(c["start_time"]), float(c["end_time"]))
            for c in data["chapters"]]


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    """Headless Chromium with no network chatter, a fresh profile, and 5 s of virtual time."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={profile}",
         "--virtual-time-budget=5000", *args],
        capture_output=True, text=True, timeout=120)
