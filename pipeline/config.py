"""audiobook.yml: the schema, loading, and validation with line numbers.

The schema is declared once, in this file (MkDocs' config_options style): every
key is an `Option` with its default, a validator that returns the parsed value
or raises `ValidationError`, and a one-line doc. Sub-configs (pauses, output,
segments, cache, credits) are frozen dataclasses whose fields carry their
Option, so each default exists in one place; the voice settings of narrator,
cast, chapters, inline switches and `say` share `VOICE_CHECKS`. Rules that
span keys (ACX's MP3 format, "select only for an EPUB") are post-validation
hooks of their section.

Validation collects every problem (file:line, dotted key, the fix, a "did you
mean" where one fits) before any work starts.
"""

from __future__ import annotations

import datetime
import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline.book import EMOTION_ALIASES, EMOTION_NAMES, EMOTIONS, LANGUAGES, SPEED_MAX, SPEED_MIN
from pipeline.errors import ConfigError, Problem, ValidationError
from pipeline.ledger import DEFAULT_CACHE_DIR, resolve_in
from pipeline.lexicon import is_pattern_key, pattern_problem
from pipeline.sources.rules import image_kind

BACKENDS = ("local", "audiocleaner")
FORMATS = ("mp3", "m4b", "vtt", "epub")
DEFAULT_FORMATS = ("mp3", "m4b")
SAMPLE_RATES = (22050, 24000, 32000, 44100, 48000)
# A key that names a credential, in any spelling: api_key, apiKey, api-key,
# "API key", x-api-key, AUDIOCLEANER_API_KEY, token, access_token, secret,
# aws_secret_access_key, access_key_id, ... (compared with case and separators removed).
_SECRET_KEY = re.compile(r"^(\w*apikey|(api|access|auth|bearer)?token|\w*secret\w*|"
                         r"\w*accesskey(id)?|password)$")
_SECRET_MESSAGE = ("an API key must not be written in the config; delete this line and set the "
                   "AUDIOCLEANER_API_KEY environment variable instead")
