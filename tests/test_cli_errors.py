"""Broken input through the real command line: exit 2, a line naming the file or
key, and no traceback. A few subprocess runs; the many config cases are in
test_config.py."""

from __future__ import annotations

import json

import click
import pytest

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.errors import InputError
from pipeline.starter import write_starter
from tests.conftest import run_cli

CHAPTER = "# One\n\nSome text to read.\n"
GOOD = "chapters:\n  - source: chapters/01.md\n"


def in_process(capsys, *args: str):
    """main(argv) in this process, answered like subprocess.run's result."""
    from types import SimpleNamespace

    code = main(list(args))
    out, err = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


def assert_input_error(result, *needles: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.mark.parametrize(("command", "config", "files", "needles"), [
    ("check", "title: A\nchapters:\n  - source: a.md\n   title: x\n", {},
     ["audiobook.yml:4: YAML syntax error"]),
    ("build", "titel: A\n" + GOOD, {}, ["audiobook.yml:1: titel: unknown key; did you mean 'title'?"]),
    ("plan", "segments: {max_chars: lots}\n" + GOOD, {}, ["audiobook.yml:1: segments.max_chars:"]),
    ("check", "narrator: {speed: 2.5}\n" + GOOD, {},
     ["audiobook.yml:1: narrator.speed: 2.5 is out of range"]),
    ("build", GOOD + "    emotion: hapy\n", {},
     ["audiobook.yml:3: chapters[0].emotion: 'hapy' is not an emotion; did you mean 'happy'?"]),
    ("check", "language: english\n" + GOOD, {},
     ["audiobook.yml:1: language: 'english' is not a language key; did you mean 'en'?"]),
    ("build", "chapters: [chapters/gone.md]\n", {}, ["chapters[0].source: chapters/gone.md: no such file"]),
    ("build", GOOD, {"chapters/01.md": ""}, ["error: chapters/01.md: is empty"]),
    ("plan", GOOD, {"chapters/01.md": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"},
     ["error: chapters/01.md: is a binary file"]),
    ("build", GOOD, {"chapters/01.md": b"# T\n\nCaf\xe9.\n"}, ["error: chapters/01.md:3: is not UTF-8"]),
    ("check", "narrator:\n  apiKey: sk-do-not-print\n" + GOOD, {},
     ["audiobook.yml:2: narrator.apiKey:", "AUDIOCLEANER_API_KEY"]),
    ("build", "title: No chapters\n", {}, ["audiobook.yml: chapters: is missing"]),
    ("check", "", {}, ["audiobook.yml: is empty"]),
])
def test_broken_input_exits_2_naming_the_file_or_key(project, tmp_path, capsys, command, config,
                                                     files, needles):
    project(config, {"chapters/01.md": CHAPTER, **files})
    result = in_process(capsys, command)  # one subprocess run below checks the real entry point
    assert_input_error(result, *needles)
    assert "sk-do-not-print" not in result.stderr + result.stdout
    assert not (tmp_path / "build").exists()  # nothing was made


def test_check_lists_every_problem_at_once(project, tmp_path, capsys):
    project("""\
        langauge: en
        narrator: {emotion: hapy, speed: 9}
        chapters:
          - source: chapters/01.md
          - source: chapters/missing.md
        """, {"chapters/01.md": CHAPTER})
    result = in_process(capsys, "check")
    assert_input_error(result)
    lines = result.stderr.splitlines()
    assert [line.split(": ")[2] for line in lines] == [
        "langauge", "narrator.emotion", "narrator.speed", "chapters[1].source"]
    assert all(line.startswith("error: audiobook.yml:") for line in lines)


def test_check_lists_every_broken_source_at_once(project, tmp_path, capsys):
    project("chapters: [a.md, b.md, c.md, d.md]\n", {
        "a.md": "", "b.md": b"\x00\x01binary", "c.md": b"ok\n\xff\n", "d.md": "```\ncode\n```\n"})
    result = in_process(capsys, "check")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [line.removeprefix("error: ") for line in result.stderr.splitlines()] == [
        "a.md: is empty; write some text or remove it from the chapters",
        "b.md: is a binary file, not Markdown text",
        "c.md:2: is not UTF-8 text (byte 0xff); save it as UTF-8",
        "d.md: has no text to read (only code, tables, images or markup)",
    ]


@pytest.mark.slow
def test_verbose_keeps_the_plain_error_and_exit_code(project, tmp_path):
    project("titel: A\n" + GOOD, {"chapters/01.md": CHAPTER})
    result = run_cli("-v", "check", cwd=tmp_path)
    assert result.returncode == 2
    assert "error: " in result.stderr and "titel: unknown key" in result.stderr


def test_config_flag_resolves_paths_against_the_config_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_starter(tmp_path / "book")
    result = in_process(capsys, "-c", "book/audiobook.yml", "check")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert load_config(tmp_path / "book" / "audiobook.yml").chapters[0].source.is_file()


def test_init_then_check_passes_and_init_refuses_to_overwrite(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    first = in_process(capsys, "init")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "audiobook.yml").is_file()
    assert (tmp_path / "chapters" / "01-first-chapter.md").is_file()

    check = in_process(capsys, "check")
    assert check.returncode == 0, check.stderr
    assert "ok" in check.stdout

    (tmp_path / "audiobook.yml").write_text(
        (tmp_path / "audiobook.yml").read_text() + "# my edit\n")
    again = in_process(capsys, "init")
    assert_input_error(again, "audiobook.yml: already exists")
    assert (tmp_path / "audiobook.yml").read_text().endswith("# my edit\n")


def test_init_into_a_file_is_an_input_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("x")
    result = in_process(capsys, "init", "taken")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "taken" in result.stderr and "is a file" in result.stderr
    # The library says the same to a caller that is not the CLI.
    with pytest.raises(InputError, match="taken: is a file"):
        write_starter(tmp_path / "taken")


def test_init_writes_nothing_when_either_file_exists(tmp_path):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "01-first-chapter.md").write_text("mine")
    with pytest.raises(InputError, match="01-first-chapter.md: already exists"):
        write_starter(tmp_path)
    assert not (tmp_path / "audiobook.yml").exists()
    assert (tmp_path / "chapters" / "01-first-chapter.md").read_text() == "mine"


_BOMB = ("    select: [&s0 [lol, lol, lol, lol, lol, lol, lol, lol, lol], "
         + ", ".join(f"&s{i} [" + ", ".join([f"*s{i - 1}"] * 9) + "]" for i in range(1, 9)) + "]\n")


@pytest.mark.parametrize(("command", "config", "needles"), [
    # attack review F11: an alias bomb inside select was a 2.5 GB MemoryError (exit 1)
    ("check", GOOD + _BOMB, ["audiobook.yml:3: chapters[0].select:"]),
    # F17: each of these passed `check` and the build ended in "internal error" (exit 1)
    ("check", "output: {dir: chapters/01.md}\n" + GOOD, ["audiobook.yml:1: output.dir:"]),
    ("build", "output: {dir: /dev/null}\n" + GOOD, ["audiobook.yml:1: output.dir:"]),
    ("build", "output: {dir: ..}\n" + GOOD, ["output.dir: .. is a folder above the book"]),
    ("build", "cache: {dir: chapters/01.md}\n" + GOOD, ["audiobook.yml:1: cache.dir:"]),
    ("build", "cover: chapters/01.md\n" + GOOD, ["audiobook.yml:1: cover: chapters/01.md is not an image"]),
    # issue 11: a malformed lexicon pattern
    ("plan", "lexicon:\n  '/(x/': ex\n" + GOOD, ["audiobook.yml:2: lexicon./(x/: is not a valid pattern"]),
])
@pytest.mark.slow
def test_config_mistakes_the_build_would_trip_on_exit_2(project, tmp_path, command, config, needles):
    project(config, {"chapters/01.md": CHAPTER})
    result = run_cli(command, cwd=tmp_path)
    assert_input_error(result, *needles)
    assert not (tmp_path / "build").exists()


@pytest.mark.slow
def test_say_without_a_config_uses_the_declared_defaults(tmp_path):
    # No audiobook.yml: Config.default() supplies the narrator, so a cast name is unknown.
    result = run_cli("say", "Hello.", "-o", str(tmp_path / "x.mp3"), "--voice", "holmes", cwd=tmp_path)
    assert_input_error(result, "--voice: 'holmes' is not a voice id or a cast name (cast: none)")
    result = run_cli("say", "Hello.", "-o", str(tmp_path / "x.mp3"), "--emotion", "cheerful",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x.mp3").stat().st_size > 1000
    assert not (tmp_path / "audiobook.yml").exists()


# --- in process, through main(argv) -> int


def test_init_prints_the_exact_next_commands(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "my book"]) == 0
    out = capsys.readouterr().out
    assert "cd 'my book' && audiobook build" in out
    assert main(["-c", "my book/audiobook.yml", "-q", "check"]) == 0


def test_voices_in_a_fresh_project_says_where_to_get_a_library(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_starter(tmp_path)
    assert main(["voices"]) == 0
    out = capsys.readouterr().out
    assert "Playground" in out and "voices: voices.json" in out and "--backend local" in out


def test_voices_backend_local_lists_the_offline_voices(tmp_path, monkeypatch, capsys):
    import pipeline.tts.local as local
    from pipeline.voices import VoiceInfo

    monkeypatch.chdir(tmp_path)
    records = [{"id": 1, "name": "en-us", "display_name": "English (US)", "gender": 1, "age": None,
                "language": "all", "emotion": ["neutral", "happy"]},
               {"id": 2, "name": "en-gb", "display_name": "English (GB)", "gender": 2, "age": None,
                "language": "all", "emotion": ["neutral"]}]
    monkeypatch.setattr(local, "offline_voices", raising=False, value=lambda: records)
    assert main(["voices", "--backend", "local", "--gender", "female"]) == 0
    out = capsys.readouterr().out
    assert "English (GB)" in out and "English (US)" not in out
    monkeypatch.setattr(local, "offline_voices", raising=False,
                        value=lambda: [VoiceInfo(3, "x", "Library Shape", 1, None, "en", ())])
    assert main(["voices", "--backend", "local", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["display_name"] == "Library Shape"


def test_an_internal_error_is_one_line_and_a_log_with_versions(project, monkeypatch, capsys,
                                                               isolated_cache):
    import pipeline.plan

    project(GOOD, {"chapters/01.md": CHAPTER})

    def broken(*args, **kwargs):
        raise RuntimeError("wires crossed")

    monkeypatch.setattr(pipeline.plan, "make_plan", broken)
    assert main(["plan"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: wires crossed" in err
    log = (isolated_cache / "audiobook-error.log").read_text()
    assert "audiobook-pipeline" in log and "python" in log and "wires crossed" in log
    assert main(["plan", "-v"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_ctrl_c_exits_130_and_says_the_audio_is_kept(project, monkeypatch, capsys):
    import pipeline.build

    project(GOOD, {"chapters/01.md": CHAPTER})

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline.build, "make_plan", interrupted)
    assert main(["build"]) == 130
    assert "kept in the cache" in capsys.readouterr().err


def test_check_exits_0_when_clean_and_2_on_errors(project, capsys):
    project(GOOD, {"chapters/01.md": CHAPTER})
    assert main(["check"]) == 0
    project("titel: x\n" + GOOD)
    assert main(["check"]) == 2
    assert capsys.readouterr().err.startswith("error: audiobook.yml:1: titel")


def test_every_option_of_the_core_commands_has_help_text():
    from pipeline.cli import cli

    owned = ["init", "check", "plan", "build", "voices", "say"]
    missing = [f"{name} {p.opts[0]}" for name in owned for p in cli.commands[name].params
               if isinstance(p, click.Option) and not p.help]
    missing += [f"audiobook {p.opts[0]}" for p in cli.params
                if isinstance(p, click.Option) and not p.help]
    assert not missing
