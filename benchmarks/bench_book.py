"""Build a whole synthetic book cold and compare with the floor.

The book (benchmarks/textgen.py prose, offline eSpeak NG backend, both
outputs: chapter MP3s and the M4B) is built from an empty cache, so the
time covers synthesis, stitching, loudness, both encodes and the M4B join.
The floor is one ffmpeg MP3 encode pass of the same PCM (the finished
chapters decoded and joined, not timed): what no build of this book can beat.

    python benchmarks/bench_book.py --hours 9 --jobs 2

Prints the wall time, the floor, their ratio, the CPU seconds of both
(which a shared machine's load does not change), and the M4B's size
against the chapter MP3s'. Use a small --hours (0.2) to try it out.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

import textgen  # noqa: E402

# Measured: 9 x 47,000 characters of textgen prose read as 7.29 h offline
# (about 58,000 an hour); the printed hours are measured, not this guess.
CHARACTERS_PER_HOUR = 58_000


def write_book(root: Path, hours: float, chapters: int) -> Path:
    each = max(500, round(hours * CHARACTERS_PER_HOUR / chapters))
    lines = []
    for n, text in enumerate(textgen.book(chapters, each, seed=7), start=1):
        (root / f"{n:02d}.md").write_text(text + "\n", encoding="utf-8")
        lines.append(f"  - source: {n:02d}.md")
    config = root / "audiobook.yml"
    config.write_text("title: Bench Book\nauthor: Bench\n"
                      "output: {formats: [mp3, m4b], loudness: acx}\n"
                      "chapters:\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return config


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (ffmpeg), user + system."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def cold_build(config: Path, jobs: int):
    from pipeline.build import build
    from pipeline.config import load_config

    cfg = load_config(config)
    cpu, start = cpu_seconds(), time.perf_counter()
    result = build(cfg, jobs=jobs)
    return time.perf_counter() - start, cpu_seconds() - cpu, cfg, result


def floor_encode(mp3s: list[Path], work: Path) -> tuple[float, float, float]:
    """(seconds, CPU seconds, audio seconds) of one ffmpeg MP3 encode of the chapters' PCM."""
    from pipeline import audio

    raw = work / "book.raw"
    with open(raw, "wb") as out:
        for mp3 in mp3s:
            subprocess.run([audio.ffmpeg_path(), "-v", "error", "-c:a", "mp3", "-i", str(mp3),
                            "-f", "s16le", "-ac", "1", "-ar", "44100", "-"], stdout=out, check=True)
    cpu, start = cpu_seconds(), time.perf_counter()
    subprocess.run([audio.ffmpeg_path(), "-v", "error", "-f", "s16le", "-ar", "44100", "-ac", "1",
                    "-i", str(raw), "-c:a", "libmp3lame", "-b:a", "192k", "-y",
                    str(work / "floor.mp3")], check=True)
    elapsed, used = time.perf_counter() - start, cpu_seconds() - cpu
    seconds = raw.stat().st_size / 2 / 44100
    raw.unlink()
    return elapsed, used, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=9.0)
    parser.add_argument("--chapters", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["AUDIOBOOK_CACHE_DIR"] = str(root / "cache")
        config = write_book(root, args.hours, args.chapters)
        build_s, build_cpu, cfg, result = cold_build(config, args.jobs)
        out = cfg.output.dir
        mp3s = sorted(out.glob("*.mp3"))
        m4b = next(out.glob("*.m4b"))
        mp3_bytes = sum(p.stat().st_size for p in mp3s)
        m4b_bytes = m4b.stat().st_size
        floor_s, floor_cpu, audio_s = floor_encode(mp3s, root)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"book: {len(mp3s)} chapters, {audio_s / 3600:.2f} h of audio, "
          f"{result.segments_synthesized} segments synthesized, {os.cpu_count()} cores, "
          f"--jobs {args.jobs}")
    print(f"cold build (synthesis, stitch, loudness, MP3 + AAC, m4b): {build_s:.1f} s")
    print(f"floor (one ffmpeg MP3 encode of the same PCM): {floor_s:.1f} s")
    print(f"ratio: {build_s / floor_s:.2f}")
    # On a shared machine wall times depend on the load; CPU seconds do not,
    # and a build spread over N cores can at best take its CPU time / N.
    cores = min(args.jobs, os.cpu_count() or 1)
    print(f"CPU seconds: build {build_cpu:.1f}, floor {floor_cpu:.1f}; build CPU / {cores} cores "
          f"/ floor = {build_cpu / cores / floor_cpu:.2f} (the ratio on an idle machine, "
          "if the build kept every core busy)")
    print(f"m4b: {m4b_bytes / 1e6:.1f} MB, {m4b_bytes * 8 / audio_s / 1000:.0f} kbit/s; "
          f"chapter MP3s: {mp3_bytes / 1e6:.1f} MB (m4b/mp3 = {m4b_bytes / mp3_bytes:.2f})")
    print(f"peak memory of the Python process: {rss_mb:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
