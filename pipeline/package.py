"""Outputs: chapter MP3s, the M4B, tags, playlist and manifest, written atomically.

A chapter is re-encoded only when its output key (every input of its audio
and tags) changed; the M4B is rebuilt only when its key (the chapters' keys,
the book's tags and cover) changed and every chapter has current audio. A
build with nothing changed writes nothing.

Each chapter is stitched once; one ffmpeg run finishes it and writes both
its MP3 and a mono AAC stream (in the hidden `.chapters` folder) that the
M4B joins without re-encoding. So the M4B is store-sized (`m4b_bitrate`,
64k by default) and encoded from the PCM, never from the MP3s.

The output folder is shared with the user: the manifest records an owner
token (the book's title, author and language, never a path) and each file's
sha256, and only files matching both are ever removed (see files.py for how
every write avoids links).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import __version__, audio, files
from pipeline.book import slugify
from pipeline.cache import SegmentCache
from pipeline.config import Config
from pipeline.errors import AudiobookError, AudioToolError, InputError, Problem, SegmentMissing
from pipeline.loudness import (
    ACX_MAX_MINUTES,
    RMS_TOLERANCE_DB,
    Target,
    chapter_pauses,
    loudness_target,
    rms_miss,
    treatment_for,
)
from pipeline.sources.rules import image_kind

if TYPE_CHECKING:
    from pipeline.ledger import Signatures
    from pipeline.plan import ChapterPlan, Plan
    from pipeline.progress import Progress
    from pipeline.timing import Timeline

log = logging.getLogger("pipeline")

OUTPUT_FORMAT = 5  # bump when the stitching or encoding changes (4: joints re-timed; 5: unmarked sentence ends too)
BOOK_FORMAT = 3  # bump when the m4b encoding changes (3: the QuickTime chapter track)
READALONG_FORMAT = 2  # bump when the read-along EPUB changes (2: AAC in .m4a, not the MP3s)
# 2: owner token and per-file sha256; 3: the owner is the book, not its folder, and cover_file
MANIFEST_FORMAT = 3
HIDDEN_DIR = ".chapters"  # the chapters' AAC streams the m4b is joined from
GENERATOR = "audiobook-pipeline"
COVER_MAX_BYTES = 500_000  # every embedded cover is a JPEG of at most this many bytes
COVER_MAX_SIDE = 3000  # Apple's and Audible's largest cover size


# ------------------------------------------------------------------ writing


@dataclass
class OutputReport:
    """What write_outputs did: build() folds it into the build's summary."""

    chapters_written: int = 0
    chapters_unchanged: int = 0
    book_written: bool = False
    outputs: list[str] = field(default_factory=list)
    # Joints inside requests left with the voice's own pause (low confidence), in the
    # chapters this build wrote.
    boundaries_unaligned: int = 0


@dataclass(frozen=True)
class Job:
    cp: ChapterPlan
    name: str  # the chapter MP3, relative to the output dir ("" without mp3)
    aac: str  # the chapter's AAC stream for the m4b ("" without m4b)
    key: str


def write_outputs(plan: Plan, cache: SegmentCache, jobs: int, force: bool,
                  progress: Progress) -> OutputReport:
    cfg = plan.cfg
    result = OutputReport()
    out_dir = output_folder(cfg)
    previous = owned_manifest(cfg, out_dir)
    trusted = bool(previous)
    entries: dict[int, dict] = {e["index"]: e for e in previous.get("chapters", [])
                                if isinstance(e, dict) and isinstance(e.get("index"), int)}
    if _makes_aac(cfg):
        files.safe_folder(out_dir, HIDDEN_DIR)
    for folder in (out_dir, out_dir / HIDDEN_DIR):
        files.remove_leftovers(folder)
    cover = CoverFile(out_dir, book_cover(cfg, cache.directory / "covers"))
    try:
        sigs = cache.signatures
        todo = _chapters_to_render(plan, cover.digest, entries, force, result, sigs)
        errors = _render_chapters(plan, cache, todo, jobs, cover, progress, entries, result)
        # Chapters that no longer exist leave the manifest.
        planned = {cp.index for cp in plan.chapters}  # credit tracks make index 0 possible
        entries = {i: e for i, e in entries.items() if i in planned}
        book = _book_entry(plan, entries, previous.get("book"), cover, force, errors, result,
                           sigs)
        readalong = _readalong_entry(plan, entries, previous.get("readalong"), cover, force,
                                     errors, sigs)
        store_cover = _cover_file_entry(cfg, cover.cover, previous.get("cover_file"), force, sigs)
    finally:
        cover.remove()
    if trusted:
        _remove_stale(out_dir, previous, entries, [book, readalong, store_cover])
    manifest_path = out_dir / "manifest.json"
    manifest = _manifest(plan, entries, book)
    if readalong:
        manifest["readalong"] = readalong
    if store_cover:
        manifest["cover_file"] = store_cover
    # Unchanged (a no-op build): not encoded again. With every sentence's
    # timing in it, the indented encode was most of a no-op build's time.
    if manifest != previous or not manifest_path.is_file():
        files.write_atomic(manifest_path, (json.dumps(manifest, indent=2, ensure_ascii=False)
                                           + "\n").encode())
    result.outputs = [str(out_dir / entries[i]["file"]) for i in sorted(entries)
                      if "mp3" in cfg.output.formats]
    for whole in (book, readalong, store_cover):
        if whole:
            result.outputs.append(str(out_dir / whole["file"]))
    result.outputs.append(str(manifest_path))
    if "mp3" in cfg.output.formats:
        files.write_atomic(out_dir / "playlist.m3u", _playlist(cfg, entries).encode())
        result.outputs.append(str(out_dir / "playlist.m3u"))
    if errors:
        raise _combined(errors)
    return result


