"""The build stamp: a no-op build answered before planning, and never when a build would act."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import stamp
from tests.conftest import run_cli
from tests.test_build import CONFIG, ONE, TWO

REPO = Path(__file__).resolve().parent.parent


def run(folder: Path, *args: str, env: dict[str, str] | None = None) -> tuple[str, str, bool]:
    """(stdout, stderr, served by the stamp) of `python -m pipeline ARGS`.

    -X importtime names every module imported; a stamped build imports no
    part of the command line. importtime's lines are taken out of stderr.
    """
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "pipeline", *args],
                          cwd=folder, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    imported = [line for line in lines if line.startswith("import time:")]
    err = "".join(line + "\n" for line in lines if not line.startswith("import time:"))
    return proc.stdout, err, not any(line.endswith(" pipeline.cli") for line in imported)


def stamps(cache: Path) -> list[Path]:
    return sorted((cache / "stamps").glob("*.json"))


@pytest.fixture
def book(project):
    folder = project(CONFIG, {"one.md": ONE, "two.md": TWO}).parent
    # A file read within 2 s of its last change is not vouched for (see
    # stamp.RACY_NS); a user's sources are older than that when they build.
    time.sleep(2.1)
    return folder


@pytest.mark.slow
def test_a_no_op_build_is_answered_by_the_stamp_and_says_what_a_planned_one_says(
        book, isolated_cache, monkeypatch):
    cache = isolated_cache / "made-by-the-first-build"
    monkeypatch.setenv("AUDIOBOOK_CACHE_DIR", str(cache))
    first = run(book, "build")
    assert not first[2] and "2 chapter(s) written" in first[1]
    # The build that made audio looked once more, silently, and left a stamp.
    assert len(stamps(cache)) == 1
    assert run(book, "build")[2]
    for args in [("build",), ("build", "--json"), ("build", "-q"), ("-q", "build", "2")]:
        for path in stamps(cache):
            path.unlink()
        planned = run(book, *args)  # a no-op that plans, and leaves this line's stamp
        assert not planned[2], args
        stamped = run(book, *args)
        assert stamped[2], args
        assert stamped[:2] == planned[:2], args
    run(book, "build")  # its stamp went in the loop: this one plans
    out, err, served = run(book, "build")
    assert served and out.strip().endswith("build") and "0 chapter(s) written, 2 unchanged" in err
    assert json.loads(run(book, "build", "--json")[0])["chapters_unchanged"] == 2


def _fresh_outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "build").glob("*.mp3"))}


def _change(book: Path, change: str) -> dict[str, str] | None:
    if change == "edit a sentence, same length":
        text = (book / "one.md").read_text()
        (book / "one.md").write_text(text.replace("dusk", "dawn"))
    elif change == "edit the config":
        # The year, a tag of every file (the author is part of the book's identity: an
        # output folder of another author's book is refused).
        (book / "audiobook.yml").write_text(CONFIG.replace("author: Tester", "author: Tester\nyear: 2027"))
    elif change == "delete an output":
        next((book / "build").glob("01-*.mp3")).unlink()
    elif change == "clear the cache":
        assert run_cli("cache", "clear", "--yes", cwd=book,
                       env={"PYTHONPATH": str(REPO)}).returncode == 0
    elif change == "set an AUDIOBOOK_ variable":
        return {"AUDIOBOOK_SOMETHING_NEW": "1"}
    elif change == "touch a source":  # a chapter's plan is remembered by its source's stat
        os.utime(book / "one.md")
    else:  # a file the build reads is judged by its bytes when its stat changed
        os.utime(book / "audiobook.yml")
    return None


@pytest.mark.slow
def test_a_change_a_build_would_act_on_turns_the_stamp_down(book):
    run(book, "build")
    for change, rebuilt in [
        ("edit a sentence, same length", "1 chapter(s) written"),
        ("edit the config", "2 chapter(s) written"),
        ("delete an output", "1 chapter(s) written"),
        ("set an AUDIOBOOK_ variable", "0 chapter(s) written"),
        ("touch a source", "0 chapter(s) written"),
        ("clear the cache", "segment(s) synthesized"),
        ("touch the config", None),
    ]:
        assert run(book, "build")[2], f"not stamped before: {change}"
        env = _change(book, change)
        out, err, served = run(book, "build", env=env)
        if rebuilt is None:
            assert served and "0 chapter(s) written" in err, change
            continue
        assert not served, change
        assert rebuilt in err, (change, err)
        if not run(book, "build", env=env)[2]:
            # Only when the build read a file edited less than 2 s before it.
            assert change == "edit the config", change
            time.sleep(2.1)
            run(book, "build", env=env)


@pytest.mark.slow
def test_a_stamp_that_is_old_damaged_or_for_other_code_is_not_used(book, isolated_cache):
    run(book, "build")
    path, = stamps(isolated_cache)
    data = json.loads(path.read_bytes())
    data["written"] -= 2 * stamp.MAX_AGE_S
    path.write_text(json.dumps(data))
    assert not run(book, "build")[2]  # too old: the build plans, and stamps again
    assert run(book, "build")[2]
    data = json.loads(path.read_bytes())
    data["code"][0][1] += 1  # as if a file of the package had changed
    path.write_text(json.dumps(data))
    assert not run(book, "build")[2]
    path.write_bytes(b"\x00{not json")
    out, err, served = run(book, "build")
    assert not served and "2 unchanged" in err


@pytest.mark.slow
def test_no_key_nor_a_hash_of_one_is_written_into_a_stamp(book, isolated_cache):
    key = "sk-test-0123456789abcdef"
    run(book, "build", env={"AUDIOCLEANER_API_KEY": key})
    assert run(book, "build", env={"AUDIOCLEANER_API_KEY": key})[2]
    assert run(book, "build", env={"AUDIOCLEANER_API_KEY": "another-key"})[2]  # presence only
    assert not run(book, "build", env={"AUDIOCLEANER_API_KEY": ""})[2]
    for path in stamps(isolated_cache):
        data = path.read_bytes()
        assert key.encode() not in data
        assert hashlib.sha256(key.encode()).hexdigest().encode() not in data


# ------------------------------------------------------------------ the recorder itself


def _entries(rec: stamp.Recorder, tmp_path: Path) -> list | None:
    return rec.entries((str(tmp_path / "exempt") + os.sep,), ("/nowhere/",), "/nowhere/stamps")


@pytest.fixture(scope="module")
def old_files(tmp_path_factory) -> Path:
    """A folder per test, each with a.md older than the racy window (one wait for all)."""
    root = tmp_path_factory.mktemp("old")
    for name in ("notes", "changes"):
        (root / name).mkdir()
        (root / name / "a.md").write_text("hello")
    time.sleep(stamp.RACY_NS / 1e9 + 0.1)  # ctime cannot be set back: wait it out
    return root


def test_the_recorder_notes_reads_probes_of_absent_files_and_listings(old_files):
    tmp_path = old_files / "notes"
    source = tmp_path / "a.md"
    with stamp.recording() as rec:
        assert source.read_text() == "hello"
        assert source.resolve() == source  # an lstat of every part of the path
        assert not (tmp_path / "lexicon.yml").exists()
        assert [p.name for p in tmp_path.iterdir()] == ["a.md"]
    entries = _entries(rec, tmp_path)
    assert entries is not None
    kinds: dict[str, set[str]] = {}
    for e in entries:
        kinds.setdefault(Path(e[0]).name, set()).add(e[2])
    assert kinds["a.md"] == {"read", "regular"}  # read, and lstat'ed by resolve()
    assert kinds["lexicon.yml"] == {"absent"}
    assert "names" in kinds[tmp_path.name]
    assert all(stamp._holds(e, "/nowhere/stamps") for e in entries)
    os.utime(source)  # new times, the same bytes: still holds (by its hash)
    assert all(stamp._holds(e, "/nowhere/stamps") for e in entries)
    (tmp_path / "lexicon.yml").write_text("x: y\n")  # the absent file appears
    assert not all(stamp._holds(e, "/nowhere/stamps") for e in entries)
    (tmp_path / "lexicon.yml").unlink()
    assert all(stamp._holds(e, "/nowhere/stamps") for e in entries)
    source.rename(tmp_path / "b.md")  # the same bytes, now through a link
    source.symlink_to(tmp_path / "b.md")
    assert not all(stamp._holds(e, "/nowhere/stamps") for e in entries)


def test_the_recorder_does_not_vouch_for_a_run_that_changed_or_started_anything(old_files):
    tmp_path = old_files / "changes"
    with stamp.recording() as rec:  # a file written
        (tmp_path / "out.txt").write_text("made")
    assert _entries(rec, tmp_path) is None
    with stamp.recording() as rec:  # a process started
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert _entries(rec, tmp_path) is None and rec.spoiled == "subprocess.Popen"
    with stamp.recording() as rec:  # an input changed while the run had it
        (tmp_path / "a.md").read_text()
        (tmp_path / "a.md").write_text("hullo")  # (a write is also noted: two reasons)
    assert _entries(rec, tmp_path) is None
    fresh = tmp_path / "fresh.md"
    fresh.write_text("just saved")
    with stamp.recording() as rec:  # read in the same moment it was saved
        fresh.read_text()
    assert _entries(rec, tmp_path) is None
    (tmp_path / "exempt").mkdir()
    ours = tmp_path / "exempt" / "manifest.json"
    ours.write_text("{}")
    with stamp.recording() as rec:  # the tool's own files are replaced, never edited
        ours.read_text()
    assert _entries(rec, tmp_path) is not None
    assert os.stat is stamp._real_stat and os.lstat is stamp._real_lstat  # put back


def test_the_config_is_found_as_click_would_find_it():
    assert stamp._config_arg(["build"]) == "audiobook.yml"
    assert stamp._config_arg(["-c", "book/a.yml", "build"]) == "book/a.yml"
    assert stamp._config_arg(["build", "--config=b.yml", "-j", "2"]) == "b.yml"
    assert stamp._config_arg(["-cc.yml", "build"]) == "c.yml"
    assert stamp._config_arg(["-qc", "x.yml", "build"]) is None  # bundled: left to click
    assert not stamp.applies(["build", "-v"]) and not stamp.applies(["plan"])
    assert stamp.applies(["-q", "build", "1", "--json"])


def test_a_look_only_run_can_neither_write_nor_start_a_process(tmp_path):
    with stamp.recording(look_only=True) as rec:
        with pytest.raises(stamp.LookOnly):
            (tmp_path / "made.mp3").write_bytes(b"audio")
        with pytest.raises(stamp.LookOnly):
            subprocess.run([sys.executable, "-c", "open('ran', 'w')"], cwd=tmp_path)
        assert list(tmp_path.iterdir()) == []  # looking is allowed
    assert rec.spoiled and not list(tmp_path.iterdir())
    (tmp_path / "after.txt").write_text("a normal run again")  # the guard ends with the block


def test_a_venv_made_in_the_book_folder_does_not_hide_the_book(tmp_path, monkeypatch):
    # Files under the Python install are left out of a stamp (code_state covers
    # them); a venv made with `python -m venv .` must not take the book with it.
    site = tmp_path / "lib" / "python3" / "site-packages"
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setattr(sys, "path", [str(tmp_path), str(site)])
    assert stamp._libraries() == [str(site)]


@pytest.mark.slow
def test_a_stamped_build_repeats_the_warnings_a_planned_one_gives(project, isolated_cache):
    from tests.test_voices import CHAPTER, LIBRARY
    from tests.test_voices import CONFIG as VOICED

    book = project(VOICED.replace("holmes: {voice: arthur", "holmes: {voice: 3104"),
                   {"one.md": CHAPTER, "voices.json": json.dumps(LIBRARY)}).parent
    time.sleep(2.1)
    run(book, "build")
    out, err, served = run(book, "build")
    assert served
    assert "voice 3104 (Lucien) speaks 'fr' but reads 'en' text here" in err
    for path in stamps(isolated_cache):
        path.unlink()
    assert run(book, "build")[:2] == (out, err)
