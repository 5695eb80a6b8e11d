"""Outputs: chapter MP3s, the M4B, tags, playlist and manifest, written atomically.

A chapter is re-encoded only when its output key (every input of its audio
and tags) changed; the M4B is rebuilt only when its key (the chapters' keys,
the book's tags and cover) changed and every chapter has current audio. A
build with nothing changed writes nothing.

The M4B is encoded from the chapter MP3s decoded again (the fixed-point
decoder is bit-exact), not from a second stitch: the chapters' audio exists
once on disk, memory holds one chunk, and the book's chapter marks come from
the same frame counts as the files. With `formats: [m4b]` the chapter MP3s
still exist, in a hidden folder of the output directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import __version__, audio
from pipeline.book import slugify
from pipeline.cache import SegmentCache
from pipeline.config import Config, Pauses
from pipeline.errors import AudiobookError, InputError, Problem, SegmentMissing

if TYPE_CHECKING:
    from pipeline.plan import ChapterPlan, Plan
    from pipeline.progress import Progress

log = logging.getLogger("pipeline")

OUTPUT_FORMAT = 2  # bump when the stitching or encoding changes
BOOK_FORMAT = 1  # bump when the m4b encoding changes
HIDDEN_DIR = ".chapters"  # chapter MP3s the m4b needs when mp3 is not an output

# ACX's rules, as numbers. The head and tail bounds keep a margin inside
# ACX's 0.5-1 s and 1-5 s, because a checker finds the voice's first and
# last blocks by a threshold, which moves the edges by some tens of ms.
ACX_RMS_DB = -20.0
ACX_RMS_RANGE = (-23.0, -18.0)
ACX_PEAK_DB = -3.0
ACX_CEILING_DB = -3.5  # the limiter's ceiling: MP3 encoding can overshoot a little
ACX_FLOOR_DB = -60.0
ACX_HEAD_MS = (500, 1000)
ACX_TAIL_MS = (1000, 5000)
ACX_EDGE_MARGIN_MS = 100
ACX_MAX_MINUTES = 120
ACX_RATE = 44100
ACX_MIN_KBPS = 192
TARGET_CEILING_DB = -1.0  # for LUFS and RMS targets: the common distribution limit
RMS_TOLERANCE_DB = 0.3  # re-encode once when the finished chapter misses by more
REPORT_TOLERANCE_DB = 1.0


# ------------------------------------------------------------------ targets


@dataclass(frozen=True)
class Target:
    """The loudness rule of `output.loudness`: kind is acx, rms, lufs or none."""

    kind: str
    level: float | None = None  # dB RMS or LUFS
    ceiling_db: float | None = None

    @property
    def label(self) -> str:
        if self.kind == "acx":
            return "ACX"
        if self.kind == "none":
            return "none"
        unit = "LUFS" if self.kind == "lufs" else "dB RMS"
        return f"{self.level:g} {unit}"


def loudness_target(cfg: Config) -> Target:
    value = cfg.output.loudness  # config.Loudness(kind, level)
    if value.kind == "acx":
        return Target("acx", ACX_RMS_DB, ACX_CEILING_DB)
    if value.kind in ("rms", "lufs"):
        return Target(value.kind, value.level, TARGET_CEILING_DB)
    return Target("none")


def chapter_pauses(cfg: Config) -> Pauses:
    """The configured pauses, with head and tail clamped into ACX's bounds in acx mode."""
    pauses = cfg.pauses
    if loudness_target(cfg).kind != "acx":
        return pauses
    m = ACX_EDGE_MARGIN_MS
    head = min(max(pauses.chapter_head_ms, ACX_HEAD_MS[0] + m), ACX_HEAD_MS[1] - m)
    tail = min(max(pauses.chapter_tail_ms, ACX_TAIL_MS[0] + m), ACX_TAIL_MS[1] - m)
    return replace(pauses, chapter_head_ms=head, chapter_tail_ms=tail)