def output_folder(cfg: Config) -> Path:
    """output.dir, made if missing; refused if a link in the project folder leads to it.

    A folder the user names outside the project (output.dir: /mnt/audio) is
    their choice; a link inside the project (build -> ~/Music) may come with
    an untrusted repository, so it must be named as its target instead.
    """
    out_dir = cfg.output.dir
    for link in _links_to(cfg.root, out_dir):
        raise InputError(Problem(
            cfg.display, cfg.line_of("output"), "output.dir",
            f"{link} is a link (to {os.readlink(link)}); the build writes only into real folders "
            "of the project: remove the link, or set output.dir to its target"))
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(Problem(cfg.display, cfg.line_of("output"), "output.dir",
                                 f"{out_dir} is a file, not a folder; choose another output.dir"))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise files.os_error(exc, out_dir) from exc
    return out_dir


def _links_to(root: Path, out_dir: Path) -> list[Path]:
    """Links in the project's top folder that lead to out_dir or a folder above it."""
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        if entry.is_symlink():
            target = entry.resolve()
            if target == out_dir or target in out_dir.parents:
                found.append(entry)
    return found


def owner_token(cfg: Config) -> str:
    """Who owns an output folder: the book (title, author, language), wherever it lies.

    Never its path: a copied, moved or renamed book folder, or a CI runner
    restoring build/ under another checkout path, is still the same book and
    writes the same manifest bytes; another book is not.
    """
    spec = json.dumps([GENERATOR, "book", cfg.title, cfg.author, cfg.language])
    return hashlib.sha256(spec.encode()).hexdigest()[:32]


def _folder_token(cfg: Config) -> str:
    """The owner token of manifest_format 2: the config's folder and the book's title."""
    spec = f"{GENERATOR}\0{cfg.path.resolve().parent}\0{cfg.title}"
    return hashlib.sha256(spec.encode()).hexdigest()[:32]


def _same_book(data: dict, cfg: Config) -> bool:
    """Whether a manifest of ours with an owner token was written for this book.

    From format 3 the token is the book's identity. Format 2 (the previous
    version) hashed the config's folder: it is this book if written from this
    folder for this title, as before, or if it names this book's title and
    author (it kept no language), so a moved folder is not refused forever.
    """
    owner = data.get("owner")
    if owner == owner_token(cfg):
        return True
    written = data.get("manifest_format")
    if isinstance(written, int) and written >= 3:
        return False
    return owner == _folder_token(cfg) or (data.get("title") == cfg.title
                                           and data.get("author", "") == cfg.author)


def _book_named(title: Any, author: Any, language: Any) -> str:
    """'Title' by Author (en), leaving out what a manifest did not record."""
    text = repr(title)
    if author:
        text += f" by {author}"
    return text + (f" ({language})" if language else "")


def refuse_foreign(cfg: Config) -> None:
    """Refuse a linked or another book's output folder before anything is made or paid for."""
    out_dir = output_folder(cfg)
    if (out_dir / "manifest.json").exists():
        owned_manifest(cfg, out_dir)


def owned_manifest(cfg: Config, out_dir: Path) -> dict:
    """The previous manifest if this book wrote it; {} if there is none to trust.

    Another book's manifest, or a manifest.json some other program wrote, is
    refused (exit 2): building here would overwrite or delete its files. A
    manifest of ours without an owner token (an older version, or forged) is
    replaced, but never trusted for deletions or for skipping work.
    """
    path = out_dir / "manifest.json"
    if not path.exists() and not path.is_symlink():
        return {}
    data = _read_manifest(path)
    here, line = cfg.display, cfg.line_of("output")
    if not str(data.get("generator", "")).startswith(GENERATOR):
        raise InputError(Problem(here, line, "output.dir",
                                 f"{path} was not written by {GENERATOR}; choose an output.dir "
                                 "of this book's own (or move that file away)"))
    if data.get("owner") is None:
        log.info("%s has no owner token (an older version wrote it): rebuilding every file", path)
        return {}
    if not _same_book(data, cfg):
        raise InputError(Problem(here, line, "output.dir", _not_this_book(cfg, out_dir, data)))
    return data


