"""The fleet tier: S3 read- and write-through, checked reads, leases by conditional PUT.

A real moto_server on a free loopback port stands in for S3; the code under
test finds it through the standard AWS chain (AWS_ENDPOINT_URL), as it would
find the real service.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading

import pytest

from pipeline.book import Voice
from pipeline.cache import CachedAudio, SegmentCache
from pipeline.errors import InputError
from pipeline.remote_cache import Location, RemoteCache, parse_location
from pipeline.tts.audiocleaner import AudioCleanerBackend
from pipeline.tts.base import SynthesisRequest
from pipeline.tts.journal import MemoryJournal
from tests.conftest import REPO, run_cli, wait_for
from tests.emulator_helpers import KEY, create, emulator
from tests.helpers import FLEET_CONFIG as CONFIG
from tests.helpers import FLEET_ONE as ONE
from tests.moto_helpers import free_port

KEY_A = "a" * 64


def _objects(client, bucket: str, folder: str) -> list[str]:
    found = client.list_objects_v2(Bucket=bucket, Prefix=f"fleet/{folder}/").get("Contents", [])
    return [item["Key"] for item in found]


def _audio(credits: int = 3) -> CachedAudio:
    return CachedAudio(b"RIFF" + bytes(range(256)) * 20, "wav", credits, "audiocleaner:http://x")


def test_a_remote_location_is_an_s3_url():
    assert parse_location("s3://b/p/q/", "X") == Location("b", "p/q/")
    assert str(parse_location("s3://b", "X")) == "s3://b/"
    with pytest.raises(InputError, match="X.*s3://BUCKET/PREFIX"):
        parse_location("https://b/p", "X")


@pytest.mark.slow
def test_entries_go_through_to_the_fleet_and_come_back_checked(s3, tmp_path, caplog):
    client, bucket = s3
    where = parse_location(os.environ["AUDIOBOOK_REMOTE_CACHE"], "env")
    one = SegmentCache(tmp_path / "one", remote=RemoteCache(where))
    one.put(KEY_A, _audio())
    assert _objects(client, bucket, "segments") == [f"fleet/segments/{KEY_A}.seg"]
    other = SegmentCache(tmp_path / "other", remote=RemoteCache(where))
    assert KEY_A in other.keys() and other.local_keys() == set()
    assert other.get(KEY_A) == _audio()
    assert other.local_keys() == {KEY_A}  # read-through: kept locally too
    # A damaged remote object is never served.
    body = client.get_object(Bucket=bucket, Key=f"fleet/segments/{KEY_A}.seg")["Body"].read()
    client.put_object(Bucket=bucket, Key=f"fleet/segments/{KEY_A}.seg", Body=body[:-7])
    third = SegmentCache(tmp_path / "third", remote=RemoteCache(where))
    assert third.get(KEY_A) is None
    assert "remote cache entry aaaaaaaaaaaa is damaged" in caplog.text


HOLDER = """\
import sys, time
from pathlib import Path
from pipeline.cache import SegmentCache
from pipeline.remote_cache import open_remote
store = SegmentCache(Path(sys.argv[1]), remote=open_remote(None))
store.remote.client  # boto3 is slow to import: be ready before the start
go, stop = Path(sys.argv[4]), Path(sys.argv[5])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.01)
got = store.lease(sys.argv[2], {"who": sys.argv[3]}, ttl_s=120)
if got is None:
    store.set_pending(sys.argv[2], {"job_id": "job-" + sys.argv[3], "base_url": "http://svc"})
print("held" if got is None else "busy:" + str(got.get("who")), flush=True)
deadline = time.monotonic() + 120
while not stop.exists() and time.monotonic() < deadline:
    time.sleep(0.05)
