"""The segment store: what it serves is checked, what it drops was unused, builds share it.

Damage is made the way a disk, a crash or a person makes it: bytes changed in
the middle of an entry file, a file cut short, a file deleted, the old index
overwritten or emptied. A cache folder can come with an untrusted repository:
a shipped diskcache store is named and never read.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.cache import CachedAudio, SegmentCache
from pipeline.store_rules import lease_alive
from tests.conftest import REPO, run_cli, wait_for
from tests.emulator_helpers import emulator, remote_env

CONFIG = """\
title: Cache Book
author: Tester
narrator: {voice: 2072}
output: {formats: [mp3], loudness: none}
segments: {max_chars: 100}
chapters:
  - source: one.md
  - source: two.md
"""

ONE = """\
# One

The lamp was lit at dusk.

Nobody climbed the stair that night.
"""

TWO = """\
# Two

The tide came in at noon.
"""

KEY_A = "a" * 64
KEY_B = "b" * 64


def _audio(credits: int = 3, size: int = 4000) -> CachedAudio:
    data = b"RIFF" + bytes(range(256)) * (size // 256)
    return CachedAudio(data, "wav", credits, "audiocleaner:http://x")


def _entry_files(cache_dir: Path) -> list[Path]:
    """The files that hold audio."""
    return sorted(p for p in cache_dir.rglob("*.seg") if p.is_file())


# ------------------------------------------------------------------ unit


def test_an_entry_comes_back_as_it_went_in_and_says_what_it_cost(tmp_path):
    store = SegmentCache(tmp_path / "c")
    store.put(KEY_A, _audio(credits=5))
    got = store.get(KEY_A)
    assert got == _audio(credits=5)
    assert store.keys() == {KEY_A} and KEY_A in store and KEY_B not in store
    assert store.entry_credits(KEY_A) == 5
    assert store.stats()["credits_paid"] == 5
    assert not list((tmp_path / "c").rglob(".tmp-*"))  # written whole, nothing left over


@pytest.mark.parametrize("damage", ["flip", "half", "zero", "header"])
def test_a_damaged_entry_is_dropped_with_a_warning_naming_it(tmp_path, caplog, damage):
    store = SegmentCache(tmp_path / "c")
    store.put(KEY_A, _audio(credits=7))
    store.put(KEY_B, _audio(credits=2))
    path = _entry_files(tmp_path / "c")[0]
    raw = path.read_bytes()
    if damage == "flip":  # same length, different audio: only the checksum can tell
        raw = raw[:-1000] + os.urandom(500) + raw[-500:]
    elif damage == "half":
        raw = raw[: len(raw) // 2]
    elif damage == "zero":
        raw = b""
    else:
        raw = b"\x80\x04garbage" + raw[200:]
    path.write_bytes(raw)
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        assert store.get(KEY_A) is None
    assert KEY_A[:12] in caplog.text and "damaged" in caplog.text
    assert not path.exists() and store.keys() == {KEY_B}
    assert store.get(KEY_B) == _audio(credits=2)  # its neighbour is untouched


def test_verify_lists_damage_and_its_cost_and_repair_drops_it(tmp_path):
    store = SegmentCache(tmp_path / "c")
    store.put(KEY_A, _audio(credits=7))
    store.put(KEY_B, _audio(credits=2))
    path = store._path(KEY_A)
    path.write_bytes(path.read_bytes()[:-10])
    bad = store.verify()
    assert [(d.key, d.credits) for d in bad] == [(KEY_A, 7)] and "truncated" in bad[0].reason
    assert path.exists()  # verify alone changes nothing
    assert [d.key for d in store.verify(repair=True)] == [KEY_A]
    assert store.verify() == [] and store.keys() == {KEY_B}


def test_a_lease_is_held_once_carries_the_job_id_and_is_released(tmp_path):
    store = SegmentCache(tmp_path / "c")
    assert store.lease(KEY_A, {"build": "one"}, ttl_s=60) is None
    assert store.lease(KEY_A, {"build": "one"}, ttl_s=60) is None  # our own: still ours
    store.set_pending(KEY_A, {"job_id": "job-1", "base_url": "http://svc", "credits": 1})
    info = store.lease_info(KEY_A)
    assert info["job_id"] == "job-1" and info["base_url"] == "http://svc"
    assert info["pid"] == os.getpid() and info["build"] == "one"
    store.release(KEY_A)
    assert store.lease_info(KEY_A) is None


HOLDER = """\
import sys, time
from pathlib import Path
from pipeline.cache import SegmentCache
store = SegmentCache(Path(sys.argv[1]))
stop = Path(sys.argv[5])
go = Path(sys.argv[6]) if len(sys.argv) > 6 else None
print("ready", flush=True)
while go is not None and not go.exists():
    time.sleep(0.01)
