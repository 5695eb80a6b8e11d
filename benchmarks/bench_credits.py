"""Credits: our segmenter against the lower bound and the naive packings.

    python benchmarks/bench_credits.py [--kind novel|dialogue|poetry] [--chapters 12]
                                       [--chars 48000] [--max-chars 1000]

Writes a synthetic book (benchmarks/textgen.py: a novel, a dialogue-heavy
book of curly-quoted speech, or poetry with hundreds of short headings) into a temporary project and
plans it through the real pipeline (Markdown source, lexicon, voices,
segmenter). Prints:
- credits of our plan vs the lower bound, sum over chapters of
  ceil(characters / 100), and vs one request per sentence and per paragraph;
- billable characters as a share of the prose;
- credits still to spend after a one-sentence edit in the middle of a
  ~50k-character chapter, and after inserting a new paragraph, with the
  first plan's segments counted as cached (as they are after a build).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import textgen  # noqa: E402

from pipeline.config import load_config  # noqa: E402
from pipeline.plan import make_plan  # noqa: E402
from pipeline.segment import credits_for, split_sentences  # noqa: E402
from pipeline.sources.markdown import blocks_from_markdown  # noqa: E402


class KeysOnly:
    """Stands in for the cache where only its key set matters (no audio is made)."""

    def __init__(self, keys=()):
        self._keys = set(keys)
        # make_plan keeps its per-chapter plan memo in the cache folder.
        self.directory = Path(tempfile.mkdtemp(prefix="bench-credits-"))

    def keys(self) -> set[str]:
        return set(self._keys)


def write_project(folder: Path, chapters: list[str], max_chars: int) -> Path:
    lines = ["title: Bench", "output: {formats: [mp3], loudness: none}",
             f"segments: {{max_chars: {max_chars}}}", "chapters:"]
    for i, text in enumerate(chapters, start=1):
        (folder / f"{i:02d}.md").write_text(text, encoding="utf-8")
        lines.append(f"  - source: {i:02d}.md")
    (folder / "audiobook.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "audiobook.yml"


def naive_credits(chapters: list[str], max_chars: int) -> tuple[int, int, int]:
    """(prose characters, credits one request per sentence, per paragraph)."""
    prose = per_sentence = per_paragraph = 0
    for text in chapters:
        for block in blocks_from_markdown(text):
            if not block.text:
                continue
            prose += len(block.text)
            sentences = [s for s, _ in split_sentences(block.text)]
            per_sentence += sum(credits_for(len(s)) for s in sentences)
            # A paragraph over the limit is sent as sentence-packed pieces.
            length = 0
            for s in sentences:
                if length and length + 1 + len(s) > max_chars:
                    per_paragraph += credits_for(length)
                    length = 0
                length += len(s) + (1 if length else 0)
            per_paragraph += credits_for(length)
    return prose, per_sentence, per_paragraph


def plan_of(config: Path, cached=()):
    return make_plan(load_config(config), KeysOnly(cached))


def edit_middle_sentence(text: str) -> str:
    paragraphs = text.split("\n\n")
    middle = len(paragraphs) // 2
    while paragraphs[middle].startswith(("#", "*")) or len(split_sentences(paragraphs[middle])) < 2:
        middle += 1
    sentences = [s for s, _ in split_sentences(paragraphs[middle])]
    sentences[len(sentences) // 2] = "The keeper changed this one sentence, and only this one."
    paragraphs[middle] = " ".join(sentences)
    return "\n\n".join(paragraphs)


def insert_paragraph(text: str) -> str:
    paragraphs = text.split("\n\n")
    at = len(paragraphs) // 3
    paragraphs.insert(at, "A new paragraph arrives in the draft. It has two sentences of its own.")
    return "\n\n".join(paragraphs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=sorted(textgen.KINDS), default="novel")
    ap.add_argument("--chapters", type=int, default=12)
    ap.add_argument("--chars", type=int, default=48000)
    ap.add_argument("--max-chars", type=int, default=1000)
    args = ap.parse_args()
    chapters = textgen.book_of(args.kind, args.chapters, args.chars)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AUDIOBOOK_CACHE_DIR"] = str(Path(tmp) / "cache")
        config = write_project(Path(tmp), chapters, args.max_chars)
        t0 = time.perf_counter()
        plan = plan_of(config)
        seconds = time.perf_counter() - t0
        totals = plan.totals()
        bound = sum(credits_for(c.characters) for c in plan.chapters)
        prose, per_sentence, per_paragraph = naive_credits(chapters, args.max_chars)
        longest = max(len(s.text) for c in plan.chapters for s in c.segments)
        print(f"book: {args.kind}, {args.chapters} chapters, {prose} prose characters, max_chars {args.max_chars}")
        print(f"plan time: {seconds:.2f} s")
        print(f"billable characters: {totals['characters']} = {totals['characters'] / prose:.2%} of prose")
        print(f"longest request: {longest} characters")
        print(f"lower bound:            {bound:6d} credits")
        print(f"ours:                   {totals['credits']:6d} credits ({totals['credits'] / bound:.4f}x)")
        print(f"one per paragraph:      {per_paragraph:6d} credits ({per_paragraph / bound:.4f}x)")
        print(f"one per sentence:       {per_sentence:6d} credits ({per_sentence / bound:.4f}x)")

        # Edit locality on the middle chapter, with the first plan as the cache.
        cached = {s.key for c in plan.chapters for s in c.segments}
        middle = args.chapters // 2
        source = Path(tmp) / f"{middle + 1:02d}.md"
        original = source.read_text(encoding="utf-8")
        source.write_text(edit_middle_sentence(original), encoding="utf-8")
        edited = plan_of(config, cached)
        others_same = all(a.segments == b.segments for i, (a, b) in
                          enumerate(zip(plan.chapters, edited.chapters)) if i != middle)
        print(f"one-sentence edit in a {plan.chapters[middle].characters}-character chapter: "
              f"{edited.totals()['credits_to_spend']} credits to spend; "
              f"other chapters unchanged: {others_same}")
        cached |= {s.key for c in edited.chapters for s in c.segments}
        source.write_text(insert_paragraph(source.read_text(encoding="utf-8")), encoding="utf-8")
        inserted = plan_of(config, cached)
        print(f"then a new paragraph: {inserted.totals()['credits_to_spend']} credits to spend")


if __name__ == "__main__":
    main()
