"""`audiobook review`: a static proof-listening page that works from file://.

Per chapter: its title, a loudness strip (RMS per second of the chapter file,
drawn as inline SVG), its audio, and its text with every sentence a button
that plays the chapter from that sentence. With an older manifest, every
sentence whose audio was re-made (its segment key is new) carries the CSS
class `changed`, and a summary says how many changed and what they cost.

Everything comes from the build's manifest and files; nothing is synthesized.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline import files
from pipeline.errors import InputError, Problem

STRIP_SECONDS = 1  # one bar of the loudness strip
STRIP_RATE = 8000  # decode rate for the strip: loudness needs no more
FLOOR_DB = -70.0


@dataclass(frozen=True)
class Changes:
    sentences: int
    segments: int
    credits: int


def read_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(Problem(str(path), None, None,
                                 "no such manifest; run `audiobook build` first")) from None
    except (OSError, ValueError) as exc:
        raise InputError(Problem(str(path), None, None, f"is not a build manifest: {exc}")) from None
    if not isinstance(data, dict) or not isinstance(data.get("chapters"), list):
        raise InputError(Problem(str(path), None, None, "is not a build manifest (no chapters)"))
    return data


def changed_keys(manifest: dict, since: dict | None) -> set[str]:
    """Segment keys of `manifest` that `since` did not have: audio made after it."""
    if since is None:
        return set()
    return _segment_keys(manifest) - _segment_keys(since)


def _segment_keys(manifest: dict) -> set[str]:
    return {s["key"] for c in manifest.get("chapters", []) if isinstance(c, dict)
            for s in c.get("segments", []) if isinstance(s, dict) and "key" in s}


def summarize(manifest: dict, changed: set[str]) -> Changes:
    credits = {s["key"]: int(s.get("credits", 0)) for c in manifest["chapters"]
               for s in c.get("segments", []) if s.get("key") in changed}
    sentences = sum(1 for c in manifest["chapters"] for s in c.get("sentences", [])
                    if s.get("segment") in changed)
    return Changes(sentences, len(credits), sum(credits.values()))


def write_review(manifest_path: Path, out_dir: Path, since_path: Path | None = None) -> Path:
    """Write out_dir/index.html for the build whose manifest is manifest_path."""
    manifest = read_manifest(manifest_path)
    since = read_manifest(since_path) if since_path else None
    changed = changed_keys(manifest, since)
    build_dir = manifest_path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    chapters = [_chapter_html(c, build_dir, out_dir, changed) for c in manifest["chapters"]]
    summary = _summary_html(summarize(manifest, changed)) if since is not None else ""
    page = _PAGE.format(title=html.escape(str(manifest.get("title", "Audiobook"))),
                        summary=summary, chapters="\n".join(chapters))
    target = out_dir / "index.html"
    files.write_atomic(target, page.encode())
    return target


def _chapter_html(chapter: dict, build_dir: Path, out_dir: Path, changed: set[str]) -> str:
    title = html.escape(str(chapter.get("title", "")))
    audio = build_dir / str(chapter.get("file", ""))
    src = Path(os.path.relpath(audio, out_dir)).as_posix()
    strip = _strip_svg(loudness_strip(audio)) if audio.is_file() else ""
    player = (f'<audio controls preload="metadata" src="{html.escape(src)}"></audio>'
              if audio.is_file() else '<p class="missing">no audio file</p>')
    blocks: dict[int, list[str]] = {}
    kinds: dict[int, str] = {}
    for s in chapter.get("sentences", []):
        cls = "s changed" if s.get("segment") in changed else "s"
        blocks.setdefault(int(s.get("block", 0)), []).append(
            f'<span class="{cls}" data-start="{int(s["start_ms"]) / 1000:.3f}" tabindex="0">'
            f'{html.escape(str(s["text"]))}</span>')
        kinds.setdefault(int(s.get("block", 0)), str(s.get("kind", "paragraph")))
    text = "\n".join(
        f'<{"h3" if kinds[b] == "heading" else "p"}>{" ".join(spans)}'
        f'</{"h3" if kinds[b] == "heading" else "p"}>' for b, spans in sorted(blocks.items()))
    return (f'<section class="chapter" id="chapter-{int(chapter.get("index", 0))}">'
            f"<h2>{title}</h2>{strip}{player}<div class=\"text\">{text}</div></section>")


def loudness_strip(path: Path) -> list[float]:
    """RMS in dB per STRIP_SECONDS of an audio file, decoded by ffmpeg at a low rate."""
    import audioop

    from pipeline.audio import db, run_ffmpeg

    raw = run_ffmpeg(["-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(STRIP_RATE),
                      "-f", "s16le", "-"])
    step = STRIP_RATE * STRIP_SECONDS * 2
    return [round(max(FLOOR_DB, db(audioop.rms(raw[i:i + step], 2))), 1)
            for i in range(0, len(raw) - 1, step)]


def _strip_svg(levels: list[float]) -> str:
    if not levels:
        return ""
    bars = "".join(
        f'<rect x="{i}" y="{-(db - FLOOR_DB):.1f}" width="1" height="{db - FLOOR_DB:.1f}"/>'
        for i, db in enumerate(levels))
    return (f'<svg class="strip" viewBox="0 {FLOOR_DB:.0f} {len(levels)} {-FLOOR_DB:.0f}" '
            f'preserveAspectRatio="none" role="img" aria-label="loudness per second">{bars}</svg>')


def _summary_html(changes: Changes) -> str:
    return (f'<p class="summary"><strong>{changes.sentences}</strong> sentence(s) changed, '
            f"re-made in {changes.segments} segment(s) for {changes.credits} credit(s).</p>")


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Review: {title}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 50em; margin: 2em auto; padding: 0 1em; }}
.strip {{ width: 100%; height: 40px; background: #f4f4f4; fill: #4a7; display: block; }}
audio {{ width: 100%; margin: .5em 0; }}
.s {{ cursor: pointer; }} .s:hover {{ text-decoration: underline; }}
.changed {{ background: #ffe08a; }}
.summary {{ padding: .5em; background: #fff3cd; }}
</style></head>
<body>
<h1>{title}</h1>
{summary}
{chapters}
<script>
document.querySelectorAll('audio').forEach(function (a) {{
  a.addEventListener('loadedmetadata', function () {{ a.dataset.duration = a.duration.toFixed(2); }});
}});
document.querySelectorAll('.s').forEach(function (s) {{
  s.addEventListener('click', function () {{
    var audio = s.closest('.chapter').querySelector('audio');
    if (!audio) return;
    audio.currentTime = parseFloat(s.dataset.start);
    audio.play();
  }});
}});
</script>
</body></html>
"""
