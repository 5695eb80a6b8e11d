"""How much of the acceptance list the spoken-form stage reads right, and how fast.

    python benchmarks/bench_spoken.py [--cases benchmarks/spoken_cases.tsv] [--espeak] [--mb 1]

1. Score: each case of the TSV (category, input, expected) is run through
   `spoken_form` (category "heading" with heading=True) and compared with the
   expected text, ignoring letter case and runs of spaces. Prints the score
   per category and overall, every miss, and whether every "keep" case (the
   pronoun I, words spelled with numeral letters) came back unchanged.
2. --espeak: the same comparison by ear. Each input, as written and after
   `spoken_form`, goes through eSpeak NG's own phoneme output
   (espeak_TextToPhonemes) and is compared with the phonemes of the expected
   text, so spelling differences eSpeak would not hear do not count, and the
   "as written" column shows what eSpeak alone gets right.
3. Speed: seconds for `--mb` megabytes of prose (the benchmarks' synthetic
   novel) and of the case inputs repeated (a number in nearly every line).
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import textgen  # noqa: E402

from pipeline.spoken import spoken_form  # noqa: E402

HERE = Path(__file__).resolve().parent


def load_cases(path: Path) -> list[tuple[str, str, str]]:
    cases = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise SystemExit(f"{path}:{n}: expected 3 tab-separated columns, got {len(parts)}")
        cases.append((parts[0], parts[1], parts[2]))
    return cases


def same(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def spoken(category: str, text: str) -> str:
    return spoken_form(text, "en", heading=category == "heading")


class Phonemes:
    """eSpeak NG's phoneme mnemonics for a text, clause by clause."""

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        # 0x02 = AUDIO_OUTPUT_SYNCHRONOUS; nothing is spoken, only translated.
        if lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0) <= 0:
            raise SystemExit("eSpeak NG failed to initialise")
        lib.espeak_SetVoiceByName(b"en")
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int,
                                              ctypes.c_int]
        self.lib = lib

    def __call__(self, text: str) -> str:
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        ptr = ctypes.c_void_p(ctypes.addressof(buf))
        out = []
        while ptr.value:
            clause = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), 1, 0)  # UTF-8, mnemonics
            out.append((clause or b"").decode("utf-8", "replace").strip())
        # Case and clause breaks do not change what is heard; stress marks on
        # neighbouring words can differ with punctuation, so compare without them.
        return " ".join(" ".join(out).replace("'", "").replace(",", "").split())


def score(cases: list[tuple[str, str, str]], ear: Phonemes | None) -> None:
    right: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    heard: dict[str, int] = defaultdict(int)
    heard_raw: dict[str, int] = defaultdict(int)
    misses = []
    for category, text, expected in cases:
        out = spoken(category, text)
        total[category] += 1
        ok = out == text if category == "keep" else same(out, expected)
        right[category] += ok
        if not ok:
            misses.append((category, text, expected, out))
        if ear is not None:
            target = ear(expected)
            heard[category] += ear(out) == target
            heard_raw[category] += ear(text) == target
    header = f"{'category':<14}{'cases':>6}{'right':>7}{'score':>8}"
    if ear is not None:
        header += f"{'eSpeak hears right':>20}{'as written':>12}"
    print(header)
    for category in total:
        line = (f"{category:<14}{total[category]:>6}{right[category]:>7}"
                f"{right[category] / total[category]:>8.0%}")
        if ear is not None:
            line += f"{heard[category]:>20}{heard_raw[category]:>12}"
        print(line)
    spoken_total = sum(v for k, v in total.items() if k != "keep")
    spoken_right = sum(v for k, v in right.items() if k != "keep")
    print(f"\nspoken-form cases: {spoken_right}/{spoken_total} = {spoken_right / spoken_total:.1%}")
    print(f"keep cases unchanged: {right['keep']}/{total['keep']}")
    if ear is not None:
        n = sum(total.values())
        print(f"eSpeak hears the expected words: {sum(heard.values())}/{n} with spoken_form, "
              f"{sum(heard_raw.values())}/{n} as written")
    for category, text, expected, out in misses:
        print(f"  miss [{category}] {text!r}\n       want {expected!r}\n       got  {out!r}")


def timing(cases: list[tuple[str, str, str]], megabytes: float) -> None:
    size = int(megabytes * 1_000_000)
    prose = "\n\n".join(textgen.book(1, size))[:size]
    dense = ("\n".join(text for _, text, _ in cases) + "\n")
    dense = (dense * (size // len(dense) + 1))[:size]
    for name, text in (("synthetic novel", prose), ("case inputs repeated", dense)):
        spoken_form(text[:10_000])  # warm the word caches as a build would
        # CPU time as well as wall time: on a shared machine the wall clock
        # mostly measures the neighbours.
        t0, c0 = time.perf_counter(), time.process_time()
        out = spoken_form(text)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{name}: {len(text) / 1e6:.2f} MB in {seconds:.3f} s wall, {cpu:.3f} s CPU "
              f"({len(out) - len(text):+,} characters)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=Path, default=HERE / "spoken_cases.tsv")
    ap.add_argument("--espeak", action="store_true", help="also compare eSpeak's phonemes")
    ap.add_argument("--mb", type=float, default=1.0, help="megabytes of text to time")
    args = ap.parse_args()
    cases = load_cases(args.cases)
    score(cases, Phonemes() if args.espeak else None)
    print()
    timing(cases, args.mb)


if __name__ == "__main__":
    main()