"""


@pytest.mark.slow
def test_machines_with_their_own_folders_hold_a_remote_lease_once(s3, tmp_path):
    client, bucket = s3
    go, stop = tmp_path / "go", tmp_path / "stop"
    # Each process has its own local folder: only the remote lease can keep them apart.
    procs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / f"m{n}"), KEY_A,
                               str(n), str(go), str(stop)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)}) for n in range(4)]
    try:
        assert all(p.stdout.readline().strip() == "ready" for p in procs)
        go.touch()  # all at once, every holder still alive
        answers = [p.stdout.readline().strip() for p in procs]
        info = SegmentCache(tmp_path / "look", remote=RemoteCache(
            parse_location(os.environ["AUDIOBOOK_REMOTE_CACHE"], "env"))).lease_info(KEY_A)
    finally:
        stop.touch()
        for proc in procs:
            proc.wait(60)
    assert answers.count("held") == 1, answers
    winner = str(answers.index("held"))
    assert all(a == f"busy:{winner}" for a in answers if a != "held"), answers
    assert info["who"] == winner and info["job_id"] == f"job-{winner}"  # the job id travels
    assert _objects(client, bucket, "leases") == [f"fleet/leases/{KEY_A}.json"]
    # The winner is gone now: its lease is taken over.
    mine = SegmentCache(tmp_path / "me", remote=RemoteCache(
        parse_location(os.environ["AUDIOBOOK_REMOTE_CACHE"], "env")))
    assert mine.lease(KEY_A, {"who": "me"}, ttl_s=60) is None
    assert mine.lease_info(KEY_A)["who"] == "me"
    mine.release(KEY_A)
    assert _objects(client, bucket, "leases") == []


@pytest.mark.slow
def test_a_second_machine_builds_from_the_fleet_and_push_fills_it(s3, project, tmp_path,
                                                                  monkeypatch):
    client, bucket = s3
    folder = project(CONFIG, {"one.md": ONE}).parent
    first = run_cli("build", "--json", cwd=folder)
    assert first.returncode == 0, first.stderr
    made = json.loads(first.stdout)["segments_synthesized"]
    assert made > 0 and len(_objects(client, bucket, "segments")) == made
    # Another machine: an empty local cache, the same fleet.
    monkeypatch.setenv("AUDIOBOOK_CACHE_DIR", str(tmp_path / "second-machine"))
    second = run_cli("build", "--json", "--force", cwd=folder)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["segments_synthesized"] == 0
    # push: a cache filled without the fleet is uploaded, and only what is missing.
    client.delete_object(Bucket=bucket, Key=_objects(client, bucket, "segments")[0])
    pushed = run_cli("cache", "push", cwd=folder)
    assert pushed.returncode == 0 and "pushed 1 segment(s)" in pushed.stdout, pushed.stderr
    assert len(_objects(client, bucket, "segments")) == made
    stats = json.loads(run_cli("cache", "stats", "--json", cwd=folder).stdout)
    assert stats["remote_segments"] == made and stats["local_only_segments"] == 0


class _CutShort(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that stops mid-answer: every GET promises 218 bytes, sends none."""

    def do_GET(self):  # noqa: N802 - the http.server spelling
        self.send_response(200)
        self.send_header("Content-Length", "218")
        self.send_header("ETag", '"x"')
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_a_remote_that_stops_mid_answer_turns_the_tier_off_instead_of_crashing(
        monkeypatch, tmp_path, caplog):
    # Seen when moto_server was stopped mid-build: botocore raised
    # IncompleteReadError reading a lease's body, and the build died with an
    # internal error instead of going on with its local cache.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CutShort)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        for name, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_port}",
                            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                            "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        where = parse_location("s3://cut/short", "test")
        for call in (lambda r: r.lease_info(KEY_A), lambda r: r.get(KEY_A),
                     lambda r: r.head(KEY_A, 100), lambda r: r.update_lease(KEY_A, {"a": 1}),
                     lambda r: r.release(KEY_A)):
            remote = RemoteCache(where)
            assert call(remote) in (None, False)
            assert not remote.available
        store = SegmentCache(tmp_path / "local", remote=RemoteCache(where))
        assert store.lease(KEY_A, {"who": "me"}, ttl_s=60) is None  # the local lease takes over
    finally:
        server.shutdown()
    assert "going on with the local cache only" in caplog.text


@pytest.mark.slow
def test_an_unreachable_fleet_is_one_line_and_offline_never_touches_it(project, monkeypatch):
    folder = project(CONFIG, {"one.md": ONE}).parent
    monkeypatch.setenv("AUDIOBOOK_REMOTE_CACHE", "s3://nowhere/prefix")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    done = run_cli("build", cwd=folder)  # how soon: benchmarks/bench_bounds.py
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "remote cache" in line]
    assert len(said) == 1 and "s3://nowhere/prefix" in said[0], done.stderr
    assert "going on with the local cache only" in said[0]
    offline = run_cli("build", "--offline", "--force", cwd=folder)
    assert offline.returncode == 0 and "remote cache" not in offline.stderr, offline.stderr
    pushed = run_cli("cache", "push", cwd=folder)
    assert pushed.returncode == 1 and "internal error" not in pushed.stderr


LOSER = """\
import sys, time
from pathlib import Path
from pipeline.cache import SegmentCache
from pipeline.remote_cache import open_remote
store = SegmentCache(Path(sys.argv[1]), remote=open_remote(None))
assert store.lease(sys.argv[2], {"who": "loser"}, ttl_s=float(sys.argv[4])) is None
print("held", flush=True)
while not Path(sys.argv[3]).exists():
    time.sleep(0.02)
store.set_pending(sys.argv[2], {"job_id": "job-late", "base_url": "http://svc"})
store.release(sys.argv[2])
print("lost", store.leases_lost(), flush=True)
"""


