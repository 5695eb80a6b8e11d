"""What more than one test module needs: one place, so no test module imports another."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from array import array
from pathlib import Path

import imageio_ffmpeg

REPO = Path(__file__).resolve().parent.parent
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()

# A one-chapter book for the S3 tier and the fleet (tests/test_remote_cache.py, test_fleet.py).
FLEET_CONFIG = """\
title: Fleet Book
author: Tester
narrator: {voice: 2072}
output: {formats: [mp3], loudness: none}
chapters:
  - source: one.md
"""
FLEET_ONE = "# One\n\nThe lamp was lit at dusk.\n\nNobody climbed the stair that night.\n"


def make_sample(root: Path, extra: str = "", output: str | None = None) -> Path:
    """The repository's sample book copied into root, with config lines changed."""
    shutil.copytree(REPO / "samples", root / "samples", dirs_exist_ok=True)
    text = (REPO / "audiobook.yml").read_text(encoding="utf-8")
    if output is not None:
        text = "\n".join(output if line.startswith("output:") else line
                         for line in text.splitlines()) + "\n"
    (root / "audiobook.yml").write_text(text + extra, encoding="utf-8")
    return root / "audiobook.yml"


def pcm_of(path: Path, rate: int = 44100) -> array:
    """16-bit mono samples of any audio file, decoded by ffmpeg."""
    raw = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "s16le",
                          "-ac", "1", "-ar", str(rate), "-"], capture_output=True, check=True).stdout
    samples = array("h")
    samples.frombytes(raw)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def dbfs(x: float) -> float:
    return 20 * math.log10(x / 32768) if x > 0 else -200.0
