"""The build ledger: one record of what is current, and the front door that reads it.

Each case makes a change the way a user, a tool or a CI runner makes it
(an edit with the old mtime put back, bytes damaged in place, another
ffmpeg, a dependency upgrade, a moved book), then runs the real command
line and reads what it did.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline import ledger
from tests.conftest import run_cli

CONFIG = """\
title: Ledger Book
author: Tester
narrator: {voice: 2072}
output: {formats: [mp3, m4b], loudness: none}
segments: {max_chars: 200}
chapters:
  - source: one.md
  - source: two.md
"""

ONE = """\
# One

The lamp was lit at dusk, and the keeper climbed the stair.

Nobody came to the door that night.
"""

TWO = """\
# Two

The tide came in at noon.
"""


def _book(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "audiobook.yml").write_text(CONFIG, encoding="utf-8")
    (folder / "one.md").write_text(ONE, encoding="utf-8")
    (folder / "two.md").write_text(TWO, encoding="utf-8")
    return folder


def _build(folder: Path, *extra: str, env: dict[str, str] | None = None) -> dict:
    done = run_cli("build", "--json", *extra, cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _answered(folder: Path, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess:
    """A build run with -X importtime: its stderr also lists every module imported."""
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "pipeline", *args],
                          cwd=folder, env=full, capture_output=True, text=True, timeout=600)


def _imported(done: subprocess.CompletedProcess) -> set[str]:
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:")}


def _printed(done: subprocess.CompletedProcess) -> tuple[str, str]:
    err = "".join(line + "\n" for line in done.stderr.splitlines()
                  if not line.startswith("import time:"))
    return done.stdout, err


def _same_size_edit(path: Path, old: str, new: str) -> None:
    """Replace text with text of the same length and put the old times back (touch -r)."""
    assert len(old) == len(new)
    before = path.stat()
    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns


def _no_record(folder: Path, cache: Path) -> None:
    shutil.rmtree(cache / "ledger" / "builds", ignore_errors=True)


# ------------------------------------------------------------------ the front door


@pytest.mark.slow
def test_a_warm_no_op_is_answered_before_click_and_prints_what_the_full_build_prints(
        tmp_path, isolated_cache):
    folder = _book(tmp_path / "book")
    assert _build(folder)["segments_synthesized"] > 0
    for args in (["build"], ["build", "--json"], ["-q", "build"], ["build", "-c", "audiobook.yml"]):
        answered = _answered(folder, *args)
        assert answered.returncode == 0, answered.stderr
        modules = _imported(answered)
        assert "click" not in modules and "pipeline.cli" not in modules, args
        assert "pipeline.plan" not in modules and "pipeline.config" not in modules
        _no_record(folder, isolated_cache)
        full = _answered(folder, *args)
        assert full.returncode == 0 and "pipeline.plan" in _imported(full), args
        assert _printed(answered) == _printed(full), args
    summary = json.loads(_answered(folder, "build", "--json").stdout)
    assert summary["segments_synthesized"] == 0 and summary["chapters_written"] == 0
    verbose = _answered(folder, "build", "-v")
    assert "nothing to do" in verbose.stderr and "click" not in _imported(verbose)


@pytest.mark.slow
def test_what_the_front_door_does_not_know_goes_to_the_full_command_line(tmp_path):
    folder = _book(tmp_path / "book")
    _build(folder)
    for args in (["build", "1"], ["build", "--force"], ["build", "--backend", "local"],
                 ["--version"], ["plan"]):
        done = _answered(folder, *args)
        assert done.returncode == 0, (args, done.stderr)
        assert "click" in _imported(done), args
    assert _build(folder, "--force")["chapters_written"] == 2  # --force is never answered


@pytest.mark.slow
def test_an_edit_of_the_same_size_with_the_old_mtime_put_back_is_narrated(tmp_path):
    folder = _book(tmp_path / "book")
    _build(folder)
    _same_size_edit(folder / "one.md", "lamp", "LAMB")
    planned = run_cli("plan", "--json", cwd=folder)
    assert "LAMB" in planned.stdout
    again = _build(folder)
    assert again["segments_synthesized"] >= 1 and again["chapters_written"] == 1
    assert _build(folder)["chapters_written"] == 0


@pytest.mark.slow
def test_an_output_damaged_in_place_at_the_same_size_is_made_again(tmp_path):
    folder = _book(tmp_path / "book")
    _build(folder)
    manifest = json.loads((folder / "build" / "manifest.json").read_text(encoding="utf-8"))
    mp3 = folder / "build" / manifest["chapters"][0]["file"]
    before = mp3.stat()
    data = bytearray(mp3.read_bytes())
    data[2000:6000] = bytes(4000)
    mp3.write_bytes(bytes(data))
    os.utime(mp3, ns=(before.st_atime_ns, before.st_mtime_ns))
    again = _build(folder)
    assert again["chapters_written"] == 1 and again["segments_synthesized"] == 0
    assert ledger.sha256_file(str(mp3)) == manifest["chapters"][0]["sha256"]


@pytest.mark.slow
def test_another_ffmpeg_re_encodes_and_a_missing_one_is_never_answered(tmp_path):
    from pipeline.audio import ffmpeg_path

    wrapper = tmp_path / "ffmpeg"
    wrapper.write_text(f"#!/bin/sh\nexec {ffmpeg_path()} \"$@\"\n", encoding="utf-8")
    wrapper.chmod(0o755)
    env = {"AUDIOBOOK_FFMPEG": str(wrapper)}
    folder = _book(tmp_path / "book")
    _build(folder, env=env)
    assert _build(folder, env=env)["chapters_written"] == 0
    # Rebuilt: the same version line, other bytes.
    wrapper.write_text(wrapper.read_text(encoding="utf-8") + "# rebuilt\n", encoding="utf-8")
    assert _build(folder, env=env)["chapters_written"] == 2
    wrapper.unlink()
    gone = run_cli("build", cwd=folder, env=env)
    assert gone.returncode == 1 and "AUDIOBOOK_FFMPEG" in gone.stderr


@pytest.mark.slow
def test_a_changed_distribution_re_plans_and_is_not_answered(project, monkeypatch):
    import pipeline.plan
    from pipeline.build import build
    from pipeline.cache import open_cache
    from pipeline.config import load_config

    project(CONFIG, {"one.md": ONE, "two.md": TWO})
    build(load_config("audiobook.yml"), record_as=os.path.abspath("audiobook.yml"))
    assert ledger.answer(["build", "-q"]) == 0
    read: list[str] = []
    real = pipeline.plan.load_entry
    monkeypatch.setattr(pipeline.plan, "load_entry", lambda e: read.append(e.display) or real(e))

    def plan() -> None:
        cfg = load_config("audiobook.yml")
        with open_cache(cfg) as cache:
            pipeline.plan.make_plan(cfg, cache)

    plan()
    assert read == []  # the memo holds
    names = ledger.distributions()
    monkeypatch.setattr(ledger, "distributions", lambda: [*names, "num2words-99.0"])
    assert ledger.answer(["build", "-q"]) is None
    plan()
    assert len(read) == 2  # an upgrade may change the text sent: planned again


@pytest.mark.slow
def test_a_new_input_file_or_a_journaled_task_is_never_answered(tmp_path, isolated_cache):
    folder = _book(tmp_path / "book")
    _build(folder)
    (isolated_cache / "pending").mkdir(exist_ok=True)
    (isolated_cache / "pending" / ("a" * 64 + ".json")).write_text("{}")
    assert "click" in _imported(_answered(folder, "build"))
    (isolated_cache / "pending" / ("a" * 64 + ".json")).unlink()
    assert "click" in _imported(_answered(folder, "build"))  # that build left no record
    assert "click" not in _imported(_answered(folder, "build"))
    config = folder / "audiobook.yml"
    config.write_text(CONFIG + "  - source: three.md\n", encoding="utf-8")
    (folder / "three.md").write_text("# Three\n\nA third chapter.\n", encoding="utf-8")
    added = _build(folder)
    assert added["segments_synthesized"] == 1 and added["chapters_written"] >= 1


def test_the_record_holds_no_secret(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.setenv("AUDIOCLEANER_API_KEY", "sk-very-secret-value")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-very-secret-value")
    assert ["AUDIOCLEANER_API_KEY", "<set>"] in ledger.environment()
    config = tmp_path / "audiobook.yml"
    config.write_text("title: x\n")
    ledger.write_record(str(isolated_cache), str(config), files=[], binaries=[], segments=[],
                        warnings=[], noop={}, out_dir=str(tmp_path))
    for path in (isolated_cache / "ledger").rglob("*"):
        if path.is_file():
            assert b"very-secret" not in path.read_bytes()
    key = ledger.record_key(str(config))
    monkeypatch.setenv("AUDIOCLEANER_API_KEY", "another-key")
    assert ledger.record_key(str(config)) == key  # presence, not value


def test_a_file_is_hashed_again_only_when_its_stat_moved_or_is_racy(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("one")
    sigs = ledger.Signatures(tmp_path / "cache")
    first = sigs.digest(path)
    # Written just now: racy, so a same-size edit in the same tick is still seen.
    path.write_text("two")
    assert sigs.digest(path) == ledger.sha256_file(str(path)) != first
    # An old file whose stat is unchanged is trusted without reading.
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    digest = sigs.digest(path)
    sigs.save()
    again = ledger.Signatures(tmp_path / "cache")
    entry = again.entry(str(path))
    assert entry is not None and entry[6] == digest and ledger.holds(entry)
    path.write_text("six")  # same size
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # and the old mtime: ctime moved
    assert not ledger.holds(entry)
    assert again.digest(path) == ledger.sha256_file(str(path))


# ------------------------------------------------------------------ the declared set


_RECORDER = textwrap.dedent("""\
    import json, os, sys
    opened = []

    def hook(event, args):
        if event == "open" and isinstance(args[0], (str, bytes)):
            mode = args[1] if isinstance(args[1], str) else ""
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            if "w" not in mode and "a" not in mode and "+" not in mode and not (flags & 3):
                opened.append(os.path.abspath(os.fsdecode(args[0])))

    sys.addaudithook(hook)
    from pipeline.cli import main
    code = main(["build", "-q"])
    print(json.dumps(opened))
    sys.exit(code)