def treatment_for(target: Target, pcm: audio.Stitched, stitched: audio.Levels) -> audio.Treatment:
    """The gain that brings the stitched chapter to the target, and its limiter."""
    if target.kind in ("acx", "rms"):
        gain = target.level - stitched.rms_db if stitched.rms_db > audio.SILENCE_DB else 0.0
    elif target.kind == "lufs":
        measured = audio.integrated_loudness(pcm.path, pcm.rate)
        gain = target.level - measured if measured > audio.SILENCE_DB else 0.0
    else:
        return audio.Treatment()
    return audio.Treatment(gain_db=round(gain, 3), ceiling_db=target.ceiling_db)


# ------------------------------------------------------------------ writing


@dataclass
class OutputReport:
    """What write_outputs did: build() folds it into the build's summary."""

    chapters_written: int = 0
    chapters_unchanged: int = 0
    book_written: bool = False
    outputs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Job:
    cp: ChapterPlan
    name: str  # path relative to the output dir
    key: str


def write_outputs(plan: Plan, cache: SegmentCache, jobs: int, force: bool,
                  progress: Progress) -> OutputReport:
    cfg = plan.cfg
    result = OutputReport()
    out_dir = cfg.output.dir
    out_dir.mkdir(parents=True, exist_ok=True)
    for folder in (out_dir, out_dir / HIDDEN_DIR):
        audio.remove_leftovers(folder)
    manifest_path = out_dir / "manifest.json"
    previous = _read_manifest(manifest_path)
    entries: dict[int, dict] = {e["index"]: e for e in previous.get("chapters", [])
                                if isinstance(e, dict) and "index" in e}
    cover = CoverFile(out_dir, book_cover(cfg))
    try:
        todo = _chapters_to_render(plan, cover.digest, entries, force, result)
        errors = _render_chapters(plan, cache, todo, jobs, cover, progress, entries, result)
        # Chapters that no longer exist leave the manifest.
        planned = {cp.index for cp in plan.chapters}  # credit tracks make index 0 possible
        entries = {i: e for i, e in entries.items() if i in planned}
        book = _book_entry(plan, entries, previous.get("book"), cover, force, errors, result)
    finally:
        cover.remove()
    _remove_stale(out_dir, previous, entries, book)
    manifest = _manifest(plan, entries, book)
    audio.write_atomic(manifest_path, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode())
    result.outputs = [str(out_dir / entries[i]["file"]) for i in sorted(entries)
                      if "mp3" in cfg.output.formats]
    if book:
        result.outputs.append(str(out_dir / book["file"]))
    result.outputs.append(str(manifest_path))
    if "mp3" in cfg.output.formats:
        audio.write_atomic(out_dir / "playlist.m3u", _playlist(cfg, entries).encode())
        result.outputs.append(str(out_dir / "playlist.m3u"))
    if errors:
        raise _combined(errors)
    return result


def _chapters_to_render(plan: Plan, cover_digest: str, entries: dict[int, dict], force: bool,
                        result: OutputReport) -> list[Job]:
    out_dir = plan.cfg.output.dir
    todo = []
    for i in plan.selected:
        cp = plan.chapters[i]
        name = chapter_file(plan, cp)
        key = chapter_output_key(plan, cp, cover_digest)
        old = entries.get(cp.index)
        if (not force and old and old.get("output_key") == key and old.get("file") == name
                and (out_dir / name).exists()):
            result.chapters_unchanged += 1
            continue
        todo.append(Job(cp, name, key))
    return todo


def _render_chapters(plan: Plan, cache: SegmentCache, todo: list[Job], jobs: int,
                     cover: CoverFile, progress: Progress, entries: dict[int, dict],
                     result: OutputReport) -> list[AudiobookError]:
    """Encode chapters in parallel (ffmpeg does the work); return their errors.

    One chapter failing does not stop the others: what finished is kept and
    recorded, so the next build redoes only the failed chapter.
    """
    errors: list[AudiobookError] = []
    if not todo:
        return errors
    cover_path = cover.path()
    progress.start("encoding chapters", len(todo))
    workers = max(1, min(jobs, os.cpu_count() or 1))

    def render(job: Job):
        try:
            return job, _render_chapter(plan, cache, job, cover_path), None
        except AudiobookError as exc:
            return job, None, exc

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for job, entry, error in pool.map(render, todo):
                if error is not None:
                    errors.append(error)
                    entries.pop(job.cp.index, None)
                else:
                    entries[job.cp.index] = entry
                    result.chapters_written += 1
                progress.advance()
    finally:
        progress.finish()
    return errors


