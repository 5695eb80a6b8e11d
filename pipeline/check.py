"""`audiobook check`: every problem of config, sources and voices at once."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pipeline import audio
from pipeline.casting import VoiceResolver, chapter_runs, language_warnings
from pipeline.config import Config
from pipeline.errors import InputError, Problem
from pipeline.lexicon import compile_lexicon
from pipeline.loudness import Target, failures, loudness_target
from pipeline.sources import load_chapters, source_warnings


def check_project(cfg: Config) -> list[Problem]:
    """Problems found (warnings included); config errors were raised on load."""
    problems: list[Problem] = []
    if cfg.backend == "audiocleaner" and not os.environ.get("AUDIOCLEANER_API_KEY"):
        problems.append(Problem(cfg.display, cfg.line_of("backend"), "backend",
                                "audiocleaner needs the AUDIOCLEANER_API_KEY environment variable"))
    problems += source_warnings(cfg)
    try:
        resolver = VoiceResolver.for_config(cfg)
        chapters = load_chapters(cfg)
    except InputError as exc:
        return problems + exc.problems
    problems += resolver.problems()
    lexicon = compile_lexicon(cfg.lexicon)
    for chapter in chapters:
        runs = chapter_runs(chapter, cfg, resolver, lexicon, problems)
        problems += language_warnings(resolver, chapter, runs)
    return _unique(problems)


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


# ------------------------------------------------------------------ check --audio


@dataclass(frozen=True)
class FileReport:
    """One built file measured against the loudness target."""

    name: str
    levels: audio.Levels
    rate: int
    kbps: int
    cbr: bool
    lufs: float | None
    failures: tuple[str, ...]


@dataclass(frozen=True)
class AudioReport:
    """Every built file's measures; `files` is empty when nothing is built yet."""

    directory: Path
    target: Target
    files: list[FileReport]

    @property
    def passed(self) -> bool:
        return bool(self.files) and all(not r.failures for r in self.files)


def audio_report(cfg: Config) -> AudioReport:
    """Measure every output file the manifest lists (chapter MP3s and the M4B)."""
    out_dir = cfg.output.dir
    names = _built_files(out_dir)
    target = loudness_target(cfg)
    if not names:
        return AudioReport(out_dir, target, [])
    workers = max(1, min(len(names), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reports = list(pool.map(lambda n: measure_output(out_dir, n, target, cfg), names))
    return AudioReport(out_dir, target, reports)


def _built_files(out_dir: Path) -> list[str]:
    from pipeline.files import inside

    try:
        manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(manifest, dict):
        return []
    names = [e["file"] for e in manifest.get("chapters", []) if isinstance(e, dict)
             and isinstance(e.get("file"), str) and e["file"].endswith(".mp3")
             and not e["file"].startswith(".")]
    if isinstance(manifest.get("book"), dict) and isinstance(manifest["book"].get("file"), str):
        names.append(manifest["book"]["file"])
    return [n for n in names if (path := inside(out_dir, n)) is not None and path.is_file()]


def measure_output(out_dir: Path, name: str, target: Target, cfg: Config) -> FileReport:
    path = out_dir / name
    rate, kbps, cbr = _stream_info(path)
    levels = audio.file_levels(path, rate or cfg.output.sample_rate)
    lufs = audio.integrated_loudness(path, rate, raw=False) if target.kind == "lufs" else None
    mp3 = path.suffix.lower() == ".mp3"
    bad = failures(target, levels, rate, kbps, cbr, lufs, mp3)
    return FileReport(name, levels, rate, kbps, cbr, lufs, tuple(bad))


def _stream_info(path: Path) -> tuple[int, int, bool]:
    """(sample rate, kbps, constant bitrate) read from the file's headers."""
    import mutagen

    info = mutagen.File(path).info
    mode = getattr(info, "bitrate_mode", None)
    # mutagen's BitrateMode prints as "BitrateMode.CBR"; UNKNOWN means no Xing/Info header.
    cbr = mode is None or str(mode).rsplit(".", 1)[-1] in ("CBR", "UNKNOWN")
    return int(info.sample_rate), round(info.bitrate / 1000), cbr