def _not_this_book(cfg: Config, out_dir: Path, data: dict) -> str:
    theirs = _book_named(data.get("title"), data.get("author"), data.get("language"))
    ours = _book_named(cfg.title, cfg.author, cfg.language)
    text = (f"{out_dir} holds the output of {theirs}, not of {ours}; give each book its own "
            "output.dir (or, if this is the same book with a new title, author or language, "
            "delete that folder, and the next build makes it again)")
    if "title" not in cfg.lines and data.get("title") != cfg.title:
        text += (f". This book's title comes from its folder's name ({cfg.display} has no "
                 f"title:); write title: {data.get('title')!r} there to keep the old one")
    return text


def _chapters_to_render(plan: Plan, cover_digest: str, entries: dict[int, dict], force: bool,
                        result: OutputReport, sigs: Signatures) -> list[Job]:
    out_dir = plan.cfg.output.dir
    todo = []
    for i in plan.selected:
        cp = plan.chapters[i]
        name, aac = chapter_file(plan, cp), aac_file(plan, cp)
        key = chapter_output_key(plan, cp, cover_digest)
        old = entries.get(cp.index)
        if (not force and old and old.get("output_key") == key and old.get("file") == (name or aac)
                and all(_intact(out_dir, f, sigs) for f in _entry_files(old))):
            result.chapters_unchanged += 1
            continue
        todo.append(Job(cp, name, aac, key))
    return todo


def _intact(out_dir: Path, record: dict, sigs: Signatures) -> bool:
    """The recorded file is there, no link, and holds the bytes the manifest names.

    By content: the ledger's signature of the file vouches for its SHA-256
    while its stat (size, times, inode) is unchanged; otherwise it is hashed
    again, so an output damaged in place at the same size is made again.
    """
    path = files.inside(out_dir, record.get("file", ""))
    return (path is not None and path.is_file()
            and path.stat().st_size == record.get("bytes")
            and sigs.digest(path, own=True) == record.get("sha256"))


def _entry_files(entry: dict) -> list[dict]:
    """Every file a chapter entry records: {"file", "sha256", "bytes"} each."""
    found = [entry] if entry.get("file") and entry.get("sha256") else []
    for extra in ("aac", "vtt"):
        record = entry.get(extra)
        if isinstance(record, dict) and record.get("file") != entry.get("file"):
            found.append(record)
    return found


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
    cover_path = cover.path() if "mp3" in plan.cfg.output.formats else None
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
                    result.boundaries_unaligned += entry.get("boundaries_unaligned", 0)
                progress.advance()
    finally:
        progress.finish()
    return errors


def chapter_file(plan: Plan, cp: ChapterPlan) -> str:
    """NN-slug.mp3, or "" when MP3 is not an output."""
    return f"{_chapter_stem(plan, cp)}.mp3" if "mp3" in plan.cfg.output.formats else ""


def aac_file(plan: Plan, cp: ChapterPlan) -> str:
    """.chapters/NN-slug.aac (the chapter's part of the m4b and the EPUB), or "" without either."""
    return f"{HIDDEN_DIR}/{_chapter_stem(plan, cp)}.aac" if _makes_aac(plan.cfg) else ""


def _makes_aac(cfg: Config) -> bool:
    """The chapters' AAC streams are made for the m4b and for the read-along EPUB's .m4a."""
    return "m4b" in cfg.output.formats or "epub" in cfg.output.formats


def _chapter_stem(plan: Plan, cp: ChapterPlan) -> str:
    width = max(2, len(str(len(plan.chapters))))
    return f"{cp.index:0{width}d}-{cp.slug}"