got = store.lease(sys.argv[2], {"who": sys.argv[3]}, ttl_s=float(sys.argv[4]))
if got is None:
    store.set_pending(sys.argv[2], {"job_id": "job-" + sys.argv[3], "base_url": "http://svc"})
print("held" if got is None else "busy:" + str(got.get("who")), flush=True)
deadline = time.monotonic() + 120  # alive until told to stop (or killed)
while not stop.exists() and time.monotonic() < deadline:
    time.sleep(0.02)
"""


def _holder(cache: Path, key: str, who: str, ttl: float, stop: Path,
            go: Path | None = None) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(cache), key, who, str(ttl),
                             str(stop), *([str(go)] if go else [])], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.slow
def test_racing_processes_one_holds_the_lease_the_others_see_its_job(tmp_path):
    cache = tmp_path / "c"
    SegmentCache(cache)
    go, stop = tmp_path / "go", tmp_path / "stop"
    procs = [_holder(cache, KEY_A, str(n), 60, stop, go) for n in range(5)]
    go.touch()  # all at once, every holder alive until all have answered
    try:
        answers = [p.stdout.readline().strip() for p in procs]
    finally:
        stop.touch()
        for proc in procs:
            proc.communicate(timeout=60)
    assert answers.count("held") == 1, answers
    winner = str(answers.index("held"))
    assert all(a == f"busy:{winner}" for a in answers if a != "held"), answers


@pytest.mark.slow
def test_a_live_holders_lease_is_refused_a_dead_or_expired_one_taken_over(tmp_path):
    cache = tmp_path / "c"
    store = SegmentCache(cache)
    stop = tmp_path / "stop"
    alive = _holder(cache, KEY_A, "alive", 60, stop)
    expiring = _holder(cache, KEY_B, "expiring", 0.5, stop)
    try:
        assert alive.stdout.readline().strip() == "held"
        assert expiring.stdout.readline().strip() == "held"
        held = store.lease(KEY_A, {}, ttl_s=60)
        assert held is not None and held["who"] == "alive" and held["job_id"] == "job-alive"
        # Taken once its 0.5 s ttl has passed, though its holder still runs.
        wait_for(lambda: store.lease(KEY_B, {}, ttl_s=60) is None, timeout=60)
        assert expiring.poll() is None
        alive.kill()
        alive.wait(10)
        assert store.lease(KEY_A, {}, ttl_s=60) is None  # its process is gone
        assert store.lease_info(KEY_A)["pid"] == os.getpid()
    finally:
        for proc in (alive, expiring):
            proc.kill()
            proc.wait(10)
    assert not lease_alive({"pid": os.getpid(), "host": "elsewhere", "time": 0, "ttl_s": 1})


# ------------------------------------------------------------------ end to end


def _book(project) -> Path:
    return project(CONFIG, {"one.md": ONE, "two.md": TWO}).parent


def _build(folder: Path, *extra: str) -> dict:
    done = run_cli("build", "--json", *extra, cwd=folder)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["flip", "half", "zero", "delete"])
def test_a_damaged_entry_is_never_played_and_is_made_again(project, isolated_cache, damage):
    folder = _book(project)
    _build(folder)
    target = max(_entry_files(isolated_cache), key=lambda p: p.stat().st_size)
    raw = target.read_bytes()
    if damage == "flip":  # the F13 noise burst: random bytes in the middle of the audio
        middle = len(raw) // 2
        target.write_bytes(raw[:middle] + os.urandom(2000) + raw[middle + 2000:])
    elif damage == "half":
        target.write_bytes(raw[: len(raw) // 2])
    elif damage == "zero":
        target.write_bytes(b"")
    else:
        target.unlink()
    # A build that meets the damage re-makes the segment, at once or after a
    # clear error naming it; never an internal error, never the damaged audio.
    made = 0
    for _attempt in range(2):
        done = run_cli("build", "--json", "--force", cwd=folder)
        assert "internal error" not in done.stderr, done.stderr
        if done.returncode == 0:
            made += json.loads(done.stdout)["segments_synthesized"]
            break
    assert done.returncode == 0, done.stderr
    assert made == 1
    assert run_cli("cache", "verify", cwd=folder).returncode == 0


class _Bomb:
    """Unpickling this opens (and so creates) the marker file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _ship_bombs(cache_dir: Path, marker: Path) -> list[Path]:
    """What a hostile pull request could add to a book's cache folder.

    A real diskcache store (values small enough to sit in cache.db, and one big
    enough to be a .val file), plus stray .val pickles at the top of the folder
    and in a folder of their own.
    """
    import pickle

    import diskcache

    store = diskcache.Cache(str(cache_dir / "store"))
    store.set("seg:" + KEY_A, {"data": _Bomb(marker), "format": "wav", "credits": 1})
    store.set("pending:" + KEY_B, _Bomb(marker))
    store.set("seg:" + "c" * 64, [_Bomb(marker), b"x" * 100_000])  # a .val file
    store.close()
    assert list((cache_dir / "store").rglob("*.val"))
    bomb = pickle.dumps({"data": _Bomb(marker), "credits": 3})
    (cache_dir / "stray.val").write_bytes(bomb)
    (cache_dir / "ab" / "cd").mkdir(parents=True)
    (cache_dir / "ab" / "cd" / "0123.val").write_bytes(bomb)
    return [cache_dir / "ab", cache_dir / "store", cache_dir / "stray.val"]


