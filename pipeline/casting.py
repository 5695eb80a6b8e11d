"""Casting: narrator, chapter overrides, cast names and inline switches -> voices.

A chapter's blocks become runs of one voice between hard boundaries
(headings, scene breaks, switches), which is what the segmenter packs.

The switch rule: a switch naming `voice` starts from the chapter's narrator
settings plus that voice's cast settings plus whatever else it names; a
switch without `voice` changes the current settings; `<!-- narrator -->`
resets to the chapter's settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.book import Block, Chapter, Voice
from pipeline.config import VOICE_CHECKS, Config
from pipeline.errors import Problem, ValidationError
from pipeline.segment import CUT_HEADING, Atom, Run, atoms_of_paragraph
from pipeline.voices import VoiceInfo, find_voice, load_library, suggest


@dataclass
class VoiceResolver:
    """Turns narrator, chapter overrides, cast names and switches into Voices."""

    cfg: Config
    library: list[VoiceInfo] | None
    backend: str = "local"  # the backend that will speak (build/say --backend wins over the config)
    _offline: frozenset[int] | None = field(default=None, repr=False)

    @classmethod
    def for_config(cls, cfg: Config, backend: str | None = None) -> VoiceResolver:
        library = load_library(cfg.voices, str(cfg.voices)) if cfg.voices else None
        return cls(cfg, library, backend or cfg.backend)

    def base(self, overrides: dict[str, Any]) -> dict[str, Any]:
        settings = {"language": self.cfg.language, **self.cfg.narrator}
        return self.apply(settings, overrides)

    def apply(self, current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        out = dict(current)
        voice = changes.get("voice")
        if isinstance(voice, str) and voice in self.cfg.cast:
            out.update(self.cfg.cast[voice])
        out.update({k: v for k, v in changes.items() if not (k == "voice" and v in self.cfg.cast)})
        return out

    def voice(self, settings: dict[str, Any]) -> Voice:
        """The Voice of resolved settings; raises ValidationError for an unknown voice."""
        ref = settings["voice"]
        info = find_voice(self.library, ref) if self.library is not None else None
        if self.library is not None and info is None:
            raise ValidationError(f"{ref!r} is not in the voice library{suggest(self.library, ref)}")
        if info is not None:
            ref = info.id
        if not isinstance(ref, int):
            known = ", ".join(self.cfg.cast) or "none"
            raise ValidationError(f"{ref!r} is not a voice id or a cast name (cast: {known}); "
                                  "use a number or give a voice library in `voices:`")
        offline = self.offline_ids()
        if offline is not None and ref not in offline:
            nearest = sorted(offline, key=lambda v: (abs(v - ref), v))[:3]
            raise ValidationError(f"{ref} is not a voice of the offline backend; did you mean "
                                  + " or ".join(str(v) for v in nearest)
                                  + "? (run `audiobook voices --offline`, or give a voice "
                                  "library in `voices:`)")
        return Voice(ref, int(settings.get("emotion", 0)), float(settings.get("speed", 1.0)),
                     settings.get("language", self.cfg.language))

    def offline_ids(self) -> frozenset[int] | None:
        """The voice ids the local backend knows, when it is the judge of voice ids.

        That is: backend local and no voice library. None when the engine does
        not list its voices (tts.local.offline_voices() arrives with the engine
        branch) or lists none.
        """
        if self.library is not None or self.backend != "local":
            return None
        if self._offline is None:
            self._offline = _offline_voice_ids()
        return self._offline or None

    def problems(self) -> list[Problem]:
        """Narrator and cast voices that do not resolve (unknown ids or names)."""
        found = []
        named = [("narrator", self.cfg.narrator)] + [(f"cast.{n}", c) for n, c in self.cfg.cast.items()]
        for key, settings in named:
            if "voice" not in settings:
                continue
            try:
                self.voice(self.base(settings) if key != "narrator" else self.base({}))
            except ValidationError as exc:
                found.append(Problem(self.cfg.display, self.cfg.line_of(f"{key}.voice"),
                                     f"{key}.voice", str(exc)))
        return found

    def genders(self) -> dict[int, int]:
        return {v.id: v.gender for v in self.library or [] if v.gender is not None}




def chapter_runs(chapter: Chapter, cfg: Config, resolver: VoiceResolver, lexicon,
                 problems: list[Problem]) -> list[Run]:
    """A chapter's blocks as runs of one voice; only a voice switch ends a run.

    Headings and scene breaks stay inside a run (a request may cross them):
    the atom before one carries its pause, which the stitcher lays in at the
    aligned boundary. Each sentence is transformed (lexicon) on its own, so
    its atoms remember the text as written.
    """
    entry = cfg.chapters[chapter.entry]
    base = resolver.base(entry.overrides)
    current = base
    try:
        voice = resolver.voice(current)
    except ValidationError as exc:
        key = f"chapters[{entry.index}].voice" if "voice" in entry.overrides else "narrator.voice"
        problems.append(Problem(cfg.display, cfg.line_of(key) or entry.line, key, str(exc)))
        return []
    runs: list[Run] = []
    atoms: list[Atom] = []
    normalize = entry.normalize if entry.normalize is not None else cfg.normalize

    def spoken(rewrite: Callable[[str], str], language: str, heading: bool = False
               ) -> Callable[[str], str]:
        """What a sentence becomes before it is sent: the user's lexicon, then spoken form.

        The lexicon runs first so the user's entries win over the normalizer.
        """
        if not normalize:
            return rewrite
        # Here: its tables take a while to load, and a plan read from the memo never needs them.
        from pipeline.spoken import spoken_form

        return lambda text: spoken_form(rewrite(text), language, heading=heading)

    def close(pause: str) -> None:
        if atoms:
            last = atoms[-1].pause
            runs.append(Run(tuple(atoms), voice, last if last in ("heading", "scene") else pause,
                            line=atoms[0].line))
            atoms.clear()

    def boundary(pause: str) -> None:
        """The place after the last atom so far becomes a heading or scene boundary.

        A scene break followed by a heading keeps the scene's pause, the larger break.
        """
        if atoms:
            if atoms[-1].pause == "scene":
                pause = "scene"
            atoms[-1] = replace(atoms[-1], cut=CUT_HEADING, pause=pause)
        elif runs and pause == "scene":
            runs[-1] = _with_pause(runs[-1], pause)

    for k, block in enumerate(chapter.blocks):
        if block.kind == "paragraph":
            atoms.extend(atoms_of_paragraph(block.text, voice.language, cfg.max_chars,
                                            spoken(lexicon, voice.language), block=k,
                                            line=block.line))
        elif block.kind == "heading":
            boundary("heading")
            heading = atoms_of_paragraph(block.text, voice.language, cfg.max_chars,
                                         _stopped_by(spoken(lexicon, voice.language, heading=True)),
                                         block=k, kind="heading", line=block.line)
            if heading:
                heading[-1] = replace(heading[-1], cut=CUT_HEADING, pause="heading")
                atoms.extend(heading)
        elif block.kind == "scene":
            boundary("scene")
        elif block.kind == "switch":
            close("paragraph")
            changes, bad = _switch_settings(block, chapter, resolver)
            problems += bad
            if not bad:
                current = base if not block.settings else (
                    resolver.apply(base, changes) if "voice" in changes
                    else resolver.apply(current, changes))
                try:
                    voice = resolver.voice(current)
                except ValidationError as exc:
                    problems.append(Problem(chapter.source, block.line, "voice", str(exc)))
    close("paragraph")
    return runs


def _stopped_by(rewrite: Callable[[str], str]) -> Callable[[str], str]:
    """A heading's rewrite that ends it with a stop, so every voice pauses there."""
    def stopped(text: str) -> str:
        body = rewrite(text).rstrip()
        return body if not body or body[-1] in _STOPS else body + "."

    return stopped