def chapter_output_key(plan: Plan, cp: ChapterPlan, cover_digest: str = "") -> str:
    cfg = plan.cfg
    spec = {
        "format": OUTPUT_FORMAT,
        "segments": [[s.key, s.pause_after] for s in cp.segments],
        "pauses": chapter_pauses(cfg).__dict__,
        "output": [cfg.output.bitrate, cfg.output.sample_rate, str(cfg.output.loudness)],
        "mp3": "mp3" in cfg.output.formats,
        "vtt": "vtt" in cfg.output.formats,
        "aac": cfg.output.m4b_bitrate if _makes_aac(cfg) else None,
        "tags": chapter_tags(plan, cp),
        "cover": cover_digest if "mp3" in cfg.output.formats else "",
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


def stitch_chapter(cp: ChapterPlan, cache: SegmentCache, rate: int, head_ms: int, tail_ms: int,
                   pauses: Any, directory: Path, tone: bool,
                   timeline: Timeline | None = None) -> audio.Stitched:
    """The chapter's segments joined with its pauses into raw PCM, every joint re-timed.

    Each segment is laid out by pipeline.timing: the joints inside it (sentence,
    paragraph, heading and scene ends) are found in its audio and given their
    configured pauses, and its sentences are timed into `timeline`.

    Raises SegmentMissing (every missing key at once) when the cache lacks
    or has lost a segment, so build() can re-make them and render again.
    """
    missing = [s.key for s in cp.segments if s.key not in cache]
    if missing:
        raise SegmentMissing(list(dict.fromkeys(missing)))
    # The timing and read-along modules load only when audio is made: a
    # build whose outputs are current never needs them.
    from pipeline.timing import Timeline, segment_pieces

    line = timeline if timeline is not None else Timeline(cp.index, rate, [])

    def parts():
        line.advance(head_ms)
        yield head_ms
        for k, seg in enumerate(cp.segments):
            stored = cache.get(seg.key)
            if stored is None:  # damaged, or pruned by another process mid-build
                raise SegmentMissing([seg.key])
            yield from segment_pieces(line, seg.key, seg.text, seg.parts,
                                      audio.decode(stored.data, stored.format, rate), pauses.ms,
                                      stored.marks)
            gap = tail_ms if k == len(cp.segments) - 1 else pauses.ms(seg.pause_after)
            line.advance(gap)
            yield gap

    return audio.stitch(parts(), rate, directory, tone=tone)


def render_to(plan: Plan, cp: ChapterPlan, cache: SegmentCache, out: Path, *,
              loudness: Target | None = None) -> dict:
    """One chapter's audio into out (.mp3, .wav or .m4a by suffix); for `say` and build alike.

    Stitched with the chapter's pauses, room tone included; without a
    loudness target no gain or limiter is applied. Returns frames,
    duration_ms and the finished levels.
    """
    cfg = plan.cfg
    rate = cfg.output.sample_rate
    pauses = chapter_pauses(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    tone = loudness is None or loudness.kind == "none"
    stitched = stitch_chapter(cp, cache, rate, pauses.chapter_head_ms, pauses.chapter_tail_ms,
                              pauses, out.parent, tone=tone)
    try:
        treatment = None
        if not tone and loudness is not None:
            treatment = treatment_for(loudness, stitched, audio.raw_levels(stitched.path, rate))
        levels = audio.encode_file(stitched, out, cfg.output.bitrate, treatment)
    finally:
        stitched.path.unlink(missing_ok=True)
    return {"frames": stitched.frames, "duration_ms": levels.duration_ms,
            "levels": levels.as_json()}


def _render_chapter(plan: Plan, cache: SegmentCache, job: Job, cover: Path | None) -> dict:
    cfg = plan.cfg
    cp = job.cp
    rate = cfg.output.sample_rate
    pauses = chapter_pauses(cfg)
    target = loudness_target(cfg)
    out_dir = cfg.output.dir
    mp3 = out_dir / job.name if job.name else None
    aac = out_dir / job.aac if job.aac else None
    # Pauses stay digital silence here: the encoder lays room tone under the
    # whole chapter after the gain, so its level is the same in every file.
    from pipeline.readalong import Sentence, vtt_text
    from pipeline.timing import Timeline

    timeline = Timeline(cp.index, rate, [])
    stitched = stitch_chapter(cp, cache, rate, pauses.chapter_head_ms, pauses.chapter_tail_ms,
                              pauses, out_dir, tone=False, timeline=timeline)
    try:
        _refuse_too_long(target, cp, stitched)
        treatment = treatment_for(target, stitched, audio.raw_levels(stitched.path, rate))
        tags = chapter_tags(plan, cp)

        def encode(t: audio.Treatment) -> audio.Levels:
            return audio.encode_chapter(stitched, t, mp3=mp3, bitrate=cfg.output.bitrate,
                                        tags=tags, cover=cover, aac=aac,
                                        aac_bitrate=cfg.output.m4b_bitrate)

        levels = encode(treatment)
        miss = rms_miss(target, levels)
        if abs(miss) > RMS_TOLERANCE_DB:
            # The limiter took more than expected off a peaky chapter: correct once.
            log.debug("chapter %d: RMS %.2f dB off target, encoding again", cp.index, -miss)
            levels = encode(replace(treatment, gain_db=round(treatment.gain_db + miss, 3)))
    finally:
        stitched.path.unlink(missing_ok=True)
    entry = _manifest_entry(job, out_dir, stitched.frames, levels)
    if "vtt" in cfg.output.formats:
        cues = f"{_chapter_stem(plan, cp)}.vtt"
        files.write_atomic(out_dir / cues,
                           vtt_text([Sentence.from_json(x) for x in timeline.sentences]).encode())
        entry["vtt"] = _file_record(out_dir, cues)
    entry.update(sentences=timeline.sentences, boundaries_aligned=timeline.aligned,
                 boundaries_unaligned=timeline.unaligned)
    return entry


def _refuse_too_long(target: Target, cp: ChapterPlan, stitched: audio.Stitched) -> None:
    minutes = stitched.frames / stitched.rate / 60
    if target.kind == "acx" and minutes > ACX_MAX_MINUTES:
        raise InputError(Problem(
            cp.source, None, None,
            f"chapter {cp.index} '{cp.title}' is {minutes:.0f} minutes long; ACX "
            f"allows at most {ACX_MAX_MINUTES} minutes per file. Split its source into two "
            "chapters (or set output.loudness to a target other than acx)"))


def _file_record(out_dir: Path, name: str) -> dict:
    path = out_dir / name
    return {"file": name, "sha256": files.sha256_file(path), "bytes": path.stat().st_size}


def _manifest_entry(job: Job, out_dir: Path, frames: int, levels: audio.Levels) -> dict:
    cp = job.cp
    entry: dict[str, Any] = {"index": cp.index, "title": cp.title, "source": cp.source}
    entry.update(_file_record(out_dir, job.name or job.aac))
    if job.aac:
        entry["aac"] = {**_file_record(out_dir, job.aac),
                        "frames": audio.adts_frames(out_dir / job.aac)}
    entry.update({
        "duration_ms": levels.duration_ms, "frames": frames,
        "characters": cp.characters, "credits": cp.credits,
        "output_key": job.key,
        "levels": levels.as_json(),
        "segments": [{"key": s.key, "characters": s.characters, "credits": s.credits}
                     for s in cp.segments],
    })
    return entry


def _combined(errors: list[AudiobookError]) -> AudiobookError:
    missing = [k for e in errors if isinstance(e, SegmentMissing) for k in e.keys]
    if missing:  # build() re-makes them all at once
        return SegmentMissing(list(dict.fromkeys(missing)))
    if len(errors) == 1:
        return errors[0]
    inputs = [e for e in errors if isinstance(e, InputError)]
    if len(inputs) == len(errors):
        return InputError([p for e in inputs for p in e.problems])
    return errors[0]


# ------------------------------------------------------------------ the cover


@dataclass(frozen=True)
class Cover:
    """The book's cover: the image as given (for a store), and the JPEG every output embeds."""

    original: bytes
    jpeg: bytes


class CoverFile:
    """The book's embedded cover as a file ffmpeg can read, written only if an encode needs it."""

    def __init__(self, directory: Path, cover: Cover | None):
        self.directory = directory
        self.cover = cover
        self.digest = hashlib.sha256(cover.jpeg).hexdigest() if cover else ""
        self._path: Path | None = None

    def path(self) -> Path | None:
        if self.cover is None:
            return None
        if self._path is None:
            self._path = files.temp_path(self.directory, "cover", ".jpg")
            try:
                self._path.write_bytes(self.cover.jpeg)
            except OSError as exc:
                raise files.os_error(exc, self._path) from exc
        return self._path

    def remove(self) -> None:
        if self._path is not None:
            self._path.unlink(missing_ok=True)


def book_cover(cfg: Config, memo: Path | None = None) -> Cover | None:
    """`cover:` in the config, else the first EPUB's cover, with its embedded JPEG.

    With memo (a folder), a cover that had to be fitted is kept there.
    """
    if cfg.cover is not None:
        where = cfg.line_of("cover")
        data: bytes | None = cfg.cover.read_bytes()
        origin = f"cover: {cfg.cover}"
    else:
        found = _epub_cover(cfg)
        data = found[0] if found else None
        where, origin = None, "the EPUB's cover"
    if not data:
        return None
    try:
        return Cover(data, fit_cover(data) if memo is None else remembered_cover(data, memo))
    except (AudioToolError, ValueError) as exc:
        if cfg.cover is not None:
            raise InputError(Problem(cfg.display, where, "cover",
                                     f"{cfg.cover} is not an image we can read ({exc}); "
                                     "use a JPEG or PNG file")) from exc
        log.warning("warning: %s could not be used (%s); the outputs have no cover", origin, exc)
        return None


# A cover over COVER_MAX_BYTES is made smaller: its longest side first, at
# good quality; then the quality, at the last of these sides; then, for an
# image that is noise to JPEG, smaller at the lowest quality. The first step
# that fits is taken.
COVER_SIDES = (3000, 2400, 1800, 1400)
COVER_QUALITIES = (3, 5, 8, 12, 20, 31)  # ffmpeg's mjpeg -q:v: 2 is best, 31 worst
COVER_LAST_SIDES = (1000, 700, 500, 300)
COVER_FORMAT = 2  # bump when fit_cover makes other bytes of the same image (2: JPEG <= 500 kB)


def fit_cover(data: bytes) -> bytes:
    """Any cover as the JPEG the outputs embed: at most COVER_MAX_BYTES, the same bytes everywhere.

    A JPEG that already fits (and is at most COVER_MAX_SIDE pixels a side)
    keeps its bytes. Anything else (PNG, WebP, GIF, a rasterized SVG, a big
    JPEG) is decoded and encoded again, down cover_steps until it fits, by
    the pinned ffmpeg in C code only (audio.cover_jpeg). Transparent parts
    are laid on white.
    """
    if _usable_as_is(data):
        return data
    image = raster_cover(data)
    size = image_size(image)
    if size is None:
        raise ValueError("its size cannot be read")
    flatten = _has_alpha(image)
    for (width, height), quality in cover_steps(size):
        jpeg = audio.cover_jpeg(image, width, height, quality, flatten)
        if len(jpeg) <= COVER_MAX_BYTES:
            return jpeg
    # Not met: 300 pixels at the lowest quality is about 20 kB even of pure noise.
    raise ValueError(f"no JPEG of it fits in {COVER_MAX_BYTES} bytes")


def cover_steps(size: tuple[int, int]) -> list[tuple[tuple[int, int], int]]:
    """((width, height), quality) to try in turn for an image of size; never scaled up."""
    ladder = [(side, COVER_QUALITIES[0]) for side in COVER_SIDES]
    ladder += [(COVER_SIDES[-1], q) for q in COVER_QUALITIES[1:]]
    ladder += [(side, COVER_QUALITIES[-1]) for side in COVER_LAST_SIDES]
    steps: list[tuple[tuple[int, int], int]] = []
    for side, quality in ladder:
        step = (_scaled(size, side), quality)
        if step not in steps:  # a small image: the sides above its own are one step
            steps.append(step)
    return steps


def _scaled(size: tuple[int, int], side: int) -> tuple[int, int]:
    width, height = size
    longest = max(width, height)
    if longest <= side:
        return width, height
    return max(1, round(width * side / longest)), max(1, round(height * side / longest))


def raster_cover(data: bytes) -> bytes:
    """A cover as JPEG or PNG bytes: those as they are, an SVG rasterized, others as PNG."""
    kind = image_kind(data)
    if kind in ("jpg", "png"):
        return data
    if kind == "svg":
        import resvg_py

        return bytes(resvg_py.svg_to_bytes(svg_string=data.decode("utf-8", "replace")))
    return audio.to_png(data)


def _usable_as_is(data: bytes) -> bool:
    """A JPEG within the caps goes into the files unchanged."""
    if image_kind(data) != "jpg" or len(data) > COVER_MAX_BYTES:
        return False
    size = image_size(data)
    return size is not None and max(size) <= COVER_MAX_SIDE


def _has_alpha(image: bytes) -> bool:
    """A PNG with an alpha channel (grey or RGB + alpha) or a transparent colour (tRNS)."""
    if image[:8] != b"\x89PNG\r\n\x1a\n" or len(image) < 26:
        return False
    return image[25] in (4, 6) or b"tRNS" in image[:max(image.find(b"IDAT"), 0)]


def _cover_file_entry(cfg: Config, cover: Cover | None, old: dict | None, force: bool,
                      sigs: Signatures) -> dict | None:
    """output.cover_file: the cover full size for a store, beside the outputs, and its record.

    A store takes the artwork as its own upload (ACX and Apple want at least
    2400 or 1400 pixels a side), not the 500 kB JPEG inside the files: a JPEG
    or PNG is written as given, any other image as PNG.
    """
    if not cfg.output.cover_file:
        return None
    if cover is None:
        log.warning("warning: output.cover_file is set, but the book has no cover (set cover: "
                    "in %s); no cover file written", cfg.display)
        return None
    old = old if isinstance(old, dict) else None
    kind = image_kind(cover.original)
    name = f"{slugify(cfg.title, 'audiobook')}-cover.{kind if kind in ('jpg', 'png') else 'png'}"
    key = _digest({"format": COVER_FORMAT, "source": hashlib.sha256(cover.original).hexdigest()})
    out_dir = cfg.output.dir
    if (not force and old and old.get("output_key") == key and old.get("file") == name
            and _intact(out_dir, old, sigs)):
        return old
    files.write_atomic(out_dir / name, raster_cover(cover.original))
    return {**_file_record(out_dir, name), "output_key": key}


def remembered_cover(data: bytes, folder: Path) -> bytes:
    """fit_cover(data), kept in folder by the source's digest, the rule's version and ffmpeg's.

    Rasterizing an SVG cover (every Standard Ebooks EPUB has one) or fitting
    a big one takes from half a second to several seconds, in every build,
    no-op builds included. The kept file's name carries its own digest, so a
    damaged one is made again, never embedded; a cover fitted by an older
    rule has another name and is never used.
    """
    if _usable_as_is(data):
        return data  # nothing to remember
    rule = b"%d\0%s\0" % (COVER_FORMAT, audio.ffmpeg_version().encode())
    source = hashlib.sha256(rule + data).hexdigest()[:32]
    for path in sorted(folder.glob(f"{source}-*.jpg")) if folder.is_dir() else []:
        digest = path.name[len(source) + 1:-len(".jpg")]
        try:
            # The cache folder may come with an untrusted project: a link, a
            # device or a huge file there is never read.
            st = path.lstat()
            if not stat.S_ISREG(st.st_mode) or st.st_size > COVER_MAX_BYTES:
                continue
            kept = path.read_bytes()
        except OSError:
            continue
        if hashlib.sha256(kept).hexdigest()[:32] == digest:
            return kept
    fitted = fit_cover(data)
    name = f"{source}-{hashlib.sha256(fitted).hexdigest()[:32]}.jpg"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        files.write_atomic(folder / name, fitted)
    except (OSError, AudiobookError) as exc:  # a read-only cache still builds, only slower
        log.debug("cover not kept in %s: %s", folder, exc)
    return fitted


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR or a JPEG's SOF marker; None if not found."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    pos = 2
    while data[:2] == b"\xff\xd8" and pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[pos + 7:pos + 9], "big"), \
                int.from_bytes(data[pos + 5:pos + 7], "big")
        pos += 2 + length
    return None


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


# ------------------------------------------------------------------ the book


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


def book_chapters(parts: list[tuple[str, int]], rate: int) -> list[tuple[str, int, int]]:
    """(title, start_ms, end_ms) per chapter, from each chapter's AAC frame count.

    The joined stream keeps every chapter's AAC frames, each chapter's
    priming frame first; the m4b's edit list skips the first chapter's
    priming (see audio.encode_book), so chapter i's voice starts exactly at
    the sum of the frames before it. Rounding sample positions (not
    lengths) keeps every mark within half a millisecond.
    """
    marks = []
    offset = 0
    for title, frames in parts:
        marks.append((title, offset))
        offset += frames * audio.AAC_FRAME
    ends = [start for _, start in marks[1:]] + [max(0, offset - audio.AAC_PRIMING)]
    return [(title, _ms(start, rate), _ms(end, rate)) for (title, start), end in zip(marks, ends)]


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
        "chapters": [[e["output_key"], e["title"], e["aac"]["sha256"]] for e in entries],
        "tags": book_tags(cfg),
        "cover": cover_digest,
        "output": [cfg.output.m4b_bitrate, cfg.output.sample_rate],
        "ffmpeg": audio.ffmpeg_version(),
    })


