"""How close the aligner puts each joint of a packed request to where the voice really has it.

The emulator speaks with the offline engine and knows the true sentence
starts of every task's audio (`GET /_emulator/tasks/ID/boundaries`). This
sends packed dialogue requests (several paragraphs each, as a build packs
them), runs the aligner on the served MP3 with no engine marks (as for the
real service), and compares each joint with the truth:

- error: distance from the true start of the next sentence to the pause the
  aligner cut in (0 when the true start lies inside that pause);
- onset error: distance from the true start to the end of that pause;
- unaligned: joints left as the voice made them;
- cut in speech: cuts whose pause is not silent (by construction 0);
- baseline: a character-proportional guess of each sentence start (its share
  of the characters placed on the audio), against the same truth.

    python benchmarks/bench_align.py [--requests N]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.audio import decode  # noqa: E402
from pipeline.segment import atoms_of_paragraph, segment_parts, segment_text  # noqa: E402
from pipeline.timing import SILENCE_DBFS, block_levels, lay_out  # noqa: E402
from pipeline.tts.emulator import CREATE_PATH, GET_PATH  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pauses import dialogue_chapter  # noqa: E402

PAUSES = {"sentence": 350, "line": 400, "paragraph": 600, "heading": 1200, "scene": 1500}


def requests(count: int, seed: int) -> list[str]:
    """Packed texts of 4-12 dialogue paragraphs, as the segmenter makes them."""
    paragraphs = [p for p in dialogue_chapter(count * 12, seed).split("\n\n")
                  if p and not p.startswith(("#", "*"))]
    rng = random.Random(seed)
    out, i = [], 0
    while len(out) < count and i < len(paragraphs):
        n = rng.randint(4, 12)
        out.append(paragraphs[i:i + n])
        i += n
    return out


def run(url: str, paragraphs: list[str], client: httpx.Client) -> list[dict]:
    atoms = tuple(a for b, text in enumerate(paragraphs)
                  for a in atoms_of_paragraph(text, "en", 1000, block=b))
    text = segment_text(atoms, 0, len(atoms))
    parts = segment_parts(atoms, 0, len(atoms))
    headers = {"api-key": "bench"}
    body = {"text": text, "voice_id": 2072, "emotion": 0, "speed": 1, "language": "en"}
    job = client.post(url + CREATE_PATH, json=body, headers=headers).json()["data"]["job_id"]
    while True:
        task = client.post(url + GET_PATH, json={"global_id": job}, headers=headers).json()["data"]
        if task["status"] == "success":
            break
        time.sleep(0.05)
    data = client.get(task["output"]).content
    truth = client.get(f"{url}/_emulator/tasks/{job}/boundaries").json()["marks"]
    audio = decode(data, "mp3", 44100)
    layout = lay_out(audio, text, parts, lambda k: PAUSES.get(k, 120))
    levels = block_levels(audio)
    rows = []
    for k, pause in layout.joints:
        offset = parts[k + 1].start
        mark = min(truth, key=lambda m: abs(m[0] - offset))
        true_ms = mark[1] if abs(mark[0] - offset) <= 3 else None
        if pause is None or true_ms is None:
            rows.append({"unaligned": pause is None, "no_truth": true_ms is None})
            continue
        guess = len(audio) * offset / len(text)
        inside = pause.start_ms <= true_ms <= pause.end_ms
        error = 0 if inside else min(abs(true_ms - pause.start_ms), abs(true_ms - pause.end_ms))
        loud = any(db >= SILENCE_DBFS for db in levels[pause.start_ms // 10:pause.end_ms // 10])
        rows.append({"error": error, "onset": abs(true_ms - pause.end_ms), "cut_in_speech": loud,
                     "proportional": round(abs(true_ms - guess))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--seed", type=int, default=3)
    opts = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    emu = subprocess.Popen([sys.executable, "-m", "pipeline", "emulator", "--port", "0",
                            "--latency", "0.05"], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        url = emu.stdout.readline().split()[-1]
        rows: list[dict] = []
        with httpx.Client(timeout=60) as client:
            for paragraphs in requests(opts.requests, opts.seed):
                rows += run(url, paragraphs, client)
    finally:
        emu.terminate()
    aligned = [r for r in rows if "error" in r]
    errors = sorted(r["error"] for r in aligned)
    onsets = sorted(r["onset"] for r in aligned)
    guesses = sorted(r["proportional"] for r in aligned)

    def p99(values: list[int]) -> int:
        return values[min(len(values) - 1, int(0.99 * len(values)))] if values else 0

    print(json.dumps({
        "joints": len(rows), "aligned": len(aligned),
        "unaligned": sum(1 for r in rows if r.get("unaligned")),
        "no_truth_mark": sum(1 for r in rows if r.get("no_truth")),
        "error_ms_median": statistics.median(errors) if errors else None,
        "error_ms_p99": p99(errors),
        "within_60ms": round(sum(e <= 60 for e in errors) / max(1, len(errors)), 4),
        "onset_ms_median": statistics.median(onsets) if onsets else None,
        "onset_ms_p99": p99(onsets),
        "cuts_in_speech": sum(1 for r in aligned if r["cut_in_speech"]),
        "proportional_guess_ms_median": statistics.median(guesses) if guesses else None,
        "proportional_guess_ms_p99": p99(guesses),
    }, indent=2))


if __name__ == "__main__":
    main()
