"""audiobook.yml: every problem at once, each with file:line, dotted key and the fix."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from pipeline.config import (
    DEFAULT_NARRATOR,
    Config,
    Loudness,
    Pauses,
    is_secret_key,
    load_config,
    parse_loudness,
)
from pipeline.errors import ConfigError, Problem, ValidationError

CHAPTER = {"chapters/01.md": "# One\n\nSome text.\n"}


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def lines_of(path: Path) -> list[str]:
    return [str(p) for p in problems_of(path)]


def one(path: Path) -> Problem:
    found = problems_of(path)
    assert len(found) == 1, found
    return found[0]


# ------------------------------------------------------------ a good config


def test_minimal_config_gets_defaults_for_everything_but_chapters(project):
    cfg = load_config(project("chapters: [chapters/01.md]\n", CHAPTER))
    assert isinstance(cfg, Config)
    assert cfg.language == "en"
    assert cfg.backend == "local"
    assert cfg.narrator == DEFAULT_NARRATOR
    assert cfg.cast == {}
    assert cfg.max_chars == 1000
    assert cfg.pauses == Pauses()
    assert cfg.lexicon == {}
    assert cfg.output.formats == ("mp3", "m4b")
    assert cfg.output.bitrate == "192k"
    assert cfg.output.sample_rate == 44100
    assert cfg.output.loudness == Loudness("acx")
    assert cfg.output.dir == cfg.root / "build"
    assert cfg.cache_dir == cfg.root / ".audiobook-cache"
    assert cfg.cover is None and cfg.voices is None
    # The title falls back to the folder's name.
    assert cfg.title == cfg.root.name.replace("-", " ").title()
    [entry] = cfg.chapters
    assert entry.source == cfg.root / "chapters" / "01.md"
    assert entry.display == "chapters/01.md"
    assert entry.title is None and entry.overrides == {}


def test_full_config_is_read(project):
    path = project("""\
        title: The Sample Book
        author: A. Writer
        year: 2024
        language: en
        backend: audiocleaner
        narrator: {voice: 2072, emotion: calm, speed: 1.1}
        cast:
          holmes: {voice: 2080, emotion: 8}
          watson: 2090
        segments: {max_chars: 500}
        pauses: {paragraph_ms: 700, scene_ms: 2000}
        lexicon: {"Dr.": "Doctor", "SQL": "sequel"}
        output: {dir: out, formats: [mp3], bitrate: 128k, sample_rate: 48000, loudness: none}
        cache: {dir: store}
        chapters:
          - source: chapters/01.md
            title: Opening
            emotion: happy
            speed: "0.9"
            language: fr
        """, CHAPTER)
    cfg = load_config(path)
    assert cfg.title == "The Sample Book"
    assert cfg.year == "2024"
    assert cfg.backend == "audiocleaner"
    assert cfg.narrator == {"voice": 2072, "emotion": 8, "speed": 1.1}
    assert cfg.cast == {"holmes": {"voice": 2080, "emotion": 8}, "watson": {"voice": 2090}}
    assert cfg.max_chars == 500
    assert cfg.pauses.paragraph_ms == 700 and cfg.pauses.scene_ms == 2000
    assert cfg.pauses.heading_ms == Pauses().heading_ms
    assert cfg.lexicon == {"Dr.": "Doctor", "SQL": "sequel"}
    assert cfg.output.formats == ("mp3",)
    assert cfg.output.sample_rate == 48000
    assert cfg.output.loudness == Loudness("none")
    assert cfg.output.dir == cfg.root / "out"
    assert cfg.cache_dir == cfg.root / "store"
    [entry] = cfg.chapters
    assert entry.title == "Opening"
    assert entry.overrides == {"emotion": 1, "speed": 0.9, "language": "fr"}
    assert entry.line == 16


@pytest.mark.parametrize(("value", "expected"), [("2024", "2024"), ("2024-05-01", "2024-05-01"),
                                               ("'MMXXIV'", "MMXXIV")])
def test_year_may_be_a_number_a_date_or_text(project, value, expected):
    cfg = load_config(project(f"year: {value}\nchapters: [chapters/01.md]\n", CHAPTER))
    assert cfg.year == expected


def test_chapter_may_be_written_as_a_bare_path(project):
    cfg = load_config(project("chapters:\n  - chapters/01.md\n", CHAPTER))
    assert cfg.chapters[0].display == "chapters/01.md"
    assert cfg.chapters[0].line == 2


def test_relative_paths_resolve_against_the_config_folder_not_the_cwd(project, tmp_path, monkeypatch):
    path = project("""\
        lexicon_file: words.yml
        output: {dir: out}
        cache: {dir: store}
        chapters: [chapters/01.md]
        """, {**CHAPTER, "words.yml": "SQL: sequel\n"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "chapters").mkdir()  # a decoy with the same relative layout
    monkeypatch.chdir(elsewhere)
    cfg = load_config(os.path.relpath(path, elsewhere))
    assert cfg.root == tmp_path
    assert cfg.chapters[0].source == tmp_path / "chapters" / "01.md"
    assert cfg.output.dir == tmp_path / "out"
    assert cfg.cache_dir == tmp_path / "store"
    assert cfg.lexicon == {"SQL": "sequel"}


def test_missing_source_is_looked_up_next_to_the_config(project, tmp_path, monkeypatch):
    # The file exists in the cwd but not next to the config: still missing.
    path = project("chapters: [here.md]\n", {"sub/audiobook.yml": "chapters: [here.md]\n",
                                              "here.md": "Text.\n"})
    sub = tmp_path / "sub" / "audiobook.yml"
    problem = one(sub)
    assert problem.key == "chapters[0].source"
    assert "no such file" in problem.message
    assert load_config(path).chapters[0].source == tmp_path / "here.md"


def test_bom_is_accepted(project, tmp_path):
    project("", CHAPTER)
    (tmp_path / "audiobook.yml").write_bytes(b"\xef\xbb\xbfchapters: [chapters/01.md]\n")
    assert len(load_config(tmp_path / "audiobook.yml").chapters) == 1


# ------------------------------------------------------------ every problem at once


def test_every_problem_is_reported_at_once_with_line_and_dotted_key(project):
    path = project("""\
        title: A Book
        langauge: en
        narrator:
          voice: 2072
          emotion: hapy
          speed: 3
        segments: {max_chars: 5}
        chapters:
          - source: chapters/01.md
          - source: chapters/01.md
            speed: fast
          - source: chapters/01.md
            emotion: hapy
        """, CHAPTER)
    assert lines_of(path) == [
        f"{path}:2: langauge: unknown key; did you mean 'language'?",
        f"{path}:5: narrator.emotion: 'hapy' is not an emotion; did you mean 'happy'?",
        f"{path}:6: narrator.speed: 3 is out of range; use 0.5 to 2.0",
        f"{path}:7: segments.max_chars: must be a whole number from 20 to 100000, not 5",
        f"{path}:11: chapters[1].speed: 'fast' is not a number; use 0.5 to 2.0",
        f"{path}:13: chapters[2].emotion: 'hapy' is not an emotion; did you mean 'happy'?",
    ]


def test_problems_are_listed_in_file_order(project):
    path = project("""\
        chapters: [missing.md]
        api_key: abc
        pauses: {scene_ms: -1}
        langauge: en
        """)
    numbers = [p.line for p in problems_of(path)]
    assert numbers == sorted(numbers) and len(numbers) == 4


@pytest.mark.parametrize(("text", "key", "line"), [
    # block mappings nested two deep
    ("cast:\n  holmes:\n    voice: 2080\n    emotion: clam\nchapters: [chapters/01.md]\n",
     "cast.holmes.emotion", 4),
    # a flow mapping inside a list item, on its own line
    ("chapters:\n  - chapters/01.md\n  - {source: chapters/01.md, emotion: x}\n",
     "chapters[1].emotion", 3),
    # the third list item, several lines into it
    ("chapters:\n  - source: chapters/01.md\n  - source: chapters/01.md\n"
     "  - source: chapters/01.md\n    title: T\n\n    speed: 9\n", "chapters[2].speed", 7),
    # a value on the line after its key: the key's line is reported
    ("output:\n  formats:\n    - mp3\n    - ogg\nchapters: [chapters/01.md]\n", "output.formats", 2),
    # a list item without a source points at the item
    ("chapters:\n  - source: chapters/01.md\n  - title: No source\n", "chapters[1]", 3),
])
def test_line_numbers_point_at_nested_keys_and_list_items(project, text, key, line):
    problem = one(project(text, CHAPTER))
    assert (problem.key, problem.line) == (key, line)


# ------------------------------------------------------------ did you mean


@pytest.mark.parametrize(("text", "key", "hint"), [
    ("titel: x\n", "titel", "'title'"),
    ("chapter: []\nchapters: [chapters/01.md]\n", "chapter", "'chapters'"),
    ("narrator: {voise: 2072}\n", "narrator.voise", "'voice'"),
    ("segments: {max-chars: 500}\n", "segments.max-chars", "'max_chars'"),
    ("pauses: {paragraph: 500}\n", "pauses.paragraph", "'paragraph_ms'"),
    ("output: {format: [mp3]}\n", "output.format", "'formats'"),
    ("narrator: {emotion: Hapy}\n", "narrator.emotion", "'happy'"),
    ("narrator: {emotion: scared}\n", "narrator.emotion", "'afraid'"),
    ("language: english\n", "language", "'en'"),
    ("language: en-US\n", "language", "'en'"),
    ("language: eng\n", "language", "'en'"),
    ("language: cantonese\n", "language", "'zh_yue'"),
    ("backend: locla\n", "backend", "'local'"),
    ("output: {formats: [mp4]}\n", "output.formats", "'mp3'"),
])
def test_did_you_mean(project, text, key, hint):
    path = project(text + ("" if "chapters:" in text else "chapters: [chapters/01.md]\n"), CHAPTER)
    problem = one(path)
    assert problem.key == key
    assert f"did you mean {hint}?" in problem.message


def test_unknown_key_without_a_close_match_lists_the_known_keys(project):
    problem = one(project("zzzzzz: 1\nchapters: [chapters/01.md]\n", CHAPTER))
    assert problem.message.startswith("unknown key; known keys: title, author")


def test_unknown_emotion_without_close_match_lists_the_emotions(project):
    problem = one(project("narrator: {emotion: xyzzy}\nchapters: [chapters/01.md]\n", CHAPTER))
    assert "use one of auto, happy, angry" in problem.message


# ------------------------------------------------------------ values


@pytest.mark.parametrize("value", ["0.5", "2", "2.0", "'1.25'"])
def test_speed_in_range(project, value):
    cfg = load_config(project(f"narrator: {{speed: {value}}}\nchapters: [chapters/01.md]\n", CHAPTER))
    assert cfg.narrator["speed"] == float(value.strip("'"))


@pytest.mark.parametrize("value", ["0.49", "2.01", "0", "-1", ".inf", ".nan", "100"])
def test_speed_out_of_range(project, value):
    problem = one(project(f"narrator: {{speed: {value}}}\nchapters: [chapters/01.md]\n", CHAPTER))
    assert problem.key == "narrator.speed"
    assert "out of range; use 0.5 to 2.0" in problem.message


@pytest.mark.parametrize(("value", "expected"), [("auto", 0), ("calm", 8), ("SAD", 3), (3, 3), ("7", 7)])
def test_emotion_by_name_or_id(project, value, expected):
    cfg = load_config(project(f"narrator: {{emotion: {value}}}\nchapters: [chapters/01.md]\n", CHAPTER))
    assert cfg.narrator["emotion"] == expected


@pytest.mark.parametrize("value", ["9", "-1", "true", "[sad]"])
def test_bad_emotion(project, value):
    problem = one(project(f"narrator: {{emotion: {value}}}\nchapters: [chapters/01.md]\n", CHAPTER))
    assert problem.key == "narrator.emotion"


@pytest.mark.parametrize(("text", "key", "words"), [
    ("title: [a, b]\n", "title", "must be text, not a list"),
    ("author: {name: x}\n", "author", "must be text, not a mapping"),
    ("description: [x]\n", "description", "must be text"),
    ("narrator: loud\n", "narrator", "must be a mapping"),
    ("narrator: {voice: true}\n", "narrator.voice", "voice id"),
    ("narrator: {voice: -3}\n", "narrator.voice", "not a voice id"),
    ("narrator: {speed: [1]}\n", "narrator.speed", "not a list"),
    ("language: 12\n", "language", "not a number"),
    ("segments: {max_chars: many}\n", "segments.max_chars", "'many'"),
    ("segments: {max_chars: true}\n", "segments.max_chars", "True"),
    ("segments: {max_chars: 100001}\n", "segments.max_chars", "20 to 100000"),
    ("pauses: {scene_ms: 1.5}\n", "pauses.scene_ms", "whole number of milliseconds"),
    ("pauses: {scene_ms: -5}\n", "pauses.scene_ms", "0 to 60000"),
    ("pauses: [1, 2]\n", "pauses", "must be a mapping"),
    ("output: {dir: [a]}\n", "output.dir", "must be a folder path"),
    ("output: {bitrate: 192}\n", "output.bitrate", "use e.g. 128k"),
    ("output: {bitrate: 999k}\n", "output.bitrate", "32k to 320k"),
    ("output: {sample_rate: '44100'}\n", "output.sample_rate", "use 44100"),
    ("output: {loudness: none, sample_rate: 8000}\n", "output.sample_rate", "not supported"),
    ("output: {formats: []}\n", "output.formats", "mp3, m4b or both"),
    ("output: {bitrate: 128k}\n", "output.bitrate", "ACX needs 192k"),
    ("cache: {dir: 5}\n", "cache.dir", "must be a folder path"),
    ("lexicon: [a, b]\n", "lexicon", "must be a mapping"),
    ("lexicon: {SQL: [a]}\n", "lexicon.SQL", "not a list"),
    ("cover: 12\n", "cover", "must be a file path"),
    ("backend: [local]\n", "backend", "a list is not a backend"),
])
def test_wrong_types_and_ranges(project, text, key, words):
    problem = one(project(text + "chapters: [chapters/01.md]\n", CHAPTER))
    assert problem.key == key
    assert words in problem.message
    assert problem.line == 1


@pytest.mark.parametrize(("text", "key", "words"), [
    ("chapters:\n  - source: 12\n", "chapters[0].source", "must be a file path, not a number"),
    ("chapters:\n  - 12\n", "chapters[0]", "must be a mapping with a source, not a number"),
    ("chapters:\n  - [a]\n", "chapters[0]", "must be a mapping with a source"),
    ("chapters:\n  - source: chapters/01.md\n    title: [x]\n", "chapters[0].title", "must be text"),
    ("chapters:\n  - source: chapters/01.md\n    select: [1]\n", "chapters[0].select", "only an EPUB"),
    ("chapters:\n  - source: chapters/01.md\n    include_matter: yes please\n",
     "chapters[0].include_matter", "true or false"),
    ("chapters:\n  - source: notes.pdf\n", "chapters[0].source", "use a .md or .epub file"),
])
def test_chapter_entry_problems(project, text, key, words):
    problem = one(project(text, {**CHAPTER, "notes.pdf": "%PDF"}))
    assert problem.key == key
    assert words in problem.message


# ------------------------------------------------------------ sources


def test_missing_source(project):
    problem = one(project("chapters:\n  - source: chapters/nope.md\n", CHAPTER))
    assert str(problem).endswith(
        "audiobook.yml:2: chapters[0].source: chapters/nope.md: no such file "
        f"(paths are relative to the config's folder, {problem_root(problem)})")


def problem_root(problem: Problem) -> str:
    return str(Path(problem.file).resolve().parent)


def test_folder_as_source(project):
    problem = one(project("chapters:\n  - source: chapters\n", CHAPTER))
    assert problem.key == "chapters[0].source"
    assert problem.message == "chapters is a folder; name a Markdown or EPUB file"
    assert problem.line == 2


@pytest.mark.parametrize("key", ["cover", "voices", "lexicon_file"])
def test_other_paths_must_exist_and_be_files(project, key):
    found = problems_of(project(f"{key}: gone.json\nchapters: [chapters/01.md]\n", CHAPTER))
    assert [(p.key, p.line) for p in found] == [(key, 1)]
    found = problems_of(project(f"{key}: chapters\nchapters: [chapters/01.md]\n", CHAPTER))
    assert [p.key for p in found] == [key] and "is a folder" in found[0].message


# ------------------------------------------------------------ no chapters, empty


def test_no_chapters(project):
    problem = one(project("title: A Book\n"))
    assert problem.key == "chapters"
    assert "is missing" in problem.message and "source:" in problem.message


@pytest.mark.parametrize("value", ["[]", "{}", "chapters/01.md", "''"])
def test_chapters_must_be_a_non_empty_list(project, value):
    problem = one(project(f"chapters: {value}\n", CHAPTER))
    assert problem.key == "chapters"
    assert problem.line == 1


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(project, text):
    problem = one(project(text))
    assert problem.key is None
    assert problem.message.startswith("is empty")
    assert "audiobook init" in problem.message


def test_a_list_at_the_top(project):
    problem = one(project("- chapters/01.md\n", CHAPTER))
    assert "must be a mapping of keys" in problem.message and problem.line == 1


def test_missing_config_file(tmp_path):
    problem = one(tmp_path / "audiobook.yml")
    assert problem.message.startswith("not found; run `audiobook init`")


# ------------------------------------------------------------ YAML itself


@pytest.mark.parametrize(("text", "line"), [
    ("title: A\nchapters:\n  - source: a.md\n   title: bad indent\n", 4),
    ("title: 'unclosed\nchapters: []\n", 3),
    ("title: A\nnarrator: {voice: 1\nchapters: []\n", 3),
    ("title: A\n\tchapters: []\n", 2),
    ("title: A\n---\ntitle: B\n", 2),
])
def test_yaml_syntax_error_has_a_line(project, text, line):
    problem = one(project(text))
    assert problem.message.startswith("YAML syntax error: ")
    assert problem.line == line


def test_control_character_in_yaml(project, tmp_path):
    project("")
    (tmp_path / "audiobook.yml").write_bytes(b"title: A\nauthor: B\x01\nchapters: []\n")
    problem = one(tmp_path / "audiobook.yml")
    assert problem.line == 2 and "U+0001" in problem.message


def test_non_utf8_config_names_the_line(project, tmp_path):
    project("")
    (tmp_path / "audiobook.yml").write_bytes(b"title: A\n\nauthor: Ren\xe9\nchapters: []\n")
    problem = one(tmp_path / "audiobook.yml")
    assert problem.line == 3 and "UTF-8" in problem.message


def test_duplicate_keys(project):
    path = project("""\
        title: A
        narrator:
          voice: 1
          voice: 2
        title: B
        chapters:
          - source: chapters/01.md
            emotion: sad
            emotion: happy
        """, CHAPTER)
    assert [(p.line, p.key, p.message) for p in problems_of(path)] == [
        (4, "narrator.voice", "is given twice; keep one"),
        (5, "title", "is given twice; keep one"),
        (9, "chapters[0].emotion", "is given twice; keep one"),
    ]


def test_alias_bomb_and_recursive_alias_are_cheap(project):
    lines = ["x0: &x0 [a, a, a, a, a, a, a, a, a, a]"]
    for i in range(1, 15):
        lines.append(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 10) + "]")
    lines += ["pauses: {scene_ms: *x14}", "loop: &loop [*loop]", "chapters: [chapters/01.md]"]
    found = problems_of(project("\n".join(lines) + "\n", CHAPTER))
    assert len(found) == 17
    scene = next(p for p in found if p.key == "pauses.scene_ms")
    assert scene.message.endswith("not a list")  # the value is named, never expanded


def test_merge_keys_are_not_duplicates(project):
    cfg = load_config(project("""\
        narrator: &base {voice: 2072, emotion: calm}
        cast:
          holmes:
            <<: *base
            emotion: sad
        chapters: [chapters/01.md]
        """, CHAPTER))
    assert cfg.cast["holmes"] == {"voice": 2072, "emotion": 3}


def test_aliases_are_allowed_for_sharing_settings(project):
    cfg = load_config(project("""\
        narrator: &calm {voice: 2072, emotion: calm}
        cast:
          holmes: *calm
        chapters: [chapters/01.md]
        """, CHAPTER))
    assert cfg.cast["holmes"] == {"voice": 2072, "emotion": 8}


# ------------------------------------------------------------ secrets


@pytest.mark.parametrize(("text", "key", "line"), [
    ("api_key: sk-123\n", "api_key", 1),
    ("apiKey: sk-123\n", "apiKey", 1),
    ("api-key: sk-123\n", "api-key", 1),
    ("API_KEY: sk-123\n", "API_KEY", 1),
    ("AUDIOCLEANER_API_KEY: sk-123\n", "AUDIOCLEANER_API_KEY", 1),
    ("'api key': sk-123\n", "api key", 1),
    ("token: sk-123\n", "token", 1),
    ("narrator:\n  voice: 2072\n  apiKey: sk-123\n", "narrator.apiKey", 3),
    ("output:\n  api_key: sk-123\n", "output.api_key", 2),
    ("cast:\n  holmes: {voice: 2080, api-key: sk-123}\n", "cast.holmes.api-key", 2),
    ("cast:\n  apiKey: sk-123\n", "cast.apiKey", 2),
    ("chapters:\n  - source: chapters/01.md\n    x-api-key: sk-123\n", "chapters[0].x-api-key", 3),
])
def test_api_key_in_the_config_is_an_error(project, text, key, line):
    if "chapters:" not in text:
        text += "chapters: [chapters/01.md]\n"
    problem = one(project(text, CHAPTER))
    assert (problem.key, problem.line) == (key, line)
    assert "AUDIOCLEANER_API_KEY" in problem.message
    assert "sk-123" not in str(problem)  # the secret itself is never echoed


def test_api_key_under_an_unknown_section_is_reported_too(project):
    found = problems_of(project("audiocleaner:\n  apiKey: sk-123\nchapters: [chapters/01.md]\n",
                                CHAPTER))
    assert [(p.key, p.line) for p in found] == [("audiocleaner", 1), ("audiocleaner.apiKey", 2)]
    assert "AUDIOCLEANER_API_KEY" in found[1].message
    assert not any("sk-123" in str(p) for p in found)


def test_lexicon_words_that_look_like_secrets_are_words(project):
    cfg = load_config(project("lexicon: {token: toe-ken, API key: A P I key}\n"
                              "chapters: [chapters/01.md]\n", CHAPTER))
    assert cfg.lexicon == {"token": "toe-ken", "API key": "A P I key"}


@pytest.mark.parametrize("key", ["api_key", "apiKey", "api-key", "ApiKey", "X-Api-Key", "apikey",
                                 "audiocleaner_api_key", "access_token", "secret", "password"])
def test_is_secret_key(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["voice", "keys", "key", "title", "monkey", "tokens_per_second", 3])
def test_is_not_secret_key(key):
    assert not is_secret_key(key)


# ------------------------------------------------------------ loudness


@pytest.mark.parametrize(("value", "expected"), [
    ("acx", "acx"), ("ACX", "acx"), ("none", "none"), (None, "none"),
    (-18, -18.0), (-16.5, -16.5), ("-18", -18.0), ("-18 LUFS", -18.0), ("-23lufs", -23.0),
    ("-20 dB", "rms:-20"), ("-20dBFS", "rms:-20"), ("-19.5 db rms", "rms:-19.5"),
])
def test_parse_loudness(value, expected):
    # str() keeps the form older builds wrote into their fingerprints.
    assert str(parse_loudness(value)) == str(expected)


@pytest.mark.parametrize(("value", "kind", "level"), [
    ("acx", "acx", None), (None, "none", None), (-18, "lufs", -18.0), ("-20 dB", "rms", -20.0),
])
def test_loudness_is_typed(value, kind, level):
    assert parse_loudness(value) == Loudness(kind, level)


@pytest.mark.parametrize("value", [True, -3, -41, "loud", "18", "-18 sones", "-50 dB", [1]])
def test_parse_loudness_rejects(value):
    with pytest.raises(ValidationError) as info:
        parse_loudness(value)
    assert str(info.value)


def test_loudness_in_config(project):
    cfg = load_config(project("output: {loudness: '-20 dB'}\nchapters: [chapters/01.md]\n", CHAPTER))
    assert cfg.output.loudness == Loudness("rms", -20.0)
    problem = one(project("output:\n  loudness: loud\nchapters: [chapters/01.md]\n", CHAPTER))
    assert (problem.key, problem.line) == ("output.loudness", 2)


# ------------------------------------------------------------ lexicon file


def test_lexicon_file_merges_under_the_inline_lexicon(project):
    cfg = load_config(project("""\
        lexicon: {SQL: sequel}
        lexicon_file: words.yml
        chapters: [chapters/01.md]
        """, {**CHAPTER, "words.yml": "SQL: S Q L\nDr.: Doctor\ntoken: toe-ken\n"}))
    assert cfg.lexicon == {"SQL": "sequel", "Dr.": "Doctor", "token": "toe-ken"}


def test_lexicon_file_may_be_json(project):
    cfg = load_config(project("lexicon_file: words.json\nchapters: [chapters/01.md]\n",
                              {**CHAPTER, "words.json": '{"NASA": "nasa", "e.g.": "for example"}'}))
    assert cfg.lexicon == {"NASA": "nasa", "e.g.": "for example"}


def test_lexicon_file_problems_name_that_file(project):
    found = problems_of(project("lexicon_file: lists/words.yml\nchapters: [chapters/01.md]\n",
                                {**CHAPTER, "lists/words.yml": "SQL: sequel\nDr.: [a]\nSQL: x\n"}))
    assert [str(p) for p in found] == [
        "lists/words.yml:2: Dr.: must be how to say the word (text), not a list",
        "lists/words.yml:3: SQL: is given twice; keep one",
    ]


def test_lexicon_file_syntax_error_is_collected_with_the_rest(project):
    found = problems_of(project("lexicon_file: words.yml\nlangauge: en\nchapters: [chapters/01.md]\n",
                                {**CHAPTER, "words.yml": "a: [b\n"}))
    assert len(found) == 2
    assert any(p.file == "words.yml" and p.message.startswith("YAML syntax error") for p in found)
    assert any(p.key == "langauge" and p.line == 2 for p in found)


def test_lexicon_keys_have_whitespace_collapsed(project):
    cfg = load_config(project("lexicon: {'  New   York ': Big Apple}\nchapters: [chapters/01.md]\n",
                              CHAPTER))
    assert cfg.lexicon == {"New York": "Big Apple"}


# ------------------------------------------------------------ the line map


def test_line_of_reports_config_lines(project):
    cfg = load_config(project("title: A\nbackend: local\nchapters:\n  - chapters/01.md\n", CHAPTER))
    assert cfg.line_of("backend") == 2
    assert cfg.line_of("chapters[0]") == 4


# ------------------------------------------------------------ the schema, declared once


def test_every_key_has_a_doc_and_a_default_that_passes_its_own_check(tmp_path):
    from pipeline.config import SCHEMA, Output, options_of

    assert all(opt.doc for opt in SCHEMA.values())
    for cls in (Pauses, Output):
        assert all(opt.doc for opt in options_of(cls).values())
    cfg = Config.default(tmp_path)
    assert cfg.pauses == Pauses() and cfg.narrator == DEFAULT_NARRATOR
    assert cfg.output.dir == tmp_path.resolve() / "build"
    assert cfg.output.loudness == Loudness("acx") and cfg.output.m4b_bitrate == "64k"
    assert cfg.chapters == () and cfg.normalize is True and cfg.cache_remote is None
    assert cfg.credits.opening is False and cfg.credits.closing is False


def test_config_default_is_what_an_empty_file_gives(project):
    loaded = load_config(project("chapters: [chapters/01.md]\n", CHAPTER))
    default = Config.default(loaded.root)
    for name in ("title", "language", "backend", "narrator", "cast", "max_chars", "pauses",
                 "lexicon", "output", "cache_dir", "normalize", "credits", "cache_remote"):
        assert getattr(default, name) == getattr(loaded, name), name


# ------------------------------------------------------------ new keys


def test_new_keys_are_read(project):
    cfg = load_config(project("""\
        normalize: false
        credits: {opening: true}
        cache: {dir: store, remote: s3://my-bucket/books/}
        output: {formats: [mp3, m4b, vtt, epub], m4b_bitrate: 96k}
        chapters:
          - chapters/01.md
          - {source: chapters/01.md, normalize: true}
        """, CHAPTER))
    assert cfg.normalize is False
    assert (cfg.credits.opening, cfg.credits.closing) == (True, False)
    assert cfg.cache_remote == "s3://my-bucket/books"
    assert cfg.output.formats == ("mp3", "m4b", "vtt", "epub") and cfg.output.m4b_bitrate == "96k"
    assert [c.normalize for c in cfg.chapters] == [None, True]


def test_acx_bitrate_rule_is_for_the_mp3_only(project):
    cfg = load_config(project("output: {m4b_bitrate: 32k}\nchapters: [chapters/01.md]\n", CHAPTER))
    assert cfg.output.m4b_bitrate == "32k"


@pytest.mark.parametrize(("text", "key", "words"), [
    ("normalize: yes please\n", "normalize", "true or false"),
    ("credits: {opening: 1}\n", "credits.opening", "true or false"),
    ("credits: {middle: true}\n", "credits.middle", "unknown key"),
    ("output: {m4b_bitrate: 64}\n", "output.m4b_bitrate", "use e.g. 128k"),
    ("output: {formats: [mp3, pdf]}\n", "output.formats", "'pdf' is not a format"),
    ("cache: {remote: 'https://example.com/x'}\n", "cache.remote", "s3://BUCKET/PREFIX"),
    ("cache: {remote: 's3://AKIA:secret@bucket/x'}\n", "cache.remote", "credentials never go in"),
    ("cache: {aws_secret_access_key: abc}\n", "cache.aws_secret_access_key", "must not be written"),
])
def test_new_keys_are_checked(project, text, key, words):
    problem = one(project(text + "chapters: [chapters/01.md]\n", CHAPTER))
    assert (problem.key, problem.line) == (key, 1)
    assert words in problem.message
    assert "abc" not in str(problem)


def test_chapter_normalize_must_be_true_or_false(project):
    problem = one(project("chapters:\n  - source: chapters/01.md\n    normalize: 3\n", CHAPTER))
    assert (problem.key, problem.line) == ("chapters[0].normalize", 3)


def test_emotions_may_be_spelled_as_the_voice_library_does(project):
    cfg = load_config(project("narrator: {emotion: cheerful}\nchapters: [chapters/01.md]\n", CHAPTER))
    assert cfg.narrator["emotion"] == 1


# ------------------------------------------------------------ attack review F11, F17


def test_alias_bomb_in_select_is_refused_without_expanding_it(project):
    # F11: 458 bytes, 9 levels of 9 aliases, reached 2.5 GB when `select` was str()-ed.
    levels = ['&s0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"&s{i} [" + ",".join([f"*s{i - 1}"] * 9) + "]" for i in range(1, 9)]
    text = "chapters:\n  - source: chapters/01.md\n    select: [" + ", ".join(levels) + "]\n"
    config = project(text, CHAPTER)
    tracemalloc.start()
    try:
        found = problems_of(config)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 << 20  # 9**9 strings were never made (about 70 kB: the document itself)
    assert [(p.key, p.line) for p in found] == [("chapters[0].select", 3)]
    assert "not a list" in found[0].message


def test_a_document_that_expands_past_the_budget_is_refused(project, monkeypatch):
    import pipeline.config as config

    monkeypatch.setattr(config, "NODE_BUDGET", 50)
    text = "x: &x [a, a, a, a, a, a, a, a, a, a]\ncast: {" + ", ".join(
        f"v{i}: 20{i:02d}" for i in range(60)) + "}\nchapters: [chapters/01.md]\n"
    found = problems_of(project(text, CHAPTER))
    assert ("cast", 2) in [(p.key, p.line) for p in found]
    assert any("expands to more than 50 values" in p.message for p in found)


@pytest.mark.parametrize(("text", "key", "words"), [
    ("output: {dir: /}\n", "output.dir", "the root folder"),
    ("output: {dir: ..}\n", "output.dir", "a folder above the book"),
    ("output: {dir: ../..}\n", "output.dir", "a folder above the book"),
    ("output: {dir: chapters/01.md}\n", "output.dir", "is not a folder"),
    ("output: {dir: /dev/null}\n", "output.dir", "is not a folder"),
    ("cache: {dir: notadir}\n", "cache.dir", "is not a folder"),
    ("cover: notimage.jpg\n", "cover", "is not an image"),
])
def test_paths_the_build_would_trip_on_are_caught_by_check(project, text, key, words):
    # F17: `check` said ok for each of these and the build died with "internal error".
    path = project(text + "chapters: [chapters/01.md]\n",
                   {**CHAPTER, "notadir": "x\n", "notimage.jpg": "nope\n"})
    problem = one(path)
    assert (problem.key, problem.line) == (key, 1)
    assert words in problem.message


@pytest.mark.parametrize("value", [".", "build", "out/audio", "/tmp/somewhere-new"])
def test_ordinary_output_folders_are_allowed(project, value):
    cfg = load_config(project(f"output: {{dir: '{value}'}}\nchapters: [chapters/01.md]\n", CHAPTER))
    assert cfg.output.dir.name or value == "."


@pytest.mark.parametrize(("name", "head"), [
    ("c.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF"), ("c.png", b"\x89PNG\r\n\x1a\n\x00"),
    ("c.webp", b"RIFF\x10\x00\x00\x00WEBPVP8 "), ("c.gif", b"GIF89a\x01\x00"),
    ("c.svg", b"<?xml version='1.0'?>\n<svg xmlns='http://www.w3.org/2000/svg'/>"),
])
def test_cover_images_are_known_by_their_bytes(project, name, head):
    cfg = load_config(project(f"cover: {name}\nchapters: [chapters/01.md]\n", {**CHAPTER, name: head}))
    assert cfg.cover is not None and cfg.cover.name == name


@pytest.mark.parametrize("formats", ["[m4b, epub]", "[epub]"])
def test_a_read_along_epub_needs_no_chapter_mp3s(project, formats):
    # The EPUB carries the chapters' AAC (.m4a), made whether or not mp3 is an output.
    cfg = load_config(project(f"output: {{formats: {formats}}}\nchapters: [one.md]\n",
                              {"one.md": "Text.\n"}))
    assert "epub" in cfg.output.formats
