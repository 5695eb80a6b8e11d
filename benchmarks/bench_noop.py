"""A no-op rebuild against `plan` on the same book.

    python benchmarks/bench_noop.py [--chapters 3] [--chars 20000] [--repeat 3] [--keep DIR]
    python benchmarks/bench_noop.py --samples [--repeat 9]   (the repository's sample book)

    The 8.8-hour book of the README: --chapters 20 --chars 24000 --keep /tmp/noop
    (about 490,000 characters; the first build takes minutes, --keep reuses it).

Builds a synthetic book offline once (not timed), then times, through the
real command line, `audiobook plan` and `audiobook build` with nothing
changed. A warm no-op is answered by the build ledger's front door
(pipeline/ledger.py) before click is imported; it is paired, run by run,
with `python -c 'import click, yaml'`, the figure issue 22 sets as its
bound. Without a build record (as after a build under another environment)
a no-op build plans from the plan memos and checks every output; after a
fresh checkout (every source touched) it also hashes the sources again.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import textgen  # noqa: E402
from bench_credits import write_project  # noqa: E402


def timed(args: list[str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, stdout) of one CLI run.

    CPU time (user + system of the child, ffmpeg included) is reported
    beside wall time because a shared machine stretches wall time.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, capture_output=True,
                          text=True, check=True, env=_env())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def in_process(folder: Path) -> tuple[float, float]:
    """(wall, CPU) of the library's no-op build(), imports excluded: what the work costs."""
    from pipeline.build import build
    from pipeline.config import load_config

    cwd = os.getcwd()
    os.chdir(folder)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        result = build(load_config(folder / "audiobook.yml"))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        os.chdir(cwd)
    assert result.segments_synthesized == 0 and result.chapters_written == 0
    return wall, cpu


def _imports() -> tuple[float, float, str]:
    """The bound: Python's start-up with click and yaml imported, nothing run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import click, yaml"], check=True, env=_env())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), ""


def _no_op(folder: Path) -> tuple[float, float, str]:
    run = timed(["build", "--json"], folder)
    summary = json.loads(run[2])
    assert summary["segments_synthesized"] == 0 and summary["chapters_written"] == 0, summary
    return run


def _env() -> dict[str, str]:
    # As installed: bytecode is cached (a dev shell may forbid writing it);
    # the cache goes to a temp folder, not into the source tree.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "bench-noop-pycache")
    return env


def _median(runs: list[tuple[float, float, str]]) -> str:
    return (f"median {statistics.median(r[0] for r in runs):.2f} s wall, "
            f"{statistics.median(r[1] for r in runs):.2f} s CPU, of {len(runs)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chapters", type=int, default=3)
    ap.add_argument("--chars", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--samples", action="store_true", help="The sample book, not a generated one.")
    ap.add_argument("--keep", type=Path, default=None,
                    help="Build in this folder and keep it; a second run reuses the first build.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["AUDIOBOOK_CACHE_DIR"] = str(folder / "cache")
        first = 0.0
        if not (folder / "build" / "manifest.json").exists():
            if args.samples:
                repo = Path(__file__).resolve().parent.parent
                shutil.copytree(repo / "samples", folder / "samples")
                shutil.copy(repo / "audiobook.yml", folder / "audiobook.yml")
            else:
                write_project(folder, textgen.book(args.chapters, args.chars, seed=3), 1000)
            first = timed(["build", "--json"], folder)[0]
        manifest = json.loads((folder / "build" / "manifest.json").read_text())
        hours = sum(c["duration_ms"] for c in manifest["chapters"]) / 3_600_000
        characters = sum(c["characters"] for c in manifest["chapters"])
        timed(["--version"], folder)  # bytecode compiled once, as an install would have it
        plans = [timed(["plan", "--json"], folder) for _ in range(args.repeat)]
        planned, answered, floor, fresh = [], [], [], []
        for _ in range(args.repeat):
            # Without a record: it plans, and leaves the record the next one is answered from.
            for path in (folder / "cache" / "ledger" / "builds").glob("*.json"):
                path.unlink()
            planned.append(_no_op(folder))
            answered.append(_no_op(folder))
            floor.append(_imports())
        for _ in range(args.repeat):
            for source in [*folder.glob("*.md"), *folder.glob("samples/chapters/*.md")]:
                source.touch()  # a checkout: new times, the same bytes
            fresh.append(_no_op(folder))
        version = timed(["--version"], folder)
        library = [in_process(folder) for _ in range(args.repeat)]
        print(f"book: {len(manifest['chapters'])} chapters, {characters} characters, "
              f"{hours:.1f} h of audio")
        print(f"first build: {first:.1f} s" if first else "first build: reused")
        print(f"--version:     {version[0]:.2f} s wall, {version[1]:.2f} s CPU (start-up floor)")
        print(f"plan:          {_median(plans)}")
        print(f"no-op build:   {_median(answered)} (answered by the build ledger)")
        print(f"import click, yaml: {_median(floor)} (the bound, paired with the line above)")
        wins = sum(a[0] <= f[0] for a, f in zip(answered, floor))
        print(f"  no-op at or under the bound in {wins} of {len(floor)} pairs")
        print(f"  planned:     {_median(planned)} (no record: plans from the memos, checks "
              "every output, and leaves a record)")
        print(f"  fresh checkout: {_median(fresh)} (every source touched: hashed again, "
              "the memo still holds)")
        print(f"build() call:  median {statistics.median(r[0] for r in library):.2f} s wall, "
              f"{statistics.median(r[1] for r in library):.2f} s CPU, of {len(library)} "
              "(in process, modules already imported; ffmpeg's CPU not counted)")


if __name__ == "__main__":
    main()
