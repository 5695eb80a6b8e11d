"""Build one long chapter from a warm cache and compare with the floor.

The floor is a single ffmpeg MP3 encode of the same raw audio (what no build
can beat: it skips decoding segments, trimming, stitching, loudness and
tags). Prints both times, their ratio and the peak memory of this process.

    python benchmarks/bench_stitch.py --minutes 60

Speech comes from the offline eSpeak NG backend: a few paragraphs are
synthesized once, then repeated until the chapter is long enough, so the
timed build finds every segment in the cache (as a rebuild in CI does).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARAGRAPHS = [
    "The keeper climbed the spiral stair at dusk, as he had every evening for thirty years. "
    "The lamp was cold, the glass was clean, and the wind had dropped to almost nothing.",
    "Below him the harbour lights came on one by one. A fishing boat rounded the point, "
    "its engine coughing, and he raised a hand although no one aboard could have seen it.",
    "He wrote the date in the log, then the weather, then a line he had never written before: "
    "a ship's bell, heard twice, where no ship was.",
]
SECONDS_PER_REPEAT = 27.0  # about how long the three paragraphs take to read


def write_project(root: Path, repeats: int) -> Path:
    body = "\n\n".join(PARAGRAPHS[i % 3] for i in range(3 * repeats))
    (root / "long.md").write_text("# The Long Chapter\n\n" + body + "\n", encoding="utf-8")
    config = root / "audiobook.yml"
    config.write_text("title: Bench\nauthor: Bench\noutput: {formats: [mp3], loudness: acx}\n"
                      "chapters:\n  - source: long.md\n", encoding="utf-8")
    return config


def timed_build(config: Path) -> tuple[float, Path]:
    from pipeline.build import build
    from pipeline.config import load_config

    cfg = load_config(config)
    build(cfg, jobs=2)  # warms the cache: only the distinct segments are synthesized
    start = time.perf_counter()
    result = build(cfg, jobs=2, offline=True, force=True)
    elapsed = time.perf_counter() - start
    assert result.segments_synthesized == 0 and result.chapters_written == 1
    return elapsed, cfg.output.dir / "01-the-long-chapter.mp3"


def floor_encode(mp3: Path, work: Path) -> tuple[float, float]:
    """(seconds, audio seconds) of one ffmpeg encode of the chapter's raw audio."""
    from pipeline import audio

    raw = work / "chapter.raw"
    with open(raw, "wb") as out:
        subprocess.run([audio.ffmpeg_path(), "-v", "error", "-i", str(mp3), "-f", "s16le",
                        "-ac", "1", "-ar", "44100", "-"], stdout=out, check=True)
    start = time.perf_counter()
    subprocess.run([audio.ffmpeg_path(), "-v", "error", "-f", "s16le", "-ar", "44100", "-ac", "1",
                    "-i", str(raw), "-c:a", "libmp3lame", "-b:a", "192k", "-y",
                    str(work / "floor.mp3")], check=True)
    return time.perf_counter() - start, raw.stat().st_size / 2 / 44100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["AUDIOBOOK_CACHE_DIR"] = str(root / "cache")
        repeats = max(1, round(args.minutes * 60 / SECONDS_PER_REPEAT))
        config = write_project(root, repeats)
        build_s, mp3 = timed_build(config)
        floor_s, audio_s = floor_encode(mp3, root)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"chapter: {audio_s / 60:.1f} min of audio, {os.cpu_count()} cores")
    print(f"build from warm cache: {build_s:.1f} s")
    print(f"floor (one ffmpeg encode of the same raw audio): {floor_s:.1f} s")
    print(f"ratio: {build_s / floor_s:.2f}")
    print(f"peak memory of the Python process: {rss_mb:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
