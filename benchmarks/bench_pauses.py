"""Pauses where the text wants them, and read-along cues that match the audio.

Builds one long, dialogue-heavy chapter (every paragraph a change of speaker,
headings and scene breaks between scenes) offline and, with --remote,
through the emulator, then measures the finished MP3 against its manifest:

- pauses of at least 0.55 s, against the chapter's paragraph, heading and
  scene boundaries (target 95-105 %);
- the median pause at a sentence joint against the median at a paragraph
  joint (sentence pauses must stay shorter);
- WebVTT: the share of gaps between cues that lie in silence, and of cues
  that hold speech (target 97 % each);
- boundaries the aligner left as the voice made them.

    python benchmarks/bench_pauses.py [--paragraphs N] [--remote]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.audio import decode
from pipeline.timing import block_levels  # noqa: E402

RATE = 16000
BLOCK_MS = 10
SILENT_DB = -55.0  # the room tone sits near -70 dB, speech well above -50
PAUSE_MS = 550

_NAMES = ["Marta", "Tobin", "Okafor", "the keeper", "her brother", "the deckhand"]
_LINES = ["Is the lamp lit?", "Not yet. The wick wants trimming.", "Then trim it, and quickly.",
          "You never could leave a thing alone.", "Hold the light steady. Count the flashes.",
          "It's only the sea. It always sounds like that in March.",
          "Tell Mr. Tobin I'm fine. Tell him twice if he asks.",
          "We'll wait for the morning. There's nothing else to do.",
          "Did you hear that? Something struck the rocks.", "No. Nothing. Go back to sleep."]
_NARRATION = ["The wind came round to the north.", "She set the kettle on the stove.",
              "Rain ran down the glass in long grey threads.", "He did not answer at once.",
              "Below them the tide turned, slow and heavy."]


def dialogue_chapter(paragraphs: int, seed: int = 7) -> str:
    """Markdown: alternating speakers, narration between, a heading or scene break now and then."""
    rng = random.Random(seed)
    out = ["# The Long Night", ""]
    for n in range(paragraphs):
        if n and n % 40 == 0:
            out += [f"## Part {n // 40 + 1}", ""]
        elif n and n % 17 == 0:
            out += ["* * *", ""]
        speech = rng.choice(_LINES)
        who = rng.choice(_NAMES)
        if rng.random() < 0.3:
            out += [f"{rng.choice(_NARRATION)} “{speech}” said {who}.", ""]
        else:
            out += [f"“{speech}”", ""]
    return "\n".join(out)


def levels(mp3: Path) -> list[float]:
    """dBFS per 10 ms block of a finished file, measured as the stitcher measures."""
    return block_levels(decode(mp3.read_bytes(), "mp3", RATE))


def silent_runs(lv: list[float]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, db in enumerate(lv + [0.0]):
        if db < SILENT_DB and start is None:
            start = i
        elif db >= SILENT_DB and start is not None:
            runs.append((start * BLOCK_MS, i * BLOCK_MS))
            start = None
    return runs


def measure(mp3: Path, entry: dict) -> dict:
    lv = levels(mp3)
    sentences = entry["sentences"]
    runs = silent_runs(lv)
    inner = [r for r in runs if r[0] > 0 and r[1] < len(lv) * BLOCK_MS]  # not head or tail
    long_pauses = sum(1 for a, b in inner if b - a >= PAUSE_MS)
    boundaries = sum(1 for a, b in zip(sentences, sentences[1:]) if a["block"] != b["block"])

    def gap_ms(a: dict, b: dict) -> int:
        return b["start_ms"] - a["end_ms"]

    sentence_gaps = [gap_ms(a, b) for a, b in zip(sentences, sentences[1:])
                     if a["block"] == b["block"]]
    paragraph_gaps = [gap_ms(a, b) for a, b in zip(sentences, sentences[1:])
                      if a["block"] != b["block"]]

    def quiet(a: int, b: int) -> bool:
        blocks = lv[(a + 20) // BLOCK_MS:max((a + 20) // BLOCK_MS, (b - 20) // BLOCK_MS)]
        return all(db < SILENT_DB for db in blocks)

    def voiced(a: int, b: int) -> bool:
        return any(db > -40 for db in lv[a // BLOCK_MS:b // BLOCK_MS])

    gaps = [(a["end_ms"], b["start_ms"]) for a, b in zip(sentences, sentences[1:])]
    return {
        "duration_min": round(len(lv) * BLOCK_MS / 60000, 1),
        "sentences": len(sentences),
        "paragraph_heading_scene_boundaries": boundaries,
        "pauses_over_550ms": long_pauses,
        "pause_ratio": round(long_pauses / max(1, boundaries), 3),
        "median_sentence_gap_ms": statistics.median(sentence_gaps) if sentence_gaps else None,
        "median_paragraph_gap_ms": statistics.median(paragraph_gaps) if paragraph_gaps else None,
        "cue_gaps_in_silence": round(sum(quiet(a, b) for a, b in gaps) / max(1, len(gaps)), 4),
        "cues_with_speech": round(sum(voiced(s["start_ms"], s["end_ms"]) for s in sentences)
                                  / max(1, len(sentences)), 4),
        "boundaries_unaligned": entry.get("boundaries_unaligned"),
    }


def build(folder: Path, env: dict, args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", "build", "-q", *args], cwd=folder, env=env,
                   check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--paragraphs", type=int, default=400)
    parser.add_argument("--remote", action="store_true", help="also build through the emulator")
    opts = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "ch").mkdir()
        (folder / "ch" / "01.md").write_text(dialogue_chapter(opts.paragraphs), encoding="utf-8")
        (folder / "audiobook.yml").write_text(
            "title: Pauses\noutput: {formats: [mp3, vtt], loudness: none}\nchapters: [ch/01.md]\n")
        env = {**os.environ, "PYTHONPATH": str(root), "AUDIOBOOK_CACHE_DIR": str(folder / "cache")}
        runs = [("local", [])]
        if opts.remote:
            runs.append(("emulator", ["--backend", "audiocleaner", "--jobs", "8"]))
        for name, extra in runs:
            emu = None
            if name == "emulator":
                emu = subprocess.Popen([sys.executable, "-m", "pipeline", "emulator", "--port",
                                        "18777", "--latency", "0.2"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(2)
                env = {**env, "AUDIOCLEANER_BASE_URL": "http://127.0.0.1:18777",
                       "AUDIOCLEANER_API_KEY": "bench"}
            try:
                wall = build(folder, env, [*extra, "--force"])
            finally:
                if emu:
                    emu.terminate()
            manifest = json.loads((folder / "build" / "manifest.json").read_text())
            entry = manifest["chapters"][0]
            print(json.dumps({"backend": name, "build_s": round(wall, 1),
                              **measure(folder / "build" / entry["file"], entry)}))


if __name__ == "__main__":
    main()