def _book_entry(plan: Plan, entries: dict[int, dict], old: dict | None, cover: CoverFile,
                force: bool, errors: list, result: OutputReport,
                sigs: Signatures) -> dict | None:
    """The m4b's manifest entry, building the file when it is out of date."""
    cfg = plan.cfg
    result.book_written = False
    if "m4b" not in cfg.output.formats:
        return None
    old = old if isinstance(old, dict) else None
    current = _current_entries(plan, entries, cover.digest, sigs)
    if current is None or errors:
        if errors:
            why = "some chapters failed"
        elif len(plan.selected) < len(plan.chapters):
            why = (f"this build made only {len(plan.selected)} of {len(plan.chapters)} chapters "
                   "and the others have no current audio")
        else:
            why = "some chapters have no current audio"
        log.info("no m4b written: %s; build every chapter (`audiobook build`) to make it%s", why,
                 " (the old m4b is kept)" if old else "")
        return old
    name = book_file(cfg)
    key = book_output_key(plan, current, cover.digest)
    out = cfg.output.dir / name
    if (not force and old and old.get("output_key") == key and old.get("file") == name
            and _intact(cfg.output.dir, old, sigs)):
        return old
    marks = book_chapters([(e["title"], e["aac"]["frames"]) for e in current],
                          cfg.output.sample_rate)
    audio.encode_book([cfg.output.dir / e["aac"]["file"] for e in current], out,
                      cfg.output.sample_rate, ffmetadata(book_tags(cfg), marks), cover.path())
    result.book_written = True
    return {**_file_record(cfg.output.dir, name), "output_key": key,
            "duration_ms": marks[-1][2] if marks else 0,
            "chapters": [{"title": t, "start_ms": s, "end_ms": e} for t, s, e in marks]}