_BITRATE = re.compile(r"^(\d{2,3})k$")
# s3://BUCKET[/PREFIX]: bucket names as S3 allows them; no user:secret@.
_S3_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/[^\s?#@]*)?$")
# The most values one document may expand to through YAML aliases.
NODE_BUDGET = 1_000_000

# Language names and region tags people write, for "did you mean".
LANGUAGE_NAMES = {
    "english": "en", "chinese": "zh", "mandarin": "zh", "cantonese": "zh_yue", "yue": "zh_yue",
    "arabic": "ar", "russian": "ru", "spanish": "es", "french": "fr", "portuguese": "pt",
    "german": "de", "korean": "ko", "japanese": "ja", "jp": "ja", "kr": "ko", "cn": "zh",
}
# Emotion words people write, for "did you mean" (the library's own
# spellings, book.EMOTION_ALIASES, are accepted as they are).
EMOTION_WORDS = {
    "default": "auto", "normal": "auto", "joy": "happy", "joyful": "happy",
    "mad": "angry", "furious": "angry", "sadness": "sad", "unhappy": "sad",
    "fear": "afraid", "fearful": "afraid", "scared": "afraid", "disgust": "disgusted",
    "melancholy": "melancholic", "surprise": "surprised", "relaxed": "calm", "peaceful": "calm",
}


# ---------------------------------------------------------------- the declaration


@dataclass(frozen=True)
class Option:
    """One key: its default (in the file's own form), its validator, its doc."""

    default: Any
    check: Callable[[Any, At], Any]
    doc: str
    null: Any = None  # what an explicit `key: ~` means; None: the default
    required: bool = False  # run the check even when the key is absent (it says what is missing)


def option(default: Any, check: Callable[[Any, At], Any], doc: str, null: Any = None) -> Any:
    """A dataclass field declared by its Option.

    The default is written as in a file ("build", "acx"); the loader parses it
    like any value, so a sub-config is built by the loader, not by calling
    the dataclass bare (Pauses() excepted: its defaults need no parsing).
    """
    return field(default=default, metadata={"option": Option(default, check, doc, null)})


def options_of(cls: type) -> dict[str, Option]:
    return {f.name: f.metadata["option"] for f in fields(cls) if "option" in f.metadata}


@dataclass
class At:
    """Where a validator is: the collector, the dotted key, the config's folder."""

    checker: _Checker
    key: str

    @property
    def root(self) -> Path:
        return self.checker.root

    def child(self, key: str | int) -> At:
        if isinstance(key, int):
            return At(self.checker, f"{self.key}[{key}]")
        return At(self.checker, f"{self.key}.{key}" if self.key else key)

    def add(self, message: str, warning: bool = False) -> None:
        self.checker.add(self.key, message, warning)

    def spend(self, count: int) -> None:
        """Count converted values against the document's budget (aliases can multiply them)."""
        self.checker.nodes += count
        if self.checker.nodes > NODE_BUDGET:
            raise ValidationError(f"the file expands to more than {NODE_BUDGET:,} values "
                                  "(through YAML aliases?); write this out without them")


def _no_context() -> At:
    return At(_Checker("", {}), "")


# ---------------------------------------------------------------- validators


def _kind(value: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "text",
            list: "a list", dict: "a mapping", type(None): "empty"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    """A value for a message: short, and never the expansion of a nested structure."""
    if isinstance(value, (str, int, float)) or value is None:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return _kind(value)


def _did_you_mean(word: str, choices: Iterable[Any], otherwise: str = "",
                  aliases: dict[str, str] | None = None) -> str:
    word = word.strip().lower()
    if aliases and word in aliases:
        return f"; did you mean {aliases[word]!r}?"
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else otherwise


def check_text(value: Any, at: At | None = None) -> str | None:
    """Free text: text, a number (a title like 1984) or a date (a year: 2024-05-01)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float, datetime.date)):
        raise ValidationError(f"must be text, not {_kind(value)}")
    return str(value)


def check_bool(value: Any, at: At | None = None) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"must be true or false, not {_show(value)}")
    return value


def check_backend(value: Any, at: At | None = None) -> str:
    if value not in BACKENDS:
        raise ValidationError(f"{_show(value)} is not a backend" + _did_you_mean(
            value if isinstance(value, str) else "", BACKENDS, "; use local or audiocleaner"))
    return str(value)


def check_emotion(value: Any, at: At | None = None) -> int:
    """An emotion id from a name, a library spelling ("cheerful") or an id."""
    if isinstance(value, bool):
        raise ValidationError("must be an emotion name or id, not true/false")
    if isinstance(value, int):
        if value in EMOTION_NAMES:
            return value
        raise ValidationError(f"{value} is not an emotion id; use 0 to 8 ({', '.join(EMOTIONS)})")
    if isinstance(value, str):
        name = value.strip().lower()
        if name.isdigit():
            return check_emotion(int(name))
        name = EMOTION_ALIASES.get(name, name)
        if name in EMOTIONS:
            return EMOTIONS[name]
        raise ValidationError(f"{_show(value)} is not an emotion" + _did_you_mean(
            name, EMOTIONS, "; use one of " + ", ".join(EMOTIONS), EMOTION_WORDS))
    raise ValidationError(f"must be an emotion name or id, not {_kind(value)}")


def check_speed(value: Any, at: At | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValidationError(f"must be a number from {SPEED_MIN} to {SPEED_MAX}, not {_kind(value)}")
    try:
        speed = float(value)
    except ValueError:
        raise ValidationError(f"{_show(value)} is not a number; use {SPEED_MIN} to {SPEED_MAX}") from None
    if not SPEED_MIN <= speed <= SPEED_MAX:
        raise ValidationError(f"{speed:g} is out of range; use {SPEED_MIN} to {SPEED_MAX}")
    return speed


def check_language(value: Any, at: At | None = None) -> str:
    if isinstance(value, str) and value in LANGUAGES:
        return value
    if not isinstance(value, str):
        raise ValidationError(f"must be a language key ({', '.join(LANGUAGES)}), not {_kind(value)}")
    # "en-US", "EN", "pt_BR": the region is not part of the key.
    aliases = dict(LANGUAGE_NAMES)
    word = value.strip().lower().replace("-", "_")
    base = word if word in LANGUAGES else word.split("_")[0]
    if base in LANGUAGES:
        aliases[value.strip().lower()] = base
    raise ValidationError(f"{_show(value)} is not a language key" + _did_you_mean(
        value, LANGUAGES, "; use one of " + ", ".join(LANGUAGES), aliases))


def check_voice_id(value: Any, at: At | None = None) -> int | str:
    if isinstance(value, bool) or value is None:
        raise ValidationError("must be a voice id (a number) or a voice name")
    if isinstance(value, int):
        if value > 0:
            return value
        raise ValidationError(f"{value} is not a voice id")
    if isinstance(value, str) and value.strip():
        return int(value) if value.strip().isdigit() else value.strip()
    raise ValidationError(f"must be a voice id or name, not {_kind(value)}")


# The voice settings: one table for narrator, cast, chapters, inline switches
# and `say` (each raises ValidationError).
VOICE_CHECKS: dict[str, Callable[[Any, At | None], Any]] = {
    "voice": check_voice_id,
    "emotion": check_emotion,
    "speed": check_speed,
    "language": check_language,
}
VOICE_KEYS = {
    "voice": "a voice id (or a name from the voice library, or a cast name)",
    "emotion": "an emotion name or id: " + ", ".join(f"{k}={v}" for k, v in EMOTIONS.items()),
    "speed": f"speech speed, {SPEED_MIN} to {SPEED_MAX}",
    "language": "a language key of the API",
}
# The narrator's defaults, as written in a file (the language defaults to the book's).
NARRATOR_DEFAULTS: dict[str, Any] = {"voice": 2072, "emotion": "auto", "speed": 1.0}


def _int_in(low: int, high: int, what: str) -> Callable[[Any, At], int]:
    def check(value: Any, at: At) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValidationError(f"must be {what}, {low} to {high}, not {_show(value)}")
        return value
    return check


_check_ms = _int_in(0, 60000, "a whole number of milliseconds")


def _check_max_chars(value: Any, at: At) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 20 <= value <= 100000:
        raise ValidationError(f"must be a whole number from 20 to 100000, not {_show(value)}")
    return value


def check_bitrate(value: Any, at: At | None = None) -> str:
    m = _BITRATE.match(value) if isinstance(value, str) else None
    if not m or not 32 <= int(m.group(1)) <= 320:
        raise ValidationError(f"{_show(value)} is not a bitrate; use e.g. 128k or 192k (32k to 320k)")
    return str(value)


def _check_sample_rate(value: Any, at: At) -> int:
    if isinstance(value, bool) or value not in SAMPLE_RATES:
        raise ValidationError(f"{_show(value)} is not supported; use 44100 "
                              "(or 22050, 24000, 32000, 48000)")
    return int(value)


def _check_formats(value: Any, at: At) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValidationError("must be a list with mp3, m4b or both (vtt and epub may be added)")
    at.spend(len(value))
    bad = [f for f in value if f not in FORMATS]
    if bad:
        f = bad[0]
        raise ValidationError(f"{_show(f)} is not a format" + _did_you_mean(
            f if isinstance(f, str) else "", FORMATS, "; use " + ", ".join(FORMATS)))
    return tuple(f for f in FORMATS if f in value)


@dataclass(frozen=True)
class Loudness:
    """The parsed `output.loudness`: a rule (acx, none) or a target level (rms dB or LUFS)."""

    kind: Literal["acx", "rms", "lufs", "none"]
    level: float | None = None

    def __str__(self) -> str:
        # The form older builds wrote into their fingerprints: keep it stable.
        if self.kind == "rms":
            return f"rms:{self.level:g}"
        return str(self.level) if self.kind == "lufs" else self.kind


def parse_loudness(value: Any, at: At | None = None) -> Loudness:
    """acx | none | -18 (LUFS) | '-18 LUFS' | '-20 dB' (RMS, as ACX measures)."""
    if value is None:
        return Loudness("none")
    if isinstance(value, bool):
        raise ValidationError("must be acx, none, or a target such as -18 or '-20 dB'")
    if isinstance(value, (int, float)):
        if -40 <= value <= -5:
            return Loudness("lufs", float(value))
        raise ValidationError(f"{value} LUFS is out of range (-40 to -5)")
    if not isinstance(value, str):
        raise ValidationError(f"must be acx, none, or a target such as -18 or '-20 dB', "
                              f"not {_kind(value)}")
    text = value.strip().lower()
    if text == "acx":
        return Loudness("acx")
    if text == "none":
        return Loudness("none")
    match = re.fullmatch(r"(-\d+(?:\.\d+)?)\s*(lufs|db|dbfs|db rms)?", text)
    if not match:
        raise ValidationError(f"{value!r} is not a loudness target; use acx, none, -18 (LUFS) "
                              "or '-20 dB' (RMS)")
    number = float(match.group(1))
    if not -40 <= number <= -5:
        raise ValidationError(f"{number:g} is out of range (-40 to -5)")
    if match.group(2) and match.group(2).startswith("db"):
        return Loudness("rms", number)
    return Loudness("lufs", number)


def _resolve(root: Path, value: str) -> Path:
    """A path from the config: relative to the config's folder, ~ for home.

    The one rule, shared with the build ledger's front door (it finds the
    cache folder before this module is imported).
    """
    return Path(resolve_in(root, value))


def _existing_file(what: str) -> Callable[[Any, At], Path | None]:
    def check(value: Any, at: At) -> Path | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ValidationError(f"must be a file path, not {_kind(value)}")
        path = _resolve(at.root, value)
        if not path.exists():
            raise ValidationError(f"{value}: no such file (paths are relative to the config's "
                                  f"folder, {at.root})")
        if path.is_dir():
            raise ValidationError(f"{value} is a folder; name {what}")
        return path
    return check


def _check_cover(value: Any, at: At) -> Path | None:
    path = _existing_file("a JPEG, PNG, WebP, GIF or SVG image")(value, at)
    if path is None:
        return None
    try:
        with path.open("rb") as f:
            head = f.read(1024)
    except OSError as exc:
        raise ValidationError(f"{value}: cannot read: {exc.strerror}") from None
    if image_kind(head) is None:  # the one sniffer, shared with the EPUB reader
        raise ValidationError(f"{value} is not an image (its first bytes are not JPEG, PNG, "
                              "WebP, GIF or SVG); name the cover image file")
    return path


def _folder_path(value: Any, at: At) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"must be a folder path, not {_kind(value)}")
    return _resolve(at.root, value)


def _check_output_dir(value: Any, at: At) -> Path:
    """A folder the build may fill: not /, not above the book, not a file or a device."""
    path = _folder_path(value, at)
    # A build removes leftovers in its output folder: never let that be / or above the book.
    if path == Path(path.anchor) or path in at.root.parents:
        where = "the root folder" if path == Path(path.anchor) else "a folder above the book"
        raise ValidationError(f"{value} is {where}; outputs need a folder of their own, e.g. build")
    if path.exists() and not path.is_dir():
        raise ValidationError(f"{value} exists and is not a folder; name a folder, e.g. build")
    return path


def _check_cache_dir(value: Any, at: At) -> Path:
    path = _folder_path(value, at)
    if path.exists() and not path.is_dir():
        raise ValidationError(f"{value} exists and is not a folder; name a folder for the cache")
    return path


def check_remote(value: Any, at: At | None = None) -> str | None:
    """s3://BUCKET/PREFIX; credentials come from the environment, never from the file."""
    if value is None:
        return None
    if not isinstance(value, str) or not _S3_URL.match(value.strip()):
        hint = ("; credentials never go in the file: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or a profile) instead") if isinstance(value, str) and "@" in value else ""
        raise ValidationError(f"{_show(value)} is not a remote cache; use s3://BUCKET/PREFIX{hint}")
    return value.strip().rstrip("/")


def _check_lexicon(value: Any, at: At) -> dict[str, str]:
    """word -> how to say it (a word may be /regex/)."""
    out: dict[str, str] = {}
    for word, say in _mapping(value, at).items():
        where = at.child(str(word)) if at.key else At(at.checker, str(word))
        if not isinstance(word, (str, int)) or isinstance(word, bool) or not str(word).strip():
            where.add("each entry must be word: how to say it, and the word must be text")
        elif isinstance(say, bool) or not isinstance(say, (str, int, float)):
            where.add(f"must be how to say the word (text), not {_kind(say)}")
        elif is_pattern_key(str(word)) and (problem := pattern_problem(str(word))):
            where.add(problem)
        else:
            word = str(word)
            out[word if is_pattern_key(word) else " ".join(word.split())] = str(say)
    return out


def _mapping(value: Any, at: At) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(f"must be a mapping of keys to values, not {_kind(value)}")
    at.spend(len(value))
    return value


# ---------------------------------------------------------------- sub-configs


@dataclass(frozen=True)
class Pauses:
    paragraph_ms: int = option(600, _check_ms, "where a segment ends at a paragraph end")
    heading_ms: int = option(1200, _check_ms, "after a heading, and before one")
    scene_ms: int = option(1500, _check_ms, "at a scene break")
    chapter_head_ms: int = option(750, _check_ms, "room tone before the chapter's first words")
    chapter_tail_ms: int = option(2500, _check_ms, "room tone after its last words")
    sentence_ms: int = option(350, _check_ms,
                              "where a segment ends inside a paragraph, at a sentence end")
    line_ms: int = option(400, _check_ms, "at a verse line break that ends a segment")
    clause_ms: int = option(120, _check_ms, "where a sentence too long for one request is cut")

    def ms(self, kind: str) -> int:
        return getattr(self, f"{kind}_ms")


@dataclass(frozen=True)
class Output:
    dir: Path = option("build", _check_output_dir, "where outputs go")
    formats: tuple[str, ...] = option(
        DEFAULT_FORMATS, _check_formats,
        "any of mp3, m4b, vtt, epub (default mp3 and m4b); without mp3 the chapters' audio is "
        "only their AAC in <dir>/.chapters")
    bitrate: str = option("192k", check_bitrate, "the chapter MP3s' bitrate, e.g. 192k")
    m4b_bitrate: str = option("64k", check_bitrate,
                              "the AAC bitrate of the M4B and the read-along EPUB, e.g. 64k")
    sample_rate: int = option(44100, _check_sample_rate, "output sample rate in Hz")
    loudness: Loudness = option("acx", parse_loudness,
                                "acx, none, or a target such as -18 (LUFS) or '-20 dB' (RMS)",
                                null="none")
    cover_file: bool = option(False, check_bool,
                              "also write the cover full size, as given (an SVG, WebP or GIF as "
                              "PNG), to <book-slug>-cover.jpg or .png, for a store")


@dataclass(frozen=True)
class Segments:
    max_chars: int = option(1000, _check_max_chars, "the longest text one request may carry")


@dataclass(frozen=True)
class Cache:
    dir: Path = option(DEFAULT_CACHE_DIR, _check_cache_dir,
                       "where segment audio is kept between builds")
    remote: str | None = option(None, check_remote,
                                "a shared cache tier, s3://BUCKET/PREFIX (credentials from the "
                                "environment; AUDIOBOOK_REMOTE_CACHE wins)")


@dataclass(frozen=True)
class Credits:
    opening: bool = option(False, check_bool, "read the opening credits (title, author, narrator)")
    closing: bool = option(False, check_bool, "read the closing credits")


def _acx_needs(values: dict[str, Any], at: At) -> None:
    """ACX's MP3 format: 192k or more at 44100 Hz (the M4B's bitrate is not ACX's)."""
    if values["loudness"].kind != "acx":
        return
    m = _BITRATE.match(values["bitrate"])
    if m and int(m.group(1)) < 192:
        at.child("bitrate").add(f"ACX needs 192k or more, not {values['bitrate']}; raise it "
                                "or set loudness: none")
    if values["sample_rate"] != 44100:
        at.child("sample_rate").add("ACX needs 44100 Hz; set 44100 or loudness: none")


Hook = Callable[[dict[str, Any], At], None]


def section(cls: type, hooks: tuple[Hook, ...] = ()) -> Callable[[Any, At], Any]:
    """A validator for a mapping declared by a dataclass of Options."""
    def check(value: Any, at: At) -> Any:
        values = at.checker.validate(_mapping(value, at), options_of(cls), at)
        for hook in hooks:
            hook(values, at)
        return cls(**values)
    return check


def _voice_section(defaults: dict[str, Any]) -> Callable[[Any, At], dict[str, Any]]:
    """Voice settings: the keys given (plus `defaults`), parsed by VOICE_CHECKS."""
    def check(value: Any, at: At) -> dict[str, Any]:
        raw = _mapping(value, at)
        schema = {k: Option(defaults.get(k), VOICE_CHECKS[k], doc) for k, doc in VOICE_KEYS.items()}
        values = at.checker.validate(raw, schema, at)
        return {k: v for k, v in values.items() if v is not None}
    return check


def _check_cast(value: Any, at: At) -> dict[str, dict[str, Any]]:
    cast = {}
    settings_of = _voice_section({})
    for name, settings in _mapping(value, at).items():
        if is_secret_key(name):
            continue  # reported by _secret_keys
        if isinstance(settings, (int, str)) and not isinstance(settings, bool):
            settings = {"voice": settings}
        try:
            cast[str(name)] = settings_of(settings, at.child(str(name)))
        except ValidationError as exc:
            at.child(str(name)).add(str(exc))
    return cast


# ---------------------------------------------------------------- chapters


@dataclass(frozen=True)
class ChapterEntry:
    source: Path
    display: str  # the source as written in the config
    index: int  # 0-based position in chapters
    line: int | None
    title: str | None = None
    select: tuple[str, ...] = ()
    include_matter: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    config_display: str = "audiobook.yml"  # the config file, for errors about this entry
    normalize: bool | None = None  # None: the book's `normalize`


def _check_source(value: Any, at: At) -> Path:
    path = _existing_file("a Markdown or EPUB file")(value, at)
    if path is None:
        raise ValidationError("has no source; add source: path/to/chapter.md")
    if path.is_file() and path.suffix.lower() not in (".md", ".markdown", ".txt", ".epub"):
        raise ValidationError(f"{value}: use a .md or .epub file")
    return path


def _check_title(value: Any, at: At) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool) or not str(value).strip():
        raise ValidationError("must be text")
    return str(value)


