"""audiobook.yml: the schema, loading, and validation with line numbers.

The whole schema is in this file: `SCHEMA` lists every top-level key with its
default and a one-line doc, and each `_check_*` function validates one kind of
value. Validation collects every problem (file:line, dotted key, the fix, a
"did you mean" where one fits) before any work starts.
"""

from __future__ import annotations

import datetime
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.book import EMOTION_NAMES, EMOTIONS, LANGUAGES, SPEED_MAX, SPEED_MIN
from pipeline.errors import ConfigError, Problem

BACKENDS = ("local", "audiocleaner")
FORMATS = ("mp3", "m4b", "vtt", "epub")
DEFAULT_FORMATS = ("mp3", "m4b")
LOUDNESS_WORDS = ("acx", "none")
# A key that names a credential, in any spelling: api_key, apiKey, api-key,
# "API key", x-api-key, AUDIOCLEANER_API_KEY, token, access_token, secret, ...
# (compared with case and separators removed).
_SECRET_KEY = re.compile(r"^(\w*apikey|(api|access|auth|bearer)?token|secret(key)?|clientsecret|password)$")
_SECRET_MESSAGE = ("an API key must not be written in the config; delete this line and set the "
                   "AUDIOCLEANER_API_KEY environment variable instead")
_BITRATE = re.compile(r"^(\d{2,3})k$")

# Language names and region tags people write, for "did you mean".
LANGUAGE_NAMES = {
    "english": "en", "chinese": "zh", "mandarin": "zh", "cantonese": "zh_yue", "yue": "zh_yue",
    "arabic": "ar", "russian": "ru", "spanish": "es", "french": "fr", "portuguese": "pt",
    "german": "de", "korean": "ko", "japanese": "ja", "jp": "ja", "kr": "ko", "cn": "zh",
}
# Emotion words people write, for "did you mean".
EMOTION_WORDS = {
    "neutral": "auto", "default": "auto", "normal": "auto", "joy": "happy", "joyful": "happy",
    "cheerful": "happy", "mad": "angry", "furious": "angry", "sadness": "sad", "unhappy": "sad",
    "fear": "afraid", "fearful": "afraid", "scared": "afraid", "disgust": "disgusted",
    "melancholy": "melancholic", "surprise": "surprised", "relaxed": "calm", "peaceful": "calm",
}

# key: (default, doc). Nested mappings list their own keys below.
SCHEMA: dict[str, tuple[Any, str]] = {
    "title": (None, "the book's title (default: the folder's name)"),
    "author": ("", "the author, written to every tag"),
    "narrator_name": ("", "who reads it, for the credits in the tags"),
    "year": (None, "year of publication, written to the tags"),
    "description": ("", "a description for the M4B"),
    "cover": (None, "a JPEG or PNG cover image for the M4B and MP3s"),
    "language": ("en", "a language key of the API: " + ", ".join(LANGUAGES)),
    "backend": ("local", "local (offline eSpeak NG) or audiocleaner"),
    "voices": (None, "a voice library JSON downloaded from the Playground"),
    "narrator": ({}, "default voice settings: voice, emotion, speed, language"),
    "cast": ({}, "named voice settings for inline switches: name -> settings"),
    "segments": ({}, "max_chars: the longest text one request may carry"),
    "pauses": ({}, "silences in ms (see PAUSES)"),
    "lexicon": ({}, "word -> how to say it, applied before synthesis"),
    "lexicon_file": (None, "a YAML or JSON file of more lexicon entries"),
    "output": ({}, "dir, formats, bitrate, sample_rate, loudness"),
    "cache": ({}, "dir: where segment audio is kept between builds"),
    "chapters": (None, "the chapters, in order: each a source and overrides"),
}
VOICE_KEYS = {
    "voice": "a voice id (or a name from the voice library, or a cast name)",
    "emotion": "an emotion name or id: " + ", ".join(f"{k}={v}" for k, v in EMOTIONS.items()),
    "speed": f"speech speed, {SPEED_MIN} to {SPEED_MAX}",
    "language": "a language key of the API",
}
PAUSES: dict[str, tuple[int, str]] = {
    "paragraph_ms": (600, "where a segment ends at a paragraph end"),
    "heading_ms": (1200, "after a heading, and before one"),
    "scene_ms": (1500, "at a scene break"),
    "chapter_head_ms": (750, "room tone before the chapter's first words"),
    "chapter_tail_ms": (2500, "room tone after its last words"),
    "sentence_ms": (350, "where a segment ends inside a paragraph, at a sentence end"),
    "line_ms": (400, "at a verse line break that ends a segment"),
    "clause_ms": (120, "where a sentence too long for one request is cut"),
}
OUTPUT_KEYS = {
    "dir": "where outputs go (default build)",
    "formats": "any of mp3, m4b (default both); m4b alone keeps chapter MP3s in <dir>/.chapters",
    "bitrate": "MP3/AAC bitrate, e.g. 192k",
    "sample_rate": "output sample rate in Hz (default 44100)",
    "loudness": "acx, none, or a target such as -18 (LUFS) or '-20 dB' (RMS)",
}
CHAPTER_KEYS = {
    "source": "a Markdown file (one chapter) or an EPUB (its chapters)",
    "title": "the chapter's title (default: its first heading or TOC entry)",
    "select": "EPUB only: spine positions, ranges '3-5' or titles",
    "include_matter": "EPUB only: keep front and back matter (default false)",
    **VOICE_KEYS,
}
DEFAULT_NARRATOR = {"voice": 2072, "emotion": 0, "speed": 1.0}