_STOPS = set(".!?…:;。！？")


def _offline_voice_ids() -> frozenset[int]:
    """The ids of the offline voice table (tts.local.offline_voices records)."""
    from pipeline.tts.local import offline_voices

    return frozenset(int(v["id"]) for v in offline_voices())


def language_warnings(resolver: VoiceResolver, chapter: Chapter, runs: list[Run]) -> list[Problem]:
    """A voice whose library language differs from the language it is asked to read."""
    if resolver.library is None:
        return []
    by_id = {v.id: v for v in resolver.library}
    out = []
    for run in runs:
        info = by_id.get(run.voice.voice)
        if info and info.language and info.language not in (run.voice.language, "all"):
            out.append(Problem(chapter.source, run.line, "voice",
                               f"voice {info.id} ({info.display_name}) speaks {info.language!r} "
                               f"but reads {run.voice.language!r} text here", warning=True))
    return out


def _with_pause(run: Run, pause: str) -> Run:
    return Run(run.atoms, run.voice, pause, run.line)


def _switch_settings(block: Block, chapter: Chapter, resolver: VoiceResolver):
    changes: dict[str, Any] = {}
    problems = []
    for key, raw in block.settings:
        try:
            value, message = VOICE_CHECKS[key](raw, None), None
        except ValidationError as exc:
            value, message = None, str(exc)
        if key == "voice" and isinstance(value, str) and value not in resolver.cfg.cast \
                and resolver.library is None:
            message = (f"{value!r} is not in cast: add it under `cast:` in "
                       f"{resolver.cfg.display} or use a voice id")
        if message:
            problems.append(Problem(chapter.source, block.line, key, message))
        else:
            changes[key] = value
    return changes, problems