def _current_entries(plan: Plan, entries: dict[int, dict], cover_digest: str,
                     sigs: Signatures) -> list[dict] | None:
    """Every chapter's entry if all have current AAC streams on disk, else None.

    The m4b joins these streams; the read-along EPUB carries each as an .m4a.
    """
    out_dir = plan.cfg.output.dir
    current = []
    for cp in plan.chapters:
        e = entries.get(cp.index)
        record = e.get("aac") if e else None
        if (not e or e.get("output_key") != chapter_output_key(plan, cp, cover_digest)
                or not isinstance(record, dict) or not _intact(out_dir, record, sigs)):
            return None
        current.append(e)
    return current


def _remove_stale(out_dir: Path, previous: dict, entries: dict[int, dict],
                  wholes: list[dict | None]) -> None:
    """Delete files this book wrote earlier and no longer has (only those, unchanged).

    wholes: the book-wide outputs of this build (the m4b, the read-along EPUB, the cover file).
    """
    keep = {f["file"] for e in entries.values() for f in _entry_files(e)}
    keep |= {w["file"] for w in wholes if w}
    old = [f for e in previous.get("chapters", []) if isinstance(e, dict)
           for f in _entry_files(e)]
    old += [previous[k] for k in ("book", "readalong", "cover_file")
            if isinstance(previous.get(k), dict)]
    for record in old:
        name = record.get("file")
        if isinstance(name, str) and name not in keep:
            files.remove_owned(out_dir, name, record.get("sha256"))


