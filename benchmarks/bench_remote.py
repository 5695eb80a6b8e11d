"""Build wall time against the service's own limit.

120 one-segment requests, the emulator at 0.5 s latency and a concurrency
limit of 4: no client can beat tasks x latency / concurrency = 15 s. The
build also stitches and encodes the book, so the fair bound is
15 s + the offline stitching time of the same book (measured here as a
forced rebuild from the cache with --offline). Target: wall <= 1.25 x that.

    python benchmarks/bench_remote.py [--jobs N ...] [--audio speech|tone]

Not run by pytest: it takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASKS, LATENCY, LIMIT = 120, 0.5, 4
CHAPTERS = 4

SENTENCES = [
    "The lamp at Gannet Point was lit at dusk, as it had been for ninety years",
    "Rain came in from the west and the keeper wrote the pressure in his log",
    "By midnight the wind had turned, and the sea climbed the rocks below",
    "A ship's lights showed to the south, then vanished behind the squall",
    "He wound the clockwork that turned the lens and counted the flashes",
]


def write_book(folder: Path) -> None:
    """TASKS paragraphs of under 100 characters: one request each at max_chars 100."""
    per = TASKS // CHAPTERS
    entries = []
    for c in range(CHAPTERS):
        body = "\n\n".join(f"{SENTENCES[(c * per + i) % len(SENTENCES)]}, part {c}.{i}."
                           for i in range(per))
        (folder / f"{c + 1:02d}.md").write_text(body + "\n", encoding="utf-8")
        entries.append(f"  - {{source: {c + 1:02d}.md, title: Part {c + 1}}}")
    (folder / "audiobook.yml").write_text("\n".join([
        "title: Benchmark Book", "author: Bench", "language: en", "backend: audiocleaner",
        "narrator: {voice: 2072, emotion: auto, speed: 1}", "segments: {max_chars: 100}",
        "output: {dir: build, formats: [mp3]}", "cache: {dir: cache}", "chapters:", *entries,
    ]) + "\n", encoding="utf-8")


def start_emulator(audio: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "emulator", "--port", "0",
                             "--latency", str(LATENCY), "--concurrency", str(LIMIT),
                             "--audio", audio], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, line.split()[-1]


def timed(args: list[str], folder: Path, env: dict) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=folder, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr}")
    return elapsed, json.loads(done.stdout) if "--json" in args else {}


def stats(url: str) -> dict:
    import httpx

    return httpx.get(url + "/_emulator/stats", timeout=10).json()


def synthesis_only(url: str, jobs: int) -> float:
    """The client alone, in this process, against a fresh key: no stitching at all."""
    from pipeline.book import Voice
    from pipeline.tts.audiocleaner import AudioCleanerBackend
    from pipeline.tts.base import SynthesisRequest

    requests = [SynthesisRequest(f"k{i}", f"{SENTENCES[i % len(SENTENCES)]}, take {i}.",
                                 Voice(2072), f"request {i}") for i in range(TASKS)]
    client = AudioCleanerBackend("bench-key-2", url)
    started = time.perf_counter()
    client.synthesize_all(requests, jobs, lambda request, audio: None)
    return time.perf_counter() - started


def one_run(jobs: int, audio: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_book(folder)
        proc, url = start_emulator(audio)
        try:
            env = {**os.environ, "AUDIOCLEANER_BASE_URL": url,
                   "AUDIOCLEANER_API_KEY": "bench-key", "AUDIOBOOK_CACHE_DIR": str(folder / "c")}
            plan = json.loads(subprocess.run([sys.executable, "-m", "pipeline", "plan", "--json"],
                                             cwd=folder, env=env, capture_output=True,
                                             text=True).stdout)["totals"]
            assert plan["segments"] == TASKS, plan
            wall, result = timed(["build", "--json", "--jobs", str(jobs)], folder, env)
            stitch, _ = timed(["build", "--offline", "--force"], folder, env)
            service = stats(url)
            client_only = synthesis_only(url, jobs)
        finally:
            proc.terminate()
            proc.wait(10)
    floor = TASKS * LATENCY / LIMIT
    bound = 1.25 * (floor + stitch)
    return {"jobs": jobs, "audio": audio, "wall_s": round(wall, 2), "floor_s": floor,
            "stitch_s": round(stitch, 2), "bound_s": round(bound, 2),
            "wall_over_floor_plus_stitch": round(wall / (floor + stitch), 3),
            "within_bound": wall <= bound, "synthesis_only_s": round(client_only, 2),
            "tasks_created": service["tasks_created"],
            "max_concurrent_tasks": service["max_concurrent_tasks"],
            "rejected_concurrency": service["rejected_concurrency"],
            "credits_charged": service["credits_charged"], "plan_credits": plan["credits"],
            "polls": result.get("polls"), "concurrency_window": result.get("concurrency_window")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--audio", choices=["speech", "tone"], default="speech")
    args = parser.parse_args()
    print(f"{TASKS} tasks, latency {LATENCY}s, concurrency limit {LIMIT}: "
          f"floor {TASKS * LATENCY / LIMIT:.1f}s")
    for jobs in args.jobs:
        print(json.dumps(one_run(jobs, args.audio)))


if __name__ == "__main__":
    main()