def _check_select(value: Any, at: At) -> tuple[str, ...]:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise ValidationError("must be a list of positions, ranges ('3-5') or titles")
    at.spend(len(value))
    # An item must be a scalar: str() of a nested list would expand YAML aliases.
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ValidationError(f"each item must be a position, a range ('3-5') or a title, "
                                  f"not {_kind(item)}")
    return tuple(str(s) for s in value)


def _check_normalize_override(value: Any, at: At) -> bool | None:
    return None if value is None else check_bool(value)


CHAPTER_SCHEMA: dict[str, Option] = {
    "source": Option(None, _check_source, "a Markdown file (one chapter) or an EPUB (its chapters)"),
    "title": Option(None, _check_title, "the chapter's title (default: its first heading or TOC entry)"),
    "select": Option([], _check_select, "EPUB only: spine positions, ranges '3-5' or titles"),
    "include_matter": Option(False, check_bool, "EPUB only: keep front and back matter"),
    "normalize": Option(None, _check_normalize_override,
                        "true/false: override the book's `normalize` for this chapter"),
    **{k: Option(None, VOICE_CHECKS[k], doc) for k, doc in VOICE_KEYS.items()},
}
CHAPTER_KEYS = {k: o.doc for k, o in CHAPTER_SCHEMA.items()}


