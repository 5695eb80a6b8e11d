"""`audiobook say`: one-off synthesis through the same segmenter and cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import audio
from pipeline.cache import SegmentCache, resolve_cache_dir
from pipeline.config import VOICE_CHECKS, Config
from pipeline.errors import InputError, Problem, ValidationError
from pipeline.lexicon import compile_lexicon
from pipeline.segment import Run, atoms_of_paragraph, segment_runs
from pipeline.sources.text import normalize
from pipeline.tts import backend_identity
from pipeline.tts.base import SynthesisRequest


def _voice(cfg: Config, settings: dict[str, Any], backend: str):
    from pipeline.casting import VoiceResolver

    problems = []
    parsed = {}
    for key, raw in settings.items():
        try:
            parsed[key] = VOICE_CHECKS[key](raw, None)
        except ValidationError as exc:
            problems.append(Problem("--" + key, None, None, str(exc)))
    if problems:
        raise InputError(problems)
    resolver = VoiceResolver.for_config(cfg, backend)
    try:
        voice = resolver.voice(resolver.base(parsed))
    except ValidationError as exc:
        raise InputError(Problem("--voice", None, None, str(exc))) from None
    return voice, resolver


def say(cfg: Config | None, text: str, out: Path, settings: dict[str, Any],
        backend: str | None = None) -> dict:
    suffix = out.suffix.lower()
    if suffix not in (".mp3", ".wav", ".m4a"):
        raise InputError(Problem(str(out), None, None, "use a .mp3, .wav or .m4a file name"))
    from pipeline.build import BuildResult, make_audio
    from pipeline.plan import key_function
    from pipeline.progress import LogProgress

    cfg = cfg or Config.default(Path.cwd())
    backend = backend or cfg.backend
    voice, resolver = _voice(cfg, settings, backend)
    identity = backend_identity(backend)
    # The book's order: normalize, then the user's lexicon (see pipeline/lexicon.py).
    body = compile_lexicon(cfg.lexicon)(normalize(text))
    if not body:
        raise InputError(Problem("TEXT", None, None, "is empty"))
    max_chars = cfg.max_chars
    cache_dir = resolve_cache_dir(cfg.cache_dir)
    result = BuildResult()
    with SegmentCache(cache_dir) as store:
        genders = resolver.genders()
        key_for = key_function(backend, identity, genders)
        run = Run(tuple(atoms_of_paragraph(body, voice.language, max_chars)), voice, "paragraph")
        segments = segment_runs([run], max_chars, key_for, frozenset(store.keys()))
        missing = list({s.key: s for s in segments if s.key not in store}.values())
        requests = [SynthesisRequest(s.key, s.text, s.voice, "say") for s in missing]
        if requests:
            make_audio(backend, identity, genders, requests, store, 4, LogProgress(), result)
        rate = cfg.output.sample_rate
        pauses = cfg.pauses
        parts: list = []
        for k, seg in enumerate(segments):
            stored = store.get(seg.key)
            parts.append(audio.trim(audio.decode(stored.data, stored.format, rate)))
            if k < len(segments) - 1:
                parts.append(pauses.ms(seg.pause_after))
        out.parent.mkdir(parents=True, exist_ok=True)
        stitched = audio.stitch(parts, rate, out.parent)
        try:
            audio.encode_file(stitched, out, cfg.output.bitrate)
        finally:
            stitched.path.unlink(missing_ok=True)
    return {"segments": len(segments), "credits_spent": result.credits_spent}
