"""Voices and casting: the library, validation, switches, distinct offline voices."""

from __future__ import annotations

import hashlib
import json

import pytest

from pipeline.cache import open_cache
from pipeline.config import load_config
from pipeline.errors import InputError
from pipeline.plan import make_plan
from pipeline.voices import filter_voices, find_voice, load_library
from tests.conftest import run_cli

LIBRARY = {
    "code": 100000,
    "data": {"total": 3, "records": [
        {"id": 2072, "gender": 2, "language": "en", "age": 2, "emotion": ["chat", "sad"],
         "name": "madison", "display_name": "Madison"},
        {"id": 2080, "gender": 1, "language": "en", "age": 3, "emotion": ["calm"],
         "name": "arthur", "display_name": "Arthur"},
        {"id": 3104, "gender": 1, "language": "fr", "age": 2, "emotion": ["cheerful"],
         "name": "lucien", "display_name": "Lucien"},
    ]},
    "message": "Request Success",
}

CONFIG = """\
title: Cast
voices: voices.json
narrator: {voice: 2072}
cast:
  holmes: {voice: arthur, emotion: calm}
output: {formats: [mp3], loudness: none}
chapters:
  - source: one.md
"""

CHAPTER = """\
# One

The narrator begins.

<!-- voice: holmes -->

"You have been in Afghanistan, I perceive."

<!-- emotion: sad, speed: 0.9 -->

"Still Holmes, but sadder and slower."

<!-- narrator -->

The narrator ends.
"""


@pytest.fixture
def cast_project(project):
    return project(CONFIG, {"one.md": CHAPTER, "voices.json": json.dumps(LIBRARY)})


def test_library_accepts_the_full_response_the_data_object_or_bare_records(tmp_path):
    for shape in (LIBRARY, LIBRARY["data"], LIBRARY["data"]["records"]):
        path = tmp_path / "v.json"
        path.write_text(json.dumps(shape))
        assert [v.id for v in load_library(path)] == [2072, 2080, 3104]


def test_library_errors_name_the_file(tmp_path):
    path = tmp_path / "v.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="v.json"):
        load_library(path)
    path.write_text(json.dumps({"data": {"items": []}}))
    with pytest.raises(InputError, match="data.records"):
        load_library(path)


def test_voices_are_found_by_id_name_or_display_name(tmp_path):
    path = tmp_path / "v.json"
    path.write_text(json.dumps(LIBRARY))
    library = load_library(path)
    assert find_voice(library, 2080).name == "arthur"
    assert find_voice(library, "Arthur").id == 2080
    assert find_voice(library, "lucien").id == 3104
    assert find_voice(library, 9999) is None
    assert [v.id for v in filter_voices(library, gender="male")] == [2080, 3104]
    assert [v.id for v in filter_voices(library, emotion="SAD")] == [2072]