def chapter_file(plan: Plan, cp: ChapterPlan) -> str:
    """NN-slug.mp3, or in the hidden folder when only the m4b is an output."""
    width = max(2, len(str(len(plan.chapters))))
    name = f"{cp.index:0{width}d}-{cp.slug}.mp3"
    return name if "mp3" in plan.cfg.output.formats else f"{HIDDEN_DIR}/{name}"


def chapter_output_key(plan: Plan, cp: ChapterPlan, cover_digest: str = "") -> str:
    cfg = plan.cfg
    spec = {
        "format": OUTPUT_FORMAT,
        "segments": [[s.key, s.pause_after] for s in cp.segments],
        "pauses": chapter_pauses(cfg).__dict__,
        "output": [cfg.output.bitrate, cfg.output.sample_rate, str(cfg.output.loudness)],
        "tags": chapter_tags(plan, cp),
        "cover": cover_digest,
        "ffmpeg": audio.ffmpeg_version(),
    }
    return _digest(spec)


def chapter_tags(plan: Plan, cp: ChapterPlan) -> dict[str, str]:
    cfg = plan.cfg
    return {
        "title": cp.title,
        "artist": cfg.author,
        "album_artist": cfg.author,
        "album": cfg.title,
        "track": f"{cp.index}/{len(plan.chapters)}",
        "date": cfg.year or "",
        "composer": cfg.narrator_name,
        "genre": "Audiobook",
    }


def _render_chapter(plan: Plan, cache: SegmentCache, job: Job, cover: Path | None) -> dict:
    cfg = plan.cfg
    cp = job.cp
    rate = cfg.output.sample_rate
    pauses = chapter_pauses(cfg)
    target = loudness_target(cfg)
    out = cfg.output.dir / job.name
    out.parent.mkdir(parents=True, exist_ok=True)

    missing: list[str] = []

    def parts():
        yield pauses.chapter_head_ms
        for k, seg in enumerate(cp.segments):
            stored = cache.get(seg.key)
            if stored is None:  # pruned or damaged: build() makes these again
                missing.append(seg.key)
            elif not missing:
                yield audio.trim(audio.decode(stored.data, stored.format, rate))
            last = k == len(cp.segments) - 1
            yield pauses.chapter_tail_ms if last else pauses.ms(seg.pause_after)

    # Pauses stay digital silence here: the encoder lays room tone under the
    # whole chapter after the gain, so its level is the same in every file.
    stitched = audio.stitch(parts(), rate, out.parent, tone=False)
    try:
        if missing:
            raise SegmentMissing(missing)
        _refuse_too_long(target, cp, stitched)
        treatment = treatment_for(target, stitched, audio.raw_levels(stitched.path, rate))
        tags = chapter_tags(plan, cp)
        levels = audio.encode_chapter(stitched, out, cfg.output.bitrate, tags, treatment, cover)
        miss = (target.level - levels.rms_db) if target.kind in ("acx", "rms") else 0.0
        if abs(miss) > RMS_TOLERANCE_DB:
            # The limiter took more than expected off a peaky chapter: correct once.
            treatment = replace(treatment, gain_db=round(treatment.gain_db + miss, 3))
            levels = audio.encode_chapter(stitched, out, cfg.output.bitrate, tags, treatment, cover)
    finally:
        stitched.path.unlink(missing_ok=True)
    return _manifest_entry(job, stitched.frames, levels)