@pytest.mark.slow
def test_a_lease_taken_over_says_whose_it_was_and_its_holder_counts_it_lost(s3, tmp_path):
    """Another machine's lease is taken over once its ttl passes; the taker learns the dead
    holder's info (its job id is a task to adopt); the slow holder finds its lease lost."""
    client, bucket = s3
    go = tmp_path / "go"
    me = SegmentCache(tmp_path / "me", remote=RemoteCache(
        parse_location(os.environ["AUDIOBOOK_REMOTE_CACHE"], "env")))
    assert me.remote.keys() == set()  # boto3 is slow to set up: before the holder's ttl starts
    # The ttl only has to outlast one lease request of ours, however loaded the machine.
    proc = subprocess.Popen([sys.executable, "-c", LOSER, str(tmp_path / "slow"), KEY_A, str(go),
                             "5"], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline().strip() == "held"
        busy = me.lease(KEY_A, {"who": "me"}, ttl_s=60)
        assert busy is not None and busy["who"] == "loser"  # alive: ttl not passed yet
        assert me.took_over(KEY_A) is None
        wait_for(lambda: me.lease(KEY_A, {"who": "me"}, ttl_s=60) is None, timeout=60)
        previous = me.took_over(KEY_A)
        assert previous is not None and previous["who"] == "loser"
        assert me.took_over(KEY_A) is None  # told once
        go.touch()
        said = proc.stdout.readline().split()
    finally:
        go.touch()
        proc.wait(60)
    assert said == ["lost", "1"]  # found at update and at release: one lease, counted once
    assert me.lease_info(KEY_A)["who"] == "me"  # the loser changed nothing
    assert me.leases_lost() == 0
    me.release(KEY_A)
    assert me.leases_lost() == 0 and _objects(client, bucket, "leases") == []


class _AfterDeadHolders(MemoryJournal):
    """A journal whose lease() took over dead holders' leases (as the segment cache says
    through took_over): what each holder's lease said is handed out once."""

    def __init__(self, previous: dict[str, dict]):
        super().__init__()
        self.previous = previous
        self.marked: list[str] = []

    def took_over(self, key: str) -> dict | None:
        return self.previous.pop(key, None)

    def mark_creating(self, key: str) -> None:
        self.marked.append(key)


@pytest.mark.slow
def test_a_dead_holders_task_is_adopted_and_a_lease_without_one_is_counted():
    paid, creating, idle = "b" * 64, "c" * 64, "d" * 64
    texts = {paid: "The lamp at Gannet Point was lit at dusk, as it had been for ninety years.",
             creating: "Rain came in from the west and the keeper wrote the pressure in his log.",
             idle: "By midnight the wind had turned, and the sea climbed the rocks below."}
    with emulator(latency=0.05, audio_kind="tone") as emu:
        job = create(emu.url, texts[paid])["data"]["job_id"]  # the dead holder's task: paid
        journal = _AfterDeadHolders({
            paid: {"pid": 1, "host": "elsewhere", "base_url": emu.url, "job_id": job},
            # killed inside its create: the service may have taken it
            creating: {"pid": 2, "host": "elsewhere", "base_url": emu.url, "creating": True},
            idle: {"pid": 3, "host": "elsewhere", "base_url": emu.url}})  # never got that far
        backend = AudioCleanerBackend(KEY, emu.url, journal=journal)
        got: dict = {}
        backend.synthesize_all([SynthesisRequest(k, t, Voice(2072), k[0]) for k, t in texts.items()],
                               3, lambda request, audio: got.__setitem__(request.key, audio))
        stats = emu.stats()
    assert stats["tasks_created"] == 3  # the dead holder's, and one each for the leases without
    counters = backend.stats()
    assert counters["tasks_adopted"] == 1 and counters["tasks_created"] == 2
    assert counters["leases_taken_over"] == 3 and counters["leases_taken_over_without_job"] == 2
    assert counters["credits_maybe_charged"] == 1  # only the one killed while creating
    assert got[paid].credits == 1 and set(got) == set(texts)
    assert sorted(journal.marked) == [creating, idle]  # said before paying; not for the adopted


@pytest.mark.slow
def test_a_lease_says_a_create_was_started_before_its_job_id_arrives(s3, tmp_path):
    store = SegmentCache(tmp_path / "one", remote=RemoteCache(
        parse_location(os.environ["AUDIOBOOK_REMOTE_CACHE"], "env")))
    assert store.lease(KEY_A, {"who": "me"}, ttl_s=60) is None
    assert not store.lease_info(KEY_A).get("creating")
    store.mark_creating(KEY_A)
    assert store.lease_info(KEY_A)["creating"] is True
    store.set_pending(KEY_A, {"job_id": "j1", "base_url": "http://svc"})
    assert store.lease_info(KEY_A)["job_id"] == "j1" and store.leases_lost() == 0
    store.release(KEY_A)
