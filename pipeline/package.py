"""Outputs: chapter files, tags, manifest and playlist, written atomically.

A chapter is re-encoded only when its output key (every input of its audio
and tags) changed; a build with nothing changed writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import __version__, audio
from pipeline.cache import SegmentCache
from pipeline.config import Config
from pipeline.errors import InputError

if TYPE_CHECKING:
    from pipeline.build import BuildResult, ChapterPlan, Plan, Progress

OUTPUT_FORMAT = 1  # bump when the stitching or encoding changes


def write_outputs(plan: Plan, cache: SegmentCache, jobs: int, force: bool, progress: Progress,
                  result: BuildResult) -> None:
    cfg = plan.cfg
    out_dir = cfg.output.dir
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "manifest.json"
    previous = _read_manifest(manifest_path)
    width = max(2, len(str(len(plan.chapters))))
    entries: dict[int, dict] = {e["index"]: e for e in previous.get("chapters", [])
                                if isinstance(e, dict) and "index" in e}
    todo = []
    for i in plan.selected:
        cp = plan.chapters[i]
        name = f"{cp.index:0{width}d}-{cp.slug}.mp3"
        key = chapter_output_key(plan, cp)
        old = entries.get(cp.index)
        if (not force and "mp3" in cfg.output.formats and old and old.get("output_key") == key
                and old.get("file") == name and (out_dir / name).exists()):
            result.chapters_unchanged += 1
            continue
        todo.append((cp, name, key))
    progress.start("encoding chapters", len(todo))
    workers = max(1, min(jobs, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for cp, name, key, duration in pool.map(lambda t: _render_chapter(plan, cache, *t), todo):
            entries[cp.index] = _manifest_entry(cp, name, key, duration)
            result.chapters_written += 1
            progress.advance()
    progress.finish()
    # Chapters that no longer exist leave the manifest.
    entries = {i: e for i, e in entries.items() if i <= len(plan.chapters)}
    manifest = _manifest(plan, entries)
    audio.write_atomic(manifest_path, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode())
    files = [entries[i]["file"] for i in sorted(entries)]
    audio.write_atomic(out_dir / "playlist.m3u", _playlist(cfg, entries).encode())
    result.outputs = [str(out_dir / f) for f in files] + [str(manifest_path), str(out_dir / "playlist.m3u")]


def chapter_output_key(plan: Plan, cp: ChapterPlan) -> str:
    cfg = plan.cfg
    spec = {
        "format": OUTPUT_FORMAT,
        "segments": [[s.key, s.pause_after] for s in cp.segments],
        "pauses": cfg.pauses.__dict__,
        "output": [cfg.output.bitrate, cfg.output.sample_rate, str(cfg.output.loudness)],
        "tags": chapter_tags(plan, cp),
        "ffmpeg": audio.ffmpeg_version(),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def chapter_tags(plan: Plan, cp: ChapterPlan) -> dict[str, str]:
    cfg = plan.cfg
    return {
        "title": cp.title,
        "artist": cfg.author,
        "album_artist": cfg.author,
        "album": cfg.title,
        "track": f"{cp.index}/{len(plan.chapters)}",
        "date": cfg.year or "",
        "genre": "Audiobook",
    }


def _render_chapter(plan: Plan, cache: SegmentCache, cp: ChapterPlan, name: str, key: str):
    cfg = plan.cfg
    rate = cfg.output.sample_rate
    pauses = cfg.pauses

    def parts():
        yield pauses.chapter_head_ms
        for k, seg in enumerate(cp.segments):
            stored = cache.get(seg.key)
            if stored is None:  # pruned by another process mid-build
                raise InputError(f"segment {seg.key[:12]} vanished from the cache; build again")
            yield audio.trim(audio.decode(stored.data, stored.format, rate))
            last = k == len(cp.segments) - 1
            yield pauses.chapter_tail_ms if last else pauses.ms(seg.pause_after)

    stitched = audio.stitch(parts(), rate, cfg.output.dir)
    try:
        audio.encode_mp3(stitched, cfg.output.dir / name, cfg.output.bitrate, chapter_tags(plan, cp))
    finally:
        stitched.path.unlink(missing_ok=True)
    return cp, name, key, stitched.duration_ms


def _manifest_entry(cp: ChapterPlan, name: str, key: str, duration_ms: int) -> dict:
    return {
        "index": cp.index, "title": cp.title, "source": cp.source, "file": name,
        "duration_ms": duration_ms, "characters": cp.characters, "credits": cp.credits,
        "output_key": key,
        "segments": [{"key": s.key, "characters": s.characters, "credits": s.credits}
                     for s in cp.segments],
    }


def _manifest(plan: Plan, entries: dict[int, dict]) -> dict:
    chapters = [entries[i] for i in sorted(entries)]
    return {
        "generator": f"audiobook-pipeline {__version__}",
        "title": plan.cfg.title,
        "author": plan.cfg.author,
        "backend": plan.backend,
        "chapters": chapters,
        "totals": {
            "chapters": len(chapters),
            "duration_ms": sum(c["duration_ms"] for c in chapters),
            "characters": sum(c["characters"] for c in chapters),
            "credits": sum(c["credits"] for c in chapters),
        },
    }


def _read_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _playlist(cfg: Config, entries: dict[int, dict]) -> str:
    lines = ["#EXTM3U", f"#PLAYLIST:{cfg.title}"]
    for i in sorted(entries):
        e = entries[i]
        lines.append(f"#EXTINF:{round(e['duration_ms'] / 1000)},{cfg.author} - {e['title']}".rstrip())
        lines.append(e["file"])
    return "\n".join(lines) + "\n"