def _readalong_entry(plan: Plan, entries: dict[int, dict], old: dict | None, cover: CoverFile,
                     force: bool, errors: list, sigs: Signatures) -> dict | None:
    """The read-along EPUB's manifest entry, writing the file when it is out of date.

    Its audio is each chapter's AAC stream (the m4b's parts) remuxed into an
    .m4a: AAC in MP4 is an EPUB 3 core media type, and at the m4b's bitrate
    the EPUB is about the m4b's size, where the 192k MP3s made it three times that.
    """
    cfg = plan.cfg
    if "epub" not in cfg.output.formats:
        return None
    old = old if isinstance(old, dict) else None
    current = _current_entries(plan, entries, cover.digest, sigs)
    if current is None or errors:
        log.info("no read-along epub written: not every chapter has current audio%s",
                 " (the old one is kept)" if old else "")
        return old
    from pipeline.readalong import BookInfo, ChapterText, Sentence, epub_bytes

    out_dir = cfg.output.dir
    name = f"{slugify(cfg.title, 'audiobook')}.epub"
    picture = (cover.cover.jpeg, "jpg") if cover.cover else None
    info = BookInfo(cfg.title, cfg.author, cfg.language, _book_identifier(cfg), picture,
                    cfg.narrator_name)
    key = _digest({"format": READALONG_FORMAT, "cover": cover.digest,
                   "info": [info.title, info.author, info.language, info.narrator],
                   "chapters": [[e["output_key"], e["title"], e["aac"]["sha256"]]
                                for e in current],
                   "ffmpeg": audio.ffmpeg_version()})
    if (not force and old and old.get("output_key") == key and old.get("file") == name
            and _intact(out_dir, old, sigs)):
        return old
    with contextlib.ExitStack() as stack:
        chapters = []
        for e in current:
            m4a = stack.enter_context(files.temporary(out_dir / HIDDEN_DIR, "m4a", ".m4a"))
            audio.encode_m4a(out_dir / e["aac"]["file"], m4a, cfg.output.sample_rate)
            chapters.append(ChapterText(
                e["index"], e["title"], m4a, e["duration_ms"],
                tuple(Sentence.from_json(x) for x in e.get("sentences", []))))
        files.write_atomic(out_dir / name, epub_bytes(info, chapters))
    return {**_file_record(out_dir, name), "output_key": key}


