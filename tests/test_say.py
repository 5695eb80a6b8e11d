"""`say` is a one-chapter build: the same text rules, the same cache, no cache in the cwd."""

from __future__ import annotations

import json

import pytest

from pipeline import audio
from pipeline.cache import open_cache
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.plan import make_plan
from pipeline.say import say

NBSP = "\u00a0"
CONFIG = """\
title: Say Book
narrator: {voice: 2072}
lexicon: {"New York": "the Big Apple"}
output: {formats: [mp3], loudness: none}
chapters:
  - source: one.md
"""


def test_say_and_build_send_the_same_text_for_the_same_input(project, tmp_path):
    sentence = f"We flew to New{NBSP}York at dawn."
    cfg = load_config(project(CONFIG, {"one.md": f"{sentence}\n"}))
    with open_cache(cfg) as cache:
        built = [s.text for cp in make_plan(cfg, cache).chapters for s in cp.segments]
    said = say(cfg, sentence, tmp_path / "said.mp3", {})
    # Same text, same voice: the build finds say's audio in the cache.
    with open_cache(cfg) as cache:
        assert make_plan(cfg, cache).totals()["credits_to_spend"] == 0
    assert built == said["texts"] == ["We flew to the Big Apple at dawn."]


@pytest.mark.slow
def test_say_writes_speech_in_each_format(project, tmp_path):
    cfg = load_config(project(CONFIG, {"one.md": "Text.\n"}))
    for suffix in (".mp3", ".wav", ".m4a"):
        out = tmp_path / f"hello{suffix}"
        say(cfg, "Hello there. This is a second sentence.", out, {"speed": "1.2"})
        pcm = audio.decode(out.read_bytes(), suffix[1:], 16000)
        assert pcm.duration_seconds > 1 and pcm.dBFS > -40


def test_say_without_a_config_uses_the_user_cache_folder_not_the_cwd(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.delenv("AUDIOBOOK_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    assert main(["say", "Nothing but a test.", "-o", "out.wav"]) == 0
    assert "wrote out.wav" in capsys.readouterr().out
    assert sorted(p.name for p in work.iterdir()) == ["out.wav"]
    assert (home / ".cache" / "audiobook-pipeline" / "README.txt").exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["say", "Hi", "-o", "x.ogg"], "use a .mp3, .wav or .m4a"),
    (["say", "   ", "-o", "x.mp3"], "TEXT: is empty"),
    (["say", "Hi", "-o", "x.mp3", "--speed", "9"], "--speed"),
    (["say", "Hi", "-o", "x.mp3", "--voice", "holmes"], "--voice"),
])
def test_say_refuses_bad_input_with_exit_2(tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_say_with_a_config_uses_its_cast(project, tmp_path, capsys):
    project(CONFIG + "cast:\n  holmes: {voice: 2080, emotion: calm}\n", {"one.md": "Text.\n"})
    assert main(["say", "Elementary.", "-o", "h.wav", "--voice", "holmes"]) == 0
    assert main(["-q", "plan", "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["title"] == "Say Book"


def test_say_with_a_named_config_that_is_missing_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["say", "Hi", "-o", "x.wav", "-c", "nope.yml"]) == 2
    assert "nope.yml" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()