def _select_needs_epub(values: dict[str, Any], at: At) -> None:
    if values["select"] and values["source"] is not None and values["source"].suffix.lower() != ".epub":
        at.child("select").add("only an EPUB source can select chapters")


def _check_chapters(value: Any, at: At) -> tuple[ChapterEntry, ...]:
    if value is None:
        raise ValidationError("is missing; list at least one chapter, e.g.\n"
                              "  chapters:\n    - source: chapters/01.md")
    if not isinstance(value, list) or not value:
        raise ValidationError("must be a non-empty list of chapters, each with a source")
    at.spend(len(value))
    entries = []
    for i, item in enumerate(value):
        here = at.child(i)
        if isinstance(item, str):
            item = {"source": item}
        if not isinstance(item, dict):
            here.add(f"must be a mapping with a source, not {_kind(item)}")
            continue
        if "source" not in item:
            at.checker.unknown_keys(item, CHAPTER_SCHEMA, here.key)
            here.add("has no source; add source: path/to/chapter.md")
            continue
        values = at.checker.validate(item, CHAPTER_SCHEMA, here)
        if values["source"] is None:
            continue
        _select_needs_epub(values, here)
        overrides = {k: values[k] for k in VOICE_KEYS if item.get(k) is not None
                     and values[k] is not None}
        entries.append(ChapterEntry(
            source=values["source"], display=str(item["source"]), index=i,
            line=at.checker.line(here.key), title=values["title"], select=values["select"],
            include_matter=values["include_matter"], overrides=overrides,
            config_display=at.checker.display, normalize=values["normalize"]))
    return tuple(entries)