@pytest.mark.slow
def test_voices_command_filters_and_prints_json(cast_project, tmp_path):
    result = run_cli("voices", "--json", "--language", "en", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [v["id"] for v in json.loads(result.stdout)] == [2072, 2080]
    table = run_cli("voices", "--gender", "female", cwd=tmp_path)
    assert "Madison" in table.stdout and "Arthur" not in table.stdout


def test_switches_move_paragraphs_between_cast_voices(cast_project):
    cfg = load_config(cast_project)
    cache = open_cache(cfg)
    segments = make_plan(cfg, cache).as_json()["chapters"][0]["segments"]
    cache.close()

    def settings(text: str) -> tuple:
        # A heading may share its request with the paragraph after it; a switch never does.
        (found,) = [(s["voice"], s["emotion"], s["speed"]) for s in segments if text in s["text"]]
        return found

    assert settings("The narrator begins.") == (2072, 0, 1.0)
    assert settings('"You have been in Afghanistan, I perceive."') == (2080, 8, 1.0)
    assert settings('"Still Holmes, but sadder and slower."') == (2080, 3, 0.9)
    assert settings("The narrator ends.") == (2072, 0, 1.0)


@pytest.mark.slow
def test_unknown_voice_gets_exit_2_with_a_suggestion(project, tmp_path):
    project(CONFIG.replace("voice: 2072", "voice: 2073"),
            {"one.md": CHAPTER, "voices.json": json.dumps(LIBRARY)})
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 2
    assert "audiobook.yml:3: narrator.voice: 2073 is not in the voice library" in result.stderr
    assert "did you mean 2072 (Madison)" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_unknown_voice_name_in_a_switch_names_the_source_line(project, tmp_path):
    project(CONFIG, {"one.md": CHAPTER.replace("voice: holmes", "voice: artur"),
                     "voices.json": json.dumps(LIBRARY)})
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 2
    assert "one.md:5: voice: 'artur' is not in the voice library; did you mean 2080 (Arthur)?" \
        in result.stderr


@pytest.mark.slow
def test_a_french_voice_in_an_english_book_is_a_warning(project, tmp_path):
    project(CONFIG.replace("holmes: {voice: arthur", "holmes: {voice: 3104"),
            {"one.md": CHAPTER, "voices.json": json.dumps(LIBRARY)})
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning: voice: voice 3104 (Lucien) speaks 'fr' but reads 'en' text here" in result.stderr


@pytest.mark.slow
def test_say_gives_three_different_files_for_two_voices_and_two_emotions(cast_project, tmp_path):
    runs = [("--voice", "2072"), ("--voice", "2080"), ("--voice", "2072", "--emotion", "angry")]
    digests = set()
    for i, args in enumerate(runs):
        out = tmp_path / f"say{i}.mp3"
        result = run_cli("say", "Where is the light tonight?", "-o", str(out), *args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
    assert len(digests) == 3
    bad = run_cli("say", "Hi", "-o", str(tmp_path / "x.mp3"), "--voice", "9999", cwd=tmp_path)
    assert bad.returncode == 2 and "did you mean" in bad.stderr


@pytest.mark.slow
def test_voices_needs_only_the_voices_key_or_a_file(tmp_path):
    (tmp_path / "lib.json").write_text(json.dumps(LIBRARY))
    (tmp_path / "audiobook.yml").write_text("voices: lib.json\n")  # no chapters yet
    listed = run_cli("voices", "--json", "--language", "fr", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [v["id"] for v in json.loads(listed.stdout)] == [3104]
    (tmp_path / "audiobook.yml").write_text("title: No voices\n")
    missing = run_cli("voices", cwd=tmp_path)
    # Not an error (core brief, issue 16): it says where a library comes from.
    assert missing.returncode == 0 and "Playground" in missing.stdout
    direct = run_cli("voices", "--file", "lib.json", "--json", cwd=tmp_path)
    assert [v["id"] for v in json.loads(direct.stdout)] == [2072, 2080, 3104]


@pytest.mark.slow
def test_config_option_works_after_the_command_too(cast_project, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    after = run_cli("voices", "--json", "-c", str(cast_project), cwd=other)
    before = run_cli("-c", str(cast_project), "voices", "--json", cwd=other)
    assert after.returncode == before.returncode == 0, after.stderr
    assert after.stdout == before.stdout


# ------------------------------------------------------------ emotion spellings, offline ids


@pytest.mark.parametrize(("emotion", "ids"), [
    ("happy", [3104]),  # the library spells it "cheerful"
    ("cheerful", [3104]), ("1", [3104]), ("sad", [2072]), ("chat", [2072]), ("afraid", []),
])
def test_voices_filter_by_the_api_or_the_library_spelling(tmp_path, emotion, ids):
    path = tmp_path / "voices.json"
    path.write_text(json.dumps(LIBRARY))
    assert [v.id for v in filter_voices(load_library(path), emotion=emotion)] == ids


@pytest.mark.slow
def test_voices_command_finds_happy_voices(cast_project, tmp_path):
    result = run_cli("voices", "--emotion", "happy", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [v["id"] for v in json.loads(result.stdout)] == [3104]


def test_unknown_offline_voice_id_is_an_error_with_suggestions(project):
    # The real offline table (tts.local.offline_voices): eSpeak's variants 1-18 and
    # stand-ins for 2072, 2080 and 2091.
    path = project("narrator: {voice: 2073}\ncast: {holmes: 2080}\nchapters: [one.md]\n",
                   {"one.md": "# One\n\nText.\n"})
    with pytest.raises(InputError) as info:
        make_plan(load_config(path), open_cache(load_config(path)))
    [problem] = set(info.value.problems)  # the plan names it for the config and the chapter alike
    assert (problem.key, problem.line) == ("narrator.voice", 1)
    assert "2073 is not a voice of the offline backend; did you mean 2072 or 2080" in problem.message


def test_offline_voice_ids_are_not_judged_with_a_library_or_the_paid_backend(project):
    files = {"one.md": "# One\n\nText.\n", "voices.json": json.dumps(LIBRARY)}
    for extra in ("voices: voices.json\nnarrator: {voice: 2080}\n",
                  "backend: audiocleaner\nnarrator: {voice: 9999}\n"):
        cfg = load_config(project(extra + "chapters: [one.md]\n", files))
        make_plan(cfg, open_cache(cfg))  # no error