def render_to(plan: Plan, cp: ChapterPlan, cache: SegmentCache, out: Path, *,
              loudness: Target | None = None) -> dict:
    """One chapter's segments and pauses into out (.mp3, .wav or .m4a), for `say`.

    No loudness treatment when loudness is None. (core branch: a thin
    stand-in over the stitcher until the outputs branch's renderer lands.)
    """
    rate = plan.cfg.output.sample_rate
    pauses = plan.cfg.pauses
    missing: list[str] = []

    def parts():
        for k, seg in enumerate(cp.segments):
            stored = cache.get(seg.key)
            if stored is None:
                missing.append(seg.key)
            elif not missing:
                yield audio.trim(audio.decode(stored.data, stored.format, rate))
            if k < len(cp.segments) - 1:
                yield pauses.ms(seg.pause_after)

    out.parent.mkdir(parents=True, exist_ok=True)
    stitched = audio.stitch(parts(), rate, out.parent)
    try:
        if missing:
            raise SegmentMissing(missing)
        audio.encode_file(stitched, out, plan.cfg.output.bitrate)
    finally:
        stitched.path.unlink(missing_ok=True)
    return {"file": str(out), "frames": stitched.frames, "duration_ms": stitched.duration_ms}


def _refuse_too_long(target: Target, cp: ChapterPlan, stitched: audio.Stitched) -> None:
    minutes = stitched.frames / stitched.rate / 60
    if target.kind == "acx" and minutes > ACX_MAX_MINUTES:
        raise InputError(Problem(
            cp.source, None, None,
            f"chapter {cp.index} '{cp.title}' is {minutes:.0f} minutes long; ACX "
            f"allows at most {ACX_MAX_MINUTES} minutes per file. Split its source into two "
            "chapters (or set output.loudness to a target other than acx)"))


def _manifest_entry(job: Job, frames: int, levels: audio.Levels) -> dict:
    cp = job.cp
    return {
        "index": cp.index, "title": cp.title, "source": cp.source, "file": job.name,
        "duration_ms": levels.duration_ms, "frames": frames,
        "characters": cp.characters, "credits": cp.credits,
        "output_key": job.key,
        "levels": levels.as_json(),
        "segments": [{"key": s.key, "characters": s.characters, "credits": s.credits}
                     for s in cp.segments],
    }


def _combined(errors: list[AudiobookError]) -> AudiobookError:
    if len(errors) == 1:
        return errors[0]
    lost = [k for e in errors if isinstance(e, SegmentMissing) for k in e.keys]
    if lost:  # the one error build() can repair, so it comes first
        return SegmentMissing(lost)
    if all(isinstance(e, InputError) for e in errors):
        return InputError([p for e in errors for p in e.problems])
    return errors[0]


# ------------------------------------------------------------------ the book


class CoverFile:
    """The book's cover as a file ffmpeg can read, written only if an encode needs it."""

    def __init__(self, directory: Path, cover: tuple[bytes, str] | None):
        self.directory = directory
        self.cover = cover
        self.digest = hashlib.sha256(cover[0]).hexdigest() if cover else ""
        self._path: Path | None = None

    def path(self) -> Path | None:
        if self.cover is None:
            return None
        if self._path is None:
            data, kind = self.cover
            self._path = self.directory / f".cover-{os.getpid()}.{kind}"
            self._path.write_bytes(data)
        return self._path

    def remove(self) -> None:
        if self._path is not None:
            self._path.unlink(missing_ok=True)


def book_cover(cfg: Config) -> tuple[bytes, str] | None:
    """(image bytes, 'jpg' or 'png'): `cover:` in the config, else the first EPUB's cover."""
    if cfg.cover is not None:
        data: bytes | None = cfg.cover.read_bytes()
    else:
        found = _epub_cover(cfg)
        data = found[0] if found else None
    if not data:
        return None
    kind = audio.image_kind(data)
    if kind is None:  # MP3 and MP4 players show only JPEG and PNG covers reliably
        data, kind = audio.to_png(data), "png"
    return data, kind


def _epub_cover(cfg: Config) -> tuple[bytes, str] | None:
    epubs = [e.source for e in cfg.chapters if e.source.suffix.lower() == ".epub"]
    if not epubs:
        return None
    try:
        from pipeline.sources.epub import read_cover
    except ImportError:  # the EPUB source is optional while it is being written
        return None
    for path in epubs:
        found = read_cover(path)
        if found:
            return found
    return None