# ---------------------------------------------------------------- the book


def _check_lexicon_file(value: Any, at: At) -> dict[str, str]:
    path = _existing_file("a YAML or JSON file of word: how to say it")(value, at)
    if path is None or not path.is_file():
        return {}
    try:
        words, problems = load_lexicon_file(path, str(value))
    except ConfigError as exc:
        at.checker.problems += exc.problems
        return {}
    at.checker.problems += problems
    return words


SCHEMA: dict[str, Option] = {
    "title": Option(None, check_text, "the book's title (default: the folder's name)"),
    "author": Option("", check_text, "the author, written to every tag"),
    "narrator_name": Option("", check_text, "who reads it, for the credits in the tags"),
    "year": Option(None, check_text, "year of publication, written to the tags"),
    "description": Option("", check_text, "a description for the M4B"),
    "cover": Option(None, _check_cover, "a JPEG, PNG, WebP, GIF or SVG cover image"),
    "language": Option("en", check_language, "a language key of the API: " + ", ".join(LANGUAGES)),
    "backend": Option("local", check_backend, "local (offline eSpeak NG) or audiocleaner"),
    "voices": Option(None, _existing_file("the voice library JSON file"),
                     "a voice library JSON downloaded from the Playground"),
    "narrator": Option({}, _voice_section(NARRATOR_DEFAULTS),
                       "default voice settings: voice, emotion, speed, language"),
    "cast": Option({}, _check_cast, "named voice settings for inline switches: name -> settings"),
    "segments": Option({}, section(Segments), "max_chars: the longest text one request may carry"),
    "pauses": Option({}, section(Pauses), "silences in ms (see Pauses)"),
    "lexicon": Option({}, _check_lexicon, "word (or /regex/) -> how to say it, applied before "
                      "the spoken form and synthesis"),
    "lexicon_file": Option(None, _check_lexicon_file, "a YAML or JSON file of more lexicon entries"),
    "normalize": Option(True, check_bool, "say numbers, money, dates and abbreviations in words"),
    "credits": Option({}, section(Credits), "opening, closing: read credits (default false)"),
    "output": Option({}, section(Output, (_acx_needs,)),
                     "dir, formats, bitrate, m4b_bitrate, sample_rate, loudness, cover_file"),
    "cache": Option({}, section(Cache), "dir: where segment audio is kept; remote: s3://..."),
    "chapters": Option(None, _check_chapters, "the chapters, in order: each a source and overrides",
                       required=True),
}
# The docs of sub-config keys, for `audiobook init` and docs/config.md.
PAUSES = options_of(Pauses)
OUTPUT_KEYS = {k: o.doc for k, o in options_of(Output).items()}


