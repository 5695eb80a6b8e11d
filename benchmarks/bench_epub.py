"""How long the EPUB source takes on a 400-page book, and on the hostile files.

Run: python benchmarks/bench_epub.py [--pages 400] [--bomb-gib 1]
Each case runs in a fresh process (`--load PATH`), which prints its seconds
and its own peak memory (max RSS). Never run by pytest.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.config import ChapterEntry  # noqa: E402
from pipeline.errors import InputError  # noqa: E402
from pipeline.sources.epub import load_epub  # noqa: E402
from tests import epub_factory as f  # noqa: E402

WORDS = ("tide lamp keeper harbour rope gull ledger stair salt window storm ferry anchor "
         "quiet morning north signal letter captain shore").split()
PAGE_CHARS = 2000  # a printed page of prose


def paragraph(rng: random.Random, note: int) -> str:
    sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 20))).capitalize() + "."
                 for _ in range(rng.randint(2, 6))]
    mark = f'<a epub:type="noteref" href="notes.xhtml#n{note}">{note}</a>' if note % 7 == 0 else ""
    return f"<p>{' '.join(sentences)}{mark}</p>"


def big_book(path: Path, pages: int) -> tuple[Path, int]:
    """An EPUB 3 novel of `pages` pages in chapters of ten, with page breaks and notes."""
    rng = random.Random(1)
    docs = [f.Doc("title.xhtml", "<h1>Big Book</h1>", toc="Title Page", body_type="titlepage")]
    chars, page, note = 0, 0, 0
    for n in range(1, pages // 10 + 1):
        parts = [f"<h2>Chapter {n}</h2>"]
        while chars < n * 10 * PAGE_CHARS:
            note += 1
            parts.append(paragraph(rng, note))
            chars += len(parts[-1])
            if chars // PAGE_CHARS > page:
                page += 1
                parts.append(f'<span epub:type="pagebreak" id="p{page}">{page}</span>')
        docs.append(f.Doc(f"ch{n:03}.xhtml", "\n".join(parts), toc=f"Chapter {n}"))
    return f.write_epub(path, docs), chars


def load_and_report(path: Path) -> None:
    """Load one EPUB in this process and print time, peak RSS and the outcome."""
    entry = ChapterEntry(source=path, display=path.name, index=0, line=None)
    started = time.perf_counter()
    try:
        outcome = f"{len(load_epub(path, path.name, entry))} chapters"
    except InputError as exc:
        outcome = f"InputError: {exc}"
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{seconds:7.2f} s   peak RSS {peak_mib:5.0f} MiB   {outcome}")


def run_case(label: str, path: Path) -> None:
    result = subprocess.run([sys.executable, __file__, "--load", str(path)],
                            capture_output=True, text=True, timeout=120)
    print(f"{label:<30} {(result.stdout or result.stderr).strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=400)
    parser.add_argument("--bomb-gib", type=float, default=1.0)
    parser.add_argument("--load", type=Path, help="(internal) load one EPUB and report")
    args = parser.parse_args()
    if args.load:
        load_and_report(args.load)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        book, chars = big_book(folder / "big.epub", args.pages)
        print(f"{args.pages}-page book: {chars / 1e6:.1f} MB of XHTML, "
              f"{book.stat().st_size / 1e6:.1f} MB zipped")
        run_case(f"{args.pages} pages", book)
        bomb_size = int(args.bomb_gib * 2**30)
        cases = {
            "entity bomb": f.entity_bomb(folder / "entity.epub"),
            f"zip bomb {args.bomb_gib:g} GiB": f.zip_bomb(folder / "zip.epub", bomb_size),
            f"zip bomb {args.bomb_gib:g} GiB, lying": f.zip_bomb(folder / "lie.epub", bomb_size,
                                                                  lie=True),
            "truncated": f.truncated(folder / "trunc.epub"),
            "not a zip": f.not_a_zip(folder / "text.epub"),
            "no container": f.container_less(folder / "nocontainer.epub"),
        }
        for label, path in cases.items():
            run_case(label, path)


if __name__ == "__main__":
    main()
