"""A no-op rebuild against `plan` on the same book.

    python benchmarks/bench_noop.py [--chapters 3] [--chars 20000] [--repeat 3]

Builds a synthetic book offline once (not timed), then times, through the
real command line, `audiobook plan` and `audiobook build` with nothing
changed. A no-op build should cost about what a plan costs: it reads the
sources, packs segments against the cache, compares each chapter's output
key, and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import textgen  # noqa: E402
from bench_credits import write_project  # noqa: E402


def timed(args: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, capture_output=True,
                          text=True, check=True)
    return time.perf_counter() - t0, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chapters", type=int, default=3)
    ap.add_argument("--chars", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["AUDIOBOOK_CACHE_DIR"] = str(folder / "cache")
        write_project(folder, textgen.book(args.chapters, args.chars, seed=3), 1000)
        first, _ = timed(["build", "--json"], folder)
        plans = [timed(["plan", "--json"], folder)[0] for _ in range(args.repeat)]
        noops = []
        for _ in range(args.repeat):
            seconds, out = timed(["build", "--json"], folder)
            summary = json.loads(out)
            assert summary["segments_synthesized"] == 0 and summary["chapters_written"] == 0, summary
            noops.append(seconds)
        print(f"book: {args.chapters} chapters x {args.chars} characters")
        print(f"first build: {first:.1f} s")
        print(f"plan:          median {statistics.median(plans):.2f} s of {args.repeat}")
        print(f"no-op build:   median {statistics.median(noops):.2f} s of {args.repeat}")


if __name__ == "__main__":
    main()