@dataclass(frozen=True)
class Config:
    path: Path
    root: Path
    title: str
    author: str
    narrator_name: str
    year: str | None
    description: str
    cover: Path | None
    language: str
    backend: str
    voices: Path | None
    narrator: dict[str, Any]
    cast: dict[str, dict[str, Any]]
    max_chars: int
    pauses: Pauses
    lexicon: dict[str, str]
    output: Output
    cache_dir: Path
    chapters: tuple[ChapterEntry, ...]
    lines: dict[str, int] = field(default_factory=dict, repr=False)
    normalize: bool = True
    credits: Credits = field(default_factory=Credits)
    cache_remote: str | None = None
    lexicon_path: Path | None = field(default=None, repr=False)  # its words are in lexicon

    @property
    def display(self) -> str:
        return self.path.name

    def line_of(self, key: str) -> int | None:
        return self.lines.get(key)

    def inputs(self) -> list[Path]:
        """Every file this config declares as an input: itself, sources, cover, voices, lexicon."""
        found = [self.path, *(entry.source for entry in self.chapters), self.cover,
                 self.voices, self.lexicon_path]
        return [path for path in found if path is not None]

    @classmethod
    def default(cls, root: Path) -> Config:
        """The config of a folder without audiobook.yml (`say`): every default, no chapters."""
        root = Path(root).resolve()
        c = _Checker("audiobook.yml", {}, root)
        config = _config_of(c, {}, root / "audiobook.yml", need_chapters=False)
        if c.problems:  # e.g. a file named .audiobook-cache where the cache would go
            raise ConfigError(c.problems)
        return config