""")


@pytest.mark.slow
def test_a_build_reads_nothing_outside_its_declared_inputs(tmp_path, isolated_cache):
    """The stamp's recorder, kept as a checker: what a build reads is what it declares.

    Every file a build opens for reading is one of the config's declared
    inputs (Config.inputs), or lies in the cache or output folder, the
    package, the Python install, or the system's own folders.
    """
    folder = _book(tmp_path / "book")
    (folder / "lexicon.yml").write_text("keeper: keepuh\n", encoding="utf-8")
    (folder / "audiobook.yml").write_text(CONFIG + "lexicon_file: lexicon.yml\n",
                                          encoding="utf-8")
    for _ in range(2):  # a build that makes everything, then one that finds it all current
        done = subprocess.run([sys.executable, "-c", _RECORDER], cwd=folder, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        opened = set(json.loads(done.stdout.splitlines()[-1]))
        from pipeline.config import load_config

        declared = {str(p) for p in load_config(folder / "audiobook.yml").inputs()}
        assert str(folder / "lexicon.yml") in declared
        allowed = (str(isolated_cache), str(folder / "build"), sys.prefix, sys.base_prefix,
                   str(Path(ledger.__file__).parent), "/dev/", "/proc/", "/sys/", "/etc/",
                   "/usr/")
        stray = sorted(p for p in opened
                       if p not in declared and not p.startswith(allowed))
        assert stray == [], stray
        assert declared & opened  # the hook did see the reads


@pytest.mark.slow
def test_a_build_that_warned_past_its_plan_leaves_no_record(project, monkeypatch):
    """A no-op prints the plan's warnings again; one from writing may or may not recur."""
    import logging

    import pipeline.build
    from pipeline.build import build
    from pipeline.config import load_config

    project(CONFIG, {"one.md": ONE, "two.md": TWO})
    real = pipeline.build.package.write_outputs

    def warns(*args, **kwargs):
        logging.getLogger("pipeline").warning("the cover could not be used")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline.build.package, "write_outputs", warns)
    build(load_config("audiobook.yml"), record_as=os.path.abspath("audiobook.yml"))
    assert ledger.answer(["build"]) is None
    monkeypatch.setattr(pipeline.build.package, "write_outputs", real)
    build(load_config("audiobook.yml"), record_as=os.path.abspath("audiobook.yml"))
    assert ledger.answer(["build", "-q"]) == 0