def book_file(cfg: Config) -> str:
    return f"{slugify(cfg.title, 'audiobook')}.m4b"


def book_tags(cfg: Config) -> dict[str, str]:
    return {
        "title": cfg.title,
        "artist": cfg.author,
        "album": cfg.title,
        "album_artist": cfg.author,
        "composer": cfg.narrator_name,
        "date": cfg.year or "",
        "comment": cfg.description,
        "description": cfg.description,
        "genre": "Audiobook",
        "media_type": "2",  # stik=2: players file it under audiobooks
    }


def book_chapters(entries: list[dict], rate: int) -> list[tuple[str, int, int]]:
    """(title, start_ms, end_ms) per chapter, from cumulative frame counts.

    Rounding the running total (not each length) keeps every mark within half
    a millisecond of its true sample, however long the book.
    """
    marks = []
    start = 0
    for e in entries:
        end = start + e["frames"]
        marks.append((e["title"], _ms(start, rate), _ms(end, rate)))
        start = end
    return marks


def _ms(frames: int, rate: int) -> int:
    return (frames * 1000 + rate // 2) // rate


def ffmetadata(tags: dict[str, str], chapters: list[tuple[str, int, int]]) -> str:
    """An FFMETADATA1 text: global tags, then one [CHAPTER] block per chapter."""
    lines = [";FFMETADATA1"]
    lines += [f"{k}={_escape(v)}" for k, v in tags.items() if v]
    for title, start, end in chapters:
        lines += ["", "[CHAPTER]", "TIMEBASE=1/1000", f"START={start}", f"END={end}",
                  f"title={_escape(title)}"]
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    out = value
    for ch in ("\\", "=", ";", "#", "\n"):
        out = out.replace(ch, "\\" + ch)
    return out


def book_output_key(plan: Plan, entries: list[dict], cover_digest: str) -> str:
    cfg = plan.cfg
    return _digest({
        "format": BOOK_FORMAT,
        "chapters": [[e["output_key"], e["title"], e["frames"]] for e in entries],
        "tags": book_tags(cfg),
        "cover": cover_digest,
        "output": [cfg.output.bitrate, cfg.output.sample_rate],
        "ffmpeg": audio.ffmpeg_version(),
    })


def _book_entry(plan: Plan, entries: dict[int, dict], old: dict | None, cover: CoverFile,
                force: bool, errors: list, result: OutputReport) -> dict | None:
    """The m4b's manifest entry, building the file when it is out of date."""
    cfg = plan.cfg
    result.book_written = False
    if "m4b" not in cfg.output.formats:
        return None
    current = _current_entries(plan, entries, cover.digest)
    if current is None or errors:
        if old:
            log.info("m4b not rebuilt: some chapters have no current audio; "
                     "build every chapter to update it")
        return old if isinstance(old, dict) else None
    name = book_file(cfg)
    key = book_output_key(plan, current, cover.digest)
    out = cfg.output.dir / name
    if not force and old and old.get("output_key") == key and old.get("file") == name \
            and out.exists():
        return old
    marks = book_chapters(current, cfg.output.sample_rate)
    audio.encode_book([(cfg.output.dir / e["file"], e["frames"]) for e in current], out,
                      cfg.output.sample_rate, cfg.output.bitrate,
                      ffmetadata(book_tags(cfg), marks), cover.path())
    result.book_written = True
    return {"file": name, "output_key": key, "duration_ms": marks[-1][2] if marks else 0,
            "chapters": [{"title": t, "start_ms": s, "end_ms": e} for t, s, e in marks]}


def _current_entries(plan: Plan, entries: dict[int, dict], cover_digest: str) -> list[dict] | None:
    """Every chapter's entry if all have current audio on disk, else None."""
    out_dir = plan.cfg.output.dir
    current = []
    for cp in plan.chapters:
        e = entries.get(cp.index)
        if (not e or e.get("output_key") != chapter_output_key(plan, cp, cover_digest)
                or "frames" not in e or not (out_dir / e["file"]).exists()):
            return None
        current.append(e)
    return current


def _remove_stale(out_dir: Path, previous: dict, entries: dict[int, dict], book: dict | None) -> None:
    """Delete files an earlier build wrote that this book no longer has."""
    keep = {e["file"] for e in entries.values()} | ({book["file"]} if book else set())
    old = {e.get("file") for e in previous.get("chapters", []) if isinstance(e, dict)}
    if isinstance(previous.get("book"), dict):
        old.add(previous["book"].get("file"))
    for name in old - keep:
        # Only names inside out_dir: a hand-edited manifest must not delete elsewhere.
        if isinstance(name, str) and name and not Path(name).is_absolute() \
                and ".." not in Path(name).parts:
            (out_dir / name).unlink(missing_ok=True)


# ------------------------------------------------------------------ manifest, playlist


def _digest(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _manifest(plan: Plan, entries: dict[int, dict], book: dict | None) -> dict:
    chapters = [entries[i] for i in sorted(entries)]
    manifest = {
        "generator": f"audiobook-pipeline {__version__}",
        "title": plan.cfg.title,
        "author": plan.cfg.author,
        "backend": plan.backend,
        "loudness": loudness_target(plan.cfg).label,
        "chapters": chapters,
        "totals": {
            "chapters": len(chapters),
            "duration_ms": sum(c["duration_ms"] for c in chapters),
            "characters": sum(c["characters"] for c in chapters),
            "credits": sum(c["credits"] for c in chapters),
        },
    }
    if book:
        manifest["book"] = book
    return manifest


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


# ------------------------------------------------------------------ check --audio


@dataclass(frozen=True)
class FileReport:
    name: str
    levels: audio.Levels
    rate: int
    kbps: int
    cbr: bool
    lufs: float | None
    failures: tuple[str, ...]


def audio_report(cfg: Config) -> tuple[str, bool]:
    """Measure every output file against the loudness target; (table, all passed)."""
    out_dir = cfg.output.dir
    manifest = _read_manifest(out_dir / "manifest.json")
    names = [e["file"] for e in manifest.get("chapters", []) if isinstance(e, dict) and "file" in e]
    names = [n for n in names if not n.startswith(HIDDEN_DIR)]
    if isinstance(manifest.get("book"), dict):
        names.append(manifest["book"]["file"])
    names = [n for n in names if (out_dir / n).exists()]
    if not names:
        return f"{out_dir}: no built audio; run `audiobook build` first", False
    target = loudness_target(cfg)
    workers = max(1, min(len(names), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reports = list(pool.map(lambda n: measure_output(out_dir, n, target, cfg), names))
    return _report_table(reports, target), all(not r.failures for r in reports)


def measure_output(out_dir: Path, name: str, target: Target, cfg: Config) -> FileReport:
    path = out_dir / name
    rate, kbps, cbr = _stream_info(path)
    levels = audio.file_levels(path, rate or cfg.output.sample_rate)
    lufs = audio.integrated_loudness(path, rate, raw=False) if target.kind == "lufs" else None
    chapter_file = path.suffix.lower() == ".mp3"
    failures = _failures(target, levels, rate, kbps, cbr, lufs, chapter_file)
    return FileReport(name, levels, rate, kbps, cbr, lufs, tuple(failures))


def _stream_info(path: Path) -> tuple[int, int, bool]:
    """(sample rate, kbps, constant bitrate) read from the file's headers."""
    import mutagen

    info = mutagen.File(path).info
    mode = getattr(info, "bitrate_mode", None)
    # mutagen's BitrateMode prints as "BitrateMode.CBR"; UNKNOWN means no Xing/Info header.
    cbr = mode is None or str(mode).rsplit(".", 1)[-1] in ("CBR", "UNKNOWN")
    return int(info.sample_rate), round(info.bitrate / 1000), cbr


def _failures(target: Target, lv: audio.Levels, rate: int, kbps: int, cbr: bool,
              lufs: float | None, chapter_file: bool) -> list[str]:
    """What this file breaks of the target's rules, in words."""
    bad = []
    if target.kind == "acx":
        lo, hi = ACX_RMS_RANGE
        if not lo <= lv.rms_db <= hi:
            bad.append(f"RMS {lv.rms_db:.1f} outside {lo:g}..{hi:g}")
        if lv.peak_db > ACX_PEAK_DB:
            bad.append(f"peak {lv.peak_db:.1f} > {ACX_PEAK_DB:g}")
        if lv.floor_db > ACX_FLOOR_DB:
            bad.append(f"noise floor {lv.floor_db:.1f} > {ACX_FLOOR_DB:g}")
        if lv.floor_db <= audio.SILENCE_DB:
            bad.append("digital silence (no room tone)")
        if chapter_file:  # the per-file rules apply to the chapter files ACX takes
            bad += _acx_file_failures(lv, rate, kbps, cbr)
    elif target.kind == "rms" and abs(lv.rms_db - target.level) > REPORT_TOLERANCE_DB:
        bad.append(f"RMS {lv.rms_db:.1f}, target {target.level:g}")
    elif target.kind == "lufs" and lufs is not None and abs(lufs - target.level) > REPORT_TOLERANCE_DB:
        bad.append(f"{lufs:.1f} LUFS, target {target.level:g}")
    if target.ceiling_db is not None and target.kind != "acx" \
            and lv.peak_db > target.ceiling_db + 0.5:
        bad.append(f"peak {lv.peak_db:.1f} > {target.ceiling_db:g}")
    return bad


def _acx_file_failures(lv: audio.Levels, rate: int, kbps: int, cbr: bool) -> list[str]:
    bad = []
    if rate != ACX_RATE:
        bad.append(f"{rate} Hz, not {ACX_RATE}")
    if kbps < ACX_MIN_KBPS or not cbr:
        bad.append(f"{kbps} kbps {'CBR' if cbr else 'VBR'}, not CBR >= {ACX_MIN_KBPS}")
    if not ACX_HEAD_MS[0] <= lv.head_ms <= ACX_HEAD_MS[1]:
        bad.append(f"head tone {lv.head_ms} ms outside {ACX_HEAD_MS[0]}-{ACX_HEAD_MS[1]}")
    if not ACX_TAIL_MS[0] <= lv.tail_ms <= ACX_TAIL_MS[1]:
        bad.append(f"tail tone {lv.tail_ms} ms outside {ACX_TAIL_MS[0]}-{ACX_TAIL_MS[1]}")
    if lv.duration_ms > ACX_MAX_MINUTES * 60_000:
        bad.append(f"longer than {ACX_MAX_MINUTES} minutes")
    return bad


def _report_table(reports: list[FileReport], target: Target) -> str:
    width = max(len("file"), *(len(r.name) for r in reports))
    head = (f"{'file':<{width}}  {'duration':>8}  {'rate':>5}  {'kbps':>4}  {'RMS':>6}  "
            f"{'peak':>6}  {'floor':>6}  {'head':>5}  {'tail':>5}  verdict")
    lines = [f"target: {target.label}", head, "-" * len(head)]
    for r in reports:
        lv = r.levels
        verdict = "ok" if not r.failures else "FAIL: " + "; ".join(r.failures)
        loud = f"{lv.rms_db:6.1f}" if r.lufs is None else f"{r.lufs:4.1f}LU"
        lines.append(f"{r.name:<{width}}  {_clock(lv.duration_ms):>8}  {r.rate:>5}  {r.kbps:>4}  "
                     f"{loud:>6}  {lv.peak_db:6.1f}  {lv.floor_db:6.1f}  {lv.head_ms / 1000:5.2f}  "
                     f"{lv.tail_ms / 1000:5.2f}  {verdict}")
    passed = sum(1 for r in reports if not r.failures)
    lines.append(f"{passed}/{len(reports)} file(s) pass")
    return "\n".join(lines)


def _clock(ms: int) -> str:
    s = ms // 1000
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