# ---------------------------------------------------------------- loading


def _walk(node: yaml.Node, path: str = "", seen: set[int] | None = None):
    """Yield (dotted path, key node or None, node) for every node, each node once.

    Each node is entered once, so an alias (`*name`) is not walked again: a
    self-referencing anchor or a "billion laughs" document costs its size, not
    its expansion.
    """
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = _child(path, key_node)
            yield child, key_node, value_node
            yield from _walk(value_node, child, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = f"{path}[{i}]"
            yield child, None, item
            yield from _walk(item, child, seen)


def _child(path: str, key_node: yaml.Node) -> str:
    key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
    return f"{path}.{key}" if path else key


def _line_map(node: yaml.Node) -> dict[str, int]:
    """Dotted key path -> 1-based line of its key (or of its list item)."""
    out = {"": node.start_mark.line + 1}
    for path, key_node, value_node in _walk(node):
        out.setdefault(path, (key_node or value_node).start_mark.line + 1)
    return out


def _duplicate_keys(node: yaml.Node, display: str) -> list[Problem]:
    problems: list[Problem] = []
    for path, mapping in [("", node)] + [(p, v) for p, _, v in _walk(node)]:
        if not isinstance(mapping, yaml.MappingNode):
            continue
        seen: set[str] = set()
        for key_node, _ in mapping.value:
            child = _child(path, key_node)
            if child in seen:
                problems.append(Problem(display, key_node.start_mark.line + 1, child,
                                        "is given twice; keep one"))
            seen.add(child)
    return problems


def is_secret_key(key: Any) -> bool:
    """True for a key that names a credential (api_key, apiKey, api-key, token, ...)."""
    return isinstance(key, str) and bool(_SECRET_KEY.match(re.sub(r"[\W_]+", "", key).lower()))


def _secret_keys(node: yaml.Node, display: str) -> list[Problem]:
    """Every credential-like key, at any depth (lexicon words excepted)."""
    problems = []
    for path, key_node, _ in _walk(node):
        if path == "lexicon" or path.startswith("lexicon."):
            continue
        if key_node is not None and is_secret_key(key_node.value):
            problems.append(Problem(display, key_node.start_mark.line + 1, path, _SECRET_MESSAGE))
    return problems


def read_yaml(path: Path, display: str | None = None, words: bool = False
              ) -> tuple[Any, dict[str, int], list[Problem]]:
    """Parse YAML safely; return (data, line map, problems).

    Problems are duplicate keys and, unless the file is a list of `words`
    (a lexicon file), keys that hold a credential.
    """
    display = display or path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(Problem(display, None, None,
                                  "not found; run `audiobook init` or pass -c PATH")) from None
    except OSError as exc:
        raise ConfigError(Problem(display, None, None, f"cannot read: {exc.strerror}")) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(Problem(display, line, None, "is not UTF-8 text; save it as UTF-8")) from None
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, {}, []
            # Read lines and keys before constructing: construction rewrites
            # merge keys (<<: *base) in the node tree.
            lines = _line_map(node)
            problems = _duplicate_keys(node, display) + ([] if words else _secret_keys(node, display))
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at_line = mark.line + 1 if mark else None
        what = exc.problem or str(exc)
        raise ConfigError(Problem(display, at_line, None,
                                  f"YAML syntax error: {what}; check indentation and quoting")) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise ConfigError(Problem(display, line, None,
                                  f"contains a control character (U+{exc.character:04X}) that YAML "
                                  "does not allow; remove it")) from None
    except yaml.YAMLError as exc:
        raise ConfigError(Problem(display, None, None, f"YAML error: {exc}")) from None
    return data, lines, problems


class _Checker:
    """Runs validators over a document and collects what they raise as Problems."""

    def __init__(self, display: str, lines: dict[str, int], root: Path = Path(".")):
        self.display = display
        self.lines = lines
        self.root = root
        self.problems: list[Problem] = []
        self.nodes = 0  # values converted so far, against NODE_BUDGET

    def line(self, key: str) -> int | None:
        """The line of `key`, else of its nearest parent that is in the file."""
        while key:
            if key in self.lines:
                return self.lines[key]
            parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", key)
            if parent == key:  # a top-level key the file does not have
                return None
            key = parent
        return self.lines.get("")

    def add(self, key: str, message: str, warning: bool = False) -> None:
        self.problems.append(Problem(self.display, self.line(key), key, message, warning))

    def unknown_keys(self, mapping: dict, allowed: Iterable[str], prefix: str) -> None:
        allowed = list(allowed)
        for key in mapping:
            if str(key) in allowed:
                continue
            if is_secret_key(key):
                continue  # reported by _secret_keys, wherever it is
            path = f"{prefix}.{key}" if prefix else str(key)
            self.add(path, "unknown key" + _did_you_mean(str(key), allowed, "; known keys: "
                                                          + ", ".join(allowed)))

    def validate(self, raw: dict, schema: dict[str, Option], at: At) -> dict[str, Any]:
        """Each key's parsed value (its default's, where the value is absent or wrong)."""
        self.unknown_keys(raw, schema, at.key)
        values: dict[str, Any] = {}
        for key, opt in schema.items():
            here = at.child(key)
            value = raw.get(key)
            if value is None:
                value = opt.default if key not in raw or opt.null is None else opt.null
            if value is None and not opt.required:
                values[key] = None
                continue
            try:
                values[key] = opt.check(value, here)
            except ValidationError as exc:
                here.add(str(exc))
                values[key] = _fallback(opt, here)
        return values


def _fallback(opt: Option, at: At) -> Any:
    """The default's parsed value, for a key whose value was wrong."""
    try:
        return opt.check(opt.default, At(_Checker(at.checker.display, {}, at.root), at.key))
    except ValidationError:
        return None


# The narrator's settings when the file gives none, parsed (emotion "auto" -> 0).
DEFAULT_NARRATOR: dict[str, Any] = _voice_section(NARRATOR_DEFAULTS)({}, _no_context())


def _config_of(c: _Checker, data: dict, path: Path, need_chapters: bool = True) -> Config:
    schema = dict(SCHEMA)
    if not need_chapters:
        schema["chapters"] = Option((), lambda v, at: tuple(v), "")
    v = c.validate(data, schema, At(c, ""))
    root = c.root
    return Config(
        path=path, root=root,
        title=v["title"] if v["title"] is not None else root.name.replace("-", " ").title(),
        author=v["author"] or "", narrator_name=v["narrator_name"] or "", year=v["year"],
        description=v["description"] or "", cover=v["cover"], language=v["language"] or "en",
        backend=v["backend"] or "local", voices=v["voices"], narrator=v["narrator"] or {},
        cast=v["cast"] or {}, max_chars=v["segments"].max_chars, pauses=v["pauses"],
        lexicon={**(v["lexicon_file"] or {}), **(v["lexicon"] or {})}, output=v["output"],
        cache_dir=v["cache"].dir, chapters=v["chapters"] or (), lines=c.lines,
        normalize=v["normalize"], credits=v["credits"], cache_remote=v["cache"].remote,
        lexicon_path=(_resolve(root, data["lexicon_file"])
                      if isinstance(data.get("lexicon_file"), str) else None),
    )


def load_lexicon_file(path: Path, display: str | None = None
                      ) -> tuple[dict[str, str], list[Problem]]:
    """A YAML or JSON mapping of word: how to say it; (words, problems)."""
    display = display or path.name
    data, lines, problems = read_yaml(path, display, words=True)
    c = _Checker(display, lines, path.parent)
    c.problems += problems
    at = At(c, "")
    try:
        words = _check_lexicon(data, at)
    except ValidationError as exc:
        at.add(str(exc))
        words = {}
    return words, c.problems


def load_config(path: Path | str = "audiobook.yml") -> Config:
    """Load and validate; raise ConfigError listing every problem."""
    path = Path(path)
    display = str(path)
    data, lines, dup = read_yaml(path, display)
    c = _Checker(display, lines, path.resolve().parent)
    c.problems += dup
    if data is None:
        raise ConfigError(Problem(display, None, None,
                                  "is empty; it needs at least a list of chapters, e.g.\n"
                                  "  chapters:\n    - source: chapters/01.md\n"
                                  "(`audiobook init` writes a starter project)"))
    if not isinstance(data, dict):
        c.add("", f"must be a mapping of keys (title, chapters, ...), not {_kind(data)}")
        raise ConfigError(c.problems)
    config = _config_of(c, data, path.resolve())
    errors = [p for p in c.problems if not p.warning]
    if errors:
        # In file order, so the list reads top to bottom like the file.
        raise ConfigError(sorted(c.problems, key=lambda p: (p.file != display, p.line or 0)))
    return config


def voice_library_path(path: Path | str = "audiobook.yml") -> Path:
    """The `voices:` file of a config, read without validating the rest.

    `audiobook voices` needs only this key, so a config that is still being
    written (no chapters yet, say) can already list its voices.
    """
    path = Path(path)
    data, lines, _ = read_yaml(path, str(path))
    value = data.get("voices") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(Problem(str(path), lines.get("voices"), "voices",
                                  "no voice library; download it from the Playground and set "
                                  "voices: FILE (or pass --file FILE)"))
    library = Path(value)
    return library if library.is_absolute() else path.resolve().parent / library