@pytest.mark.slow
def test_a_shipped_diskcache_store_is_named_and_never_unpickled(project, tmp_path, s3,
                                                               monkeypatch):
    # The default cache folder sits in the book's folder, so a repository can ship it.
    monkeypatch.delenv("AUDIOBOOK_CACHE_DIR")
    folder = _book(project)
    cache_dir = folder / ".audiobook-cache"
    cache_dir.mkdir()
    marker = tmp_path / "bomb-went-off"
    foreign = _ship_bombs(cache_dir, marker)
    env = {"AUDIOBOOK_REMOTE_CACHE": ""}  # push alone talks to the bucket
    planned = run_cli("plan", cwd=folder, env=env)
    assert planned.returncode == 0, planned.stderr
    for path in foreign:
        assert f"{path} is not part of this cache" in planned.stderr, planned.stderr
        assert f"rm -rf {path}" in planned.stderr
    for args in [("build",), ("cache", "stats"), ("cache", "verify"), ("cache", "verify",
                 "--repair"), ("cache", "prune", "--yes"), ("build", "--force")]:
        done = run_cli(*args, cwd=folder, env=env)
        assert done.returncode == 0, (args, done.stderr)
        assert "is not part of this cache" in done.stderr, args
        assert "Traceback" not in done.stderr
    pushed = run_cli("cache", "push", cwd=folder,
                     env={"AUDIOBOOK_REMOTE_CACHE": f"s3://{s3[1]}/fleet"})
    assert pushed.returncode == 0, pushed.stderr
    assert "is not part of this cache" in pushed.stderr
    assert not marker.exists()
    assert all(path.exists() for path in foreign)  # named, not removed behind the user's back


def test_the_foreign_check_itself_would_see_an_unpickling(tmp_path):
    """The bomb is live: loading what the test ships does run code (so the test above can fail)."""
    import diskcache

    marker = tmp_path / "went-off"
    _ship_bombs(tmp_path / "c", marker)
    diskcache.Cache(str(tmp_path / "c" / "store")).get("seg:" + KEY_A)
    assert marker.exists()


# ------------------------------------------------------------------ prune (F4)

REMOTE_BOOK = {
    "one.md": "# One\n\nThe lamp was lit at dusk, as it had been for ninety years.\n\n"
              "Rain came in from the west and the keeper wrote it down.\n",
    "two.md": "# Two\n\nBy midnight the wind had turned, and the sea climbed the rocks.\n",
}