def _book_identifier(cfg: Config) -> str:
    """A stable identifier for the read-along EPUB: the same book gets the same one."""
    import uuid

    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'audiobook:{cfg.title}:{cfg.author}')}"


# ------------------------------------------------------------------ manifest, playlist


def _digest(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _manifest(plan: Plan, entries: dict[int, dict], book: dict | None) -> dict:
    chapters = [entries[i] for i in sorted(entries)]
    manifest = {
        "generator": f"{GENERATOR} {__version__}",
        "manifest_format": MANIFEST_FORMAT,
        "owner": owner_token(plan.cfg),
        "title": plan.cfg.title,
        "author": plan.cfg.author,
        "language": plan.cfg.language,
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


def recorded_files(cfg: Config) -> list[str]:
    """Every file the output folder's manifest names, the manifest and the playlist."""
    out_dir = cfg.output.dir
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            name = value.get("file")
            if isinstance(name, str) and value.get("sha256"):
                path = files.inside(out_dir, name)
                if path is not None:
                    found.append(str(path))
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    manifest = out_dir / "manifest.json"
    walk(_read_manifest(manifest))
    found.append(str(manifest))
    if (out_dir / "playlist.m3u").is_file():
        found.append(str(out_dir / "playlist.m3u"))
    return sorted(set(found))


def _read_manifest(path: Path) -> dict:
    if path.is_symlink():  # never ours: we replace files, we never write links
        return {}
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