@dataclass(frozen=True)
class Pauses:
    paragraph_ms: int = 600
    heading_ms: int = 1200
    scene_ms: int = 1500
    chapter_head_ms: int = 750
    chapter_tail_ms: int = 2500
    sentence_ms: int = 350
    line_ms: int = 400
    clause_ms: int = 120

    def ms(self, kind: str) -> int:
        return getattr(self, f"{kind}_ms")


@dataclass(frozen=True)
class Output:
    dir: Path
    formats: tuple[str, ...] = DEFAULT_FORMATS
    bitrate: str = "192k"
    sample_rate: int = 44100
    loudness: str | float = "acx"  # "acx", "none", LUFS float, or "rms:-20"


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

    @property
    def display(self) -> str:
        return self.path.name

    def line_of(self, key: str) -> int | None:
        return self.lines.get(key)


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
        line = mark.line + 1 if mark else None
        what = exc.problem or str(exc)
        raise ConfigError(Problem(display, line, None,
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
    """Collects problems while walking the document."""

    def __init__(self, display: str, lines: dict[str, int]):
        self.display = display
        self.lines = lines
        self.problems: list[Problem] = []

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

    def unknown_keys(self, mapping: dict, allowed, prefix: str) -> None:
        for key in mapping:
            if str(key) in allowed:
                continue
            if is_secret_key(key):
                continue  # reported by _secret_keys, wherever it is
            path = f"{prefix}.{key}" if prefix else str(key)
            self.add(path, "unknown key" + _did_you_mean(str(key), allowed, "; known keys: "
                                                          + ", ".join(allowed)))

    def mapping(self, value: Any, key: str) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(key, f"must be a mapping of keys to values, not {_kind(value)}")
            return {}
        return value


def _kind(value: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "text",
            list: "a list", dict: "a mapping", type(None): "empty"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    """A value for a message: short, and never the expansion of a nested structure."""
    if isinstance(value, (str, int, float)) or value is None:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return _kind(value)


def _did_you_mean(word: str, choices, otherwise: str = "", aliases: dict[str, str] | None = None
                  ) -> str:
    word = word.strip().lower()
    if aliases and word in aliases:
        return f"; did you mean {aliases[word]!r}?"
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else otherwise


def check_emotion(value: Any) -> tuple[int | None, str | None]:
    """(emotion id, None) or (None, message)."""
    if isinstance(value, bool):
        return None, "must be an emotion name or id, not true/false"
    if isinstance(value, int):
        if value in EMOTION_NAMES:
            return value, None
        return None, f"{value} is not an emotion id; use 0 to 8 ({', '.join(EMOTIONS)})"
    if isinstance(value, str):
        name = value.strip().lower()
        if name.isdigit():
            return check_emotion(int(name))
        if name in EMOTIONS:
            return EMOTIONS[name], None
        return None, (f"{_show(value)} is not an emotion"
                      + _did_you_mean(name, EMOTIONS, "; use one of " + ", ".join(EMOTIONS),
                                      EMOTION_WORDS))
    return None, f"must be an emotion name or id, not {_kind(value)}"


def check_speed(value: Any) -> tuple[float | None, str | None]:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None, f"must be a number from {SPEED_MIN} to {SPEED_MAX}, not {_kind(value)}"
    try:
        speed = float(value)
    except ValueError:
        return None, f"{_show(value)} is not a number; use {SPEED_MIN} to {SPEED_MAX}"
    if not SPEED_MIN <= speed <= SPEED_MAX:
        return None, f"{speed:g} is out of range; use {SPEED_MIN} to {SPEED_MAX}"
    return speed, None


def check_language(value: Any) -> tuple[str | None, str | None]:
    if isinstance(value, str) and value in LANGUAGES:
        return value, None
    if not isinstance(value, str):
        return None, f"must be a language key ({', '.join(LANGUAGES)}), not {_kind(value)}"
    # "en-US", "EN", "pt_BR": the region is not part of the key.
    aliases = dict(LANGUAGE_NAMES)
    word = value.strip().lower().replace("-", "_")
    base = word if word in LANGUAGES else word.split("_")[0]
    if base in LANGUAGES:
        aliases[value.strip().lower()] = base
    return None, (f"{_show(value)} is not a language key"
                  + _did_you_mean(value, LANGUAGES, "; use one of " + ", ".join(LANGUAGES),
                                  aliases))


def check_voice_id(value: Any) -> tuple[int | str | None, str | None]:
    if isinstance(value, bool) or value is None:
        return None, "must be a voice id (a number) or a voice name"
    if isinstance(value, int):
        return (value, None) if value > 0 else (None, f"{value} is not a voice id")
    if isinstance(value, str) and value.strip():
        return (int(value) if value.strip().isdigit() else value.strip()), None
    return None, f"must be a voice id or name, not {_kind(value)}"


VOICE_CHECKS: dict[str, Callable[[Any], tuple[Any, str | None]]] = {
    "voice": check_voice_id,
    "emotion": check_emotion,
    "speed": check_speed,
    "language": check_language,
}


def _voice_settings(c: _Checker, raw: dict, prefix: str, allowed=VOICE_KEYS) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, check in VOICE_CHECKS.items():
        if key in raw:
            value, message = check(raw[key])
            if message:
                c.add(f"{prefix}.{key}", message)
            else:
                out[key] = value
    return out


def _path(c: _Checker, root: Path, value: Any, key: str, what: str = "a file") -> Path | None:
    """An existing file named in the config, or None after adding a problem."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        c.add(key, f"must be a file path, not {_kind(value)}")
        return None
    path = _resolve(root, value)
    if not path.exists():
        c.add(key, f"{value}: no such file (paths are relative to the config's folder, {root})")
    elif path.is_dir():
        c.add(key, f"{value} is a folder; name {what}")
    return path


def _resolve(root: Path, value: str) -> Path:
    """A path from the config: relative to the config's folder, ~ for home."""
    return (root / Path(value.strip()).expanduser()).resolve()


def _folder(c: _Checker, root: Path, raw: dict, key: str, default: str) -> Path:
    value = raw.get("dir", default)
    if not isinstance(value, str) or not value.strip():
        c.add(f"{key}.dir", f"must be a folder path, not {_kind(value)}")
        value = default
    return _resolve(root, value)


def _text(c: _Checker, data: dict, key: str, default: str | None) -> str | None:
    """A free-text value: text, a number (a title like 1984) or a date (a year: 2024-05-01)."""
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (str, int, float, datetime.date)):
        c.add(key, f"must be text, not {_kind(value)}")
        return default
    return str(value)


def _check_pauses(c: _Checker, raw: Any) -> Pauses:
    raw = c.mapping(raw, "pauses")
    c.unknown_keys(raw, PAUSES, "pauses")
    values = {}
    for key in PAUSES:
        if key in raw:
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 60000:
                c.add(f"pauses.{key}",
                      f"must be a whole number of milliseconds, 0 to 60000, not {_show(v)}")
            else:
                values[key] = v
    return Pauses(**values)


def parse_loudness(value: Any) -> tuple[str | float | None, str | None]:
    """acx | none | -18 (LUFS) | '-18 LUFS' | '-20 dB' (RMS, as ACX measures)."""
    if value is None:
        return "none", None
    if isinstance(value, bool):
        return None, "must be acx, none, or a target such as -18 or '-20 dB'"
    if isinstance(value, (int, float)):
        return (float(value), None) if -40 <= value <= -5 else (None, f"{value} LUFS is out of range (-40 to -5)")
    text = str(value).strip().lower()
    if text in LOUDNESS_WORDS:
        return text, None
    match = re.fullmatch(r"(-\d+(?:\.\d+)?)\s*(lufs|db|dbfs|db rms)?", text)
    if not match:
        return None, f"{value!r} is not a loudness target; use acx, none, -18 (LUFS) or '-20 dB' (RMS)"
    number = float(match.group(1))
    if not -40 <= number <= -5:
        return None, f"{number:g} is out of range (-40 to -5)"
    return (f"rms:{number:g}" if match.group(2) and match.group(2).startswith("db") else number), None


def _check_output(c: _Checker, raw: Any, root: Path) -> Output:
    raw = c.mapping(raw, "output")
    c.unknown_keys(raw, OUTPUT_KEYS, "output")
    out_dir = _folder(c, root, raw, "output", "build")
    formats = raw.get("formats", list(DEFAULT_FORMATS))
    if isinstance(formats, str):
        formats = [formats]
    if not isinstance(formats, list) or not formats:
        c.add("output.formats", "must be a list with mp3, m4b or both")
        formats = list(DEFAULT_FORMATS)
    for f in formats:
        if f not in FORMATS:
            c.add("output.formats", f"{_show(f)} is not a format"
                  + _did_you_mean(str(f) if isinstance(f, str) else "", FORMATS, "; use mp3, m4b, vtt or epub"))
    bitrate = raw.get("bitrate", "192k")
    m = _BITRATE.match(bitrate) if isinstance(bitrate, str) else None
    if not m or not 32 <= int(m.group(1)) <= 320:
        c.add("output.bitrate", f"{_show(bitrate)} is not a bitrate; use e.g. 128k or 192k (32k to 320k)")
        bitrate = "192k"
    rate = raw.get("sample_rate", 44100)
    if isinstance(rate, bool) or rate not in (22050, 24000, 32000, 44100, 48000):
        c.add("output.sample_rate",
              f"{_show(rate)} is not supported; use 44100 (or 22050, 24000, 32000, 48000)")
        rate = 44100
    loudness, message = parse_loudness(raw.get("loudness", "acx"))
    if message:
        c.add("output.loudness", message)
    if loudness == "acx":
        if m and int(m.group(1)) < 192:
            c.add("output.bitrate", f"ACX needs 192k or more, not {bitrate}; raise it or set loudness: none")
        if rate != 44100:
            c.add("output.sample_rate", "ACX needs 44100 Hz; set 44100 or loudness: none")
    return Output(dir=out_dir, formats=tuple(f for f in FORMATS if f in formats), bitrate=bitrate,
                  sample_rate=rate, loudness=loudness or "none")


def _check_lexicon(c: _Checker, raw: Any, key: str) -> dict[str, str]:
    """word -> how to say it; `key` is "" for a lexicon file (its keys are the words)."""
    raw = c.mapping(raw, key or "")
    out = {}
    for word, say in raw.items():
        where = f"{key}.{word}" if key else str(word)
        if not isinstance(word, (str, int)) or isinstance(word, bool) or not str(word).strip():
            c.add(where, "each entry must be word: how to say it, and the word must be text")
        elif isinstance(say, bool) or not isinstance(say, (str, int, float)):
            c.add(where, f"must be how to say the word (text), not {_kind(say)}")
        else:
            out[" ".join(str(word).split())] = str(say)
    return out


def _check_chapters(c: _Checker, raw: Any, root: Path) -> list[ChapterEntry]:
    if raw is None:
        c.add("chapters", "is missing; list at least one chapter, e.g.\n"
              "  chapters:\n    - source: chapters/01.md")
        return []
    if not isinstance(raw, list) or not raw:
        c.add("chapters", "must be a non-empty list of chapters, each with a source")
        return []
    entries = []
    for i, item in enumerate(raw):
        key = f"chapters[{i}]"
        if isinstance(item, str):
            item = {"source": item}
        if not isinstance(item, dict):
            c.add(key, f"must be a mapping with a source, not {_kind(item)}")
            continue
        c.unknown_keys(item, CHAPTER_KEYS, key)
        if "source" not in item:
            c.add(key, "has no source; add source: path/to/chapter.md")
            continue
        source = _path(c, root, item["source"], f"{key}.source", "a Markdown or EPUB file")
        if source is None:
            continue
        if source.is_file() and source.suffix.lower() not in (".md", ".markdown", ".txt", ".epub"):
            c.add(f"{key}.source", f"{item['source']}: use a .md or .epub file")
        title = item.get("title")
        if title is not None and (not isinstance(title, (str, int)) or not str(title).strip()):
            c.add(f"{key}.title", "must be text")
            title = None
        select = item.get("select", [])
        if isinstance(select, (str, int)):
            select = [select]
        if not isinstance(select, list):
            c.add(f"{key}.select", "must be a list of positions, ranges ('3-5') or titles")
            select = []
        if select and source.suffix.lower() != ".epub":
            c.add(f"{key}.select", "only an EPUB source can select chapters")
        include = item.get("include_matter", False)
        if not isinstance(include, bool):
            c.add(f"{key}.include_matter", "must be true or false")
            include = False
        overrides = _voice_settings(c, item, key)
        entries.append(ChapterEntry(source=source, display=str(item["source"]), index=i,
                                    line=c.line(key), title=str(title) if title is not None else None,
                                    select=tuple(str(s) for s in select),
                                    include_matter=include, overrides=overrides,
                                    config_display=c.display))
    return entries


def _lexicon_file(c: _Checker, root: Path, value: Any) -> dict[str, str]:
    path = _path(c, root, value, "lexicon_file", "a YAML or JSON file of word: how to say it")
    if path is None or not path.is_file():
        return {}
    try:
        words, problems = load_lexicon_file(path, str(value))
    except ConfigError as exc:
        c.problems += exc.problems
        return {}
    c.problems += problems
    return words


def load_lexicon_file(path: Path, display: str | None = None
                      ) -> tuple[dict[str, str], list[Problem]]:
    """A YAML or JSON mapping of word: how to say it; (words, problems)."""
    display = display or path.name
    data, lines, problems = read_yaml(path, display, words=True)
    c = _Checker(display, lines)
    c.problems += problems
    return _check_lexicon(c, data, ""), c.problems


def load_config(path: Path | str = "audiobook.yml") -> Config:
    """Load and validate; raise ConfigError listing every problem."""
    path = Path(path)
    display = str(path)
    data, lines, dup = read_yaml(path, display)
    c = _Checker(display, lines)
    c.problems += dup
    if data is None:
        raise ConfigError(Problem(display, None, None,
                                  "is empty; it needs at least a list of chapters, e.g.\n"
                                  "  chapters:\n    - source: chapters/01.md\n"
                                  "(`audiobook init` writes a starter project)"))
    if not isinstance(data, dict):
        c.add("", f"must be a mapping of keys (title, chapters, ...), not {_kind(data)}")
        raise ConfigError(c.problems)
    root = path.resolve().parent
    c.unknown_keys(data, SCHEMA, "")

    language, message = check_language(data.get("language", "en"))
    if message:
        c.add("language", message)
    backend = data.get("backend", "local")
    if backend not in BACKENDS:
        c.add("backend", f"{_show(backend)} is not a backend"
              + _did_you_mean(backend if isinstance(backend, str) else "", BACKENDS,
                              "; use local or audiocleaner"))
    narrator_raw = c.mapping(data.get("narrator"), "narrator")
    c.unknown_keys(narrator_raw, VOICE_KEYS, "narrator")
    narrator = {**DEFAULT_NARRATOR, **_voice_settings(c, narrator_raw, "narrator")}
    cast = {}
    for name, settings in c.mapping(data.get("cast"), "cast").items():
        if isinstance(settings, (int, str)) and not isinstance(settings, bool):
            settings = {"voice": settings}
        settings = c.mapping(settings, f"cast.{name}")
        c.unknown_keys(settings, VOICE_KEYS, f"cast.{name}")
        cast[str(name)] = _voice_settings(c, settings, f"cast.{name}")

    segments = c.mapping(data.get("segments"), "segments")
    c.unknown_keys(segments, {"max_chars": ""}, "segments")
    max_chars = segments.get("max_chars", 1000)
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or not 20 <= max_chars <= 100000:
        c.add("segments.max_chars", f"must be a whole number from 20 to 100000, not {_show(max_chars)}")
        max_chars = 1000

    lexicon = _check_lexicon(c, data.get("lexicon"), "lexicon")
    lexicon = {**_lexicon_file(c, root, data.get("lexicon_file")), **lexicon}

    cache = c.mapping(data.get("cache"), "cache")
    c.unknown_keys(cache, {"dir": ""}, "cache")
    title = _text(c, data, "title", None)
    config = Config(
        path=path.resolve(),
        root=root,
        title=title if title is not None else root.name.replace("-", " ").title(),
        author=_text(c, data, "author", "") or "",
        narrator_name=_text(c, data, "narrator_name", "") or "",
        year=_text(c, data, "year", None),
        description=_text(c, data, "description", "") or "",
        cover=_path(c, root, data.get("cover"), "cover", "a JPEG or PNG image"),
        language=language or "en",
        backend=backend if backend in BACKENDS else "local",
        voices=_path(c, root, data.get("voices"), "voices", "the voice library JSON file"),
        narrator=narrator,
        cast=cast,
        max_chars=max_chars,
        pauses=_check_pauses(c, data.get("pauses")),
        lexicon=lexicon,
        output=_check_output(c, data.get("output"), root),
        cache_dir=_folder(c, root, cache, "cache", ".audiobook-cache"),
        chapters=tuple(_check_chapters(c, data.get("chapters"), root)),
        lines=lines,
    )
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