def _prune(folder: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = run_cli("cache", "prune", "--yes", *args, cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _paid(cache_dir: Path) -> int:
    return SegmentCache(cache_dir).stats()["credits_paid"]


@pytest.mark.slow
def test_prune_keeps_paid_audio_of_a_build_with_another_backend_and_url(project, isolated_cache):
    # F4: the config says local; the paid audio was made with --backend audiocleaner.
    config = project(CONFIG, REMOTE_BOOK)
    folder = config.parent
    with emulator(latency=0.02, audio_kind="tone") as emu:
        done = run_cli("build", "--json", "--backend", "audiocleaner", cwd=folder,
                       env=remote_env(emu.url))
        assert done.returncode == 0, done.stderr
        paid = json.loads(done.stdout)["credits_spent"]
        url = emu.url
    assert paid > 0 and _paid(isolated_cache) == paid
    assert "dropped 0 segment(s)" in _prune(folder)
    assert "dropped 0 segment(s)" in _prune(folder, "--include-paid")
    elsewhere = {"AUDIOCLEANER_BASE_URL": "http://127.0.0.1:9", "AUDIOCLEANER_API_KEY": "k"}
    assert "dropped 0 segment(s)" in _prune(folder, "--include-paid", env=elsewhere)
    assert _paid(isolated_cache) == paid
    # Once the config no longer uses a chapter, its paid audio goes only when asked.
    config.write_text(CONFIG.replace("  - source: two.md\n", ""), encoding="utf-8")
    kept = _prune(folder)
    unused = re.search(r"kept (\d+) unused paid segment\(s\) \((\d+) credit", kept)
    assert "dropped 0 segment(s)" in kept and unused, kept
    dropped = _prune(folder, "--include-paid")
    assert f"dropped {unused[1]} segment(s) ({unused[2]} credit(s) of audio)" in dropped
    assert _paid(isolated_cache) == paid - int(unused[2]) > 0
    assert url  # the service that made it is long gone: prune never needed it


@pytest.mark.slow
def test_prune_forgets_a_config_that_is_gone_and_asks_before_paid_audio(project, isolated_cache,
                                                                        tmp_path):
    folder = _book(project)
    _build(folder)
    other = tmp_path / "other"
    other.mkdir()
    (other / "audiobook.yml").write_text(CONFIG.replace("  - source: two.md\n", ""), "utf-8")
    (other / "one.md").write_text(textwrap.dedent(ONE) + "\nA line only the other book has.\n",
                                  "utf-8")
    assert run_cli("build", "-q", cwd=other).returncode == 0
    before = SegmentCache(isolated_cache).keys()
    out = _prune(folder)  # the other book is recorded: its audio stays
    assert "dropped 0 segment(s)" in out and SegmentCache(isolated_cache).keys() == before
    mine = {s["key"] for ch in json.loads(run_cli("plan", "--json", cwd=folder).stdout)["chapters"]
            for s in ch["segments"]}
    assert mine < before  # the other book has audio of its own
    (other / "audiobook.yml").unlink()
    done = run_cli("cache", "prune", "--yes", cwd=folder)
    assert "no longer exists" in done.stderr
    assert f"dropped {len(before - mine)} segment(s)" in done.stdout
    assert SegmentCache(isolated_cache).keys() == mine
    assert SegmentCache(isolated_cache).uses()[0]["config"] == str(folder / "audiobook.yml")


def test_an_entry_once_stored_is_kept_unless_it_is_damaged(tmp_path):
    store = SegmentCache(tmp_path / "c")
    store.put(KEY_A, _audio(credits=1))
    store.put(KEY_A, CachedAudio(b"RIFF other take", "wav", 1, "x"))  # another build's take
    assert store.get(KEY_A) == _audio(credits=1)
    path = store._path(KEY_A)
    path.write_bytes(path.read_bytes()[:100])
    store.put(KEY_A, CachedAudio(b"RIFF other take", "wav", 1, "x"))
    assert store.get(KEY_A).data == b"RIFF other take"
    assert not list((tmp_path / "c").rglob(".tmp-*"))


def test_stats_lists_the_pending_journal(tmp_path):
    store = SegmentCache(tmp_path / "c")
    store.set_pending(KEY_A, {"job_id": "job-9", "base_url": "http://svc", "credits": 4,
                              "created_at": time.time() - 30})
    assert store.pending(KEY_A)["job_id"] == "job-9" and store.pending_keys() == {KEY_A}
    [task] = store.stats()["pending"]
    assert task["key"] == KEY_A and task["job_id"] == "job-9" and task["credits"] == 4
    assert 29 <= task["age_s"] < 120
    store.drop_pending(KEY_A)
    assert store.stats()["pending"] == [] and store.pending(KEY_A) is None


def test_a_killed_builds_temporary_entries_are_removed_when_the_store_opens(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs
    folder = tmp_path / "store" / "segments" / "ab"
    folder.mkdir(parents=True)
    litter = folder / f".entry.tmp-{gone.pid}-x1y2.part"
    litter.write_bytes(b"half an entry")
    mine = folder / f".entry.tmp-{os.getpid()}-z9.part"  # a live build's file stays
    mine.write_bytes(b"being written")
    SegmentCache(tmp_path / "store").close()
    assert not litter.exists() and mine.exists()
