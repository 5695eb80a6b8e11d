"""`audiobook build` against a hostile Audio Cleaner: every build ends by itself,
after the tries its policy allows, in bounded memory, with the right exit code
and a message that blames the service, not the book. (How long each takes:
benchmarks/bench_bounds.py.)

The server is stdlib http.server on 127.0.0.1 (a thread per connection), so
it can misbehave in ways the emulator never does: stream a gigabyte, trickle
one byte every ten seconds, serve a small MP3 that decodes to twenty minutes,
or hand out file:// and ftp:// URLs. Deadlines are kept short with
AUDIOBOOK_HTTP_DEADLINE and AUDIOBOOK_HTTP_RETRIES.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.cache import SegmentCache
from pipeline.segment import credits_for
from pipeline.tts.audiocleaner import CREATE_PATH
from pipeline.tts.emulator import tone_wav
from tests.emulator_helpers import book_config, plan_totals

pytestmark = pytest.mark.slow

KEY = "hostile-key-83b1e0"
TRICKLE_GAP = 10.0  # seconds between bytes: each read is well inside httpx's 30 s timeout
HUGE = 400 << 20  # what the "huge" output streams unless stopped
MEMORY_LIMIT_KB = 300_000  # a build with every read bounded stays far below this


@lru_cache(maxsize=1)
def bomb_mp3() -> bytes:
    """About 20 minutes of 8 kbit/s noise in 1.2 MB: a minute encoded, its frames repeated."""
    from pipeline.audio import ffmpeg_path

    minute = subprocess.run(
        [ffmpeg_path(), "-v", "error", "-f", "lavfi", "-i", "anoisesrc=d=60:a=0.1:r=8000",
         "-ac", "1", "-ar", "8000", "-b:a", "8k", "-write_xing", "0", "-id3v2_version", "0",
         "-f", "mp3", "pipe:1"], check=True, capture_output=True).stdout
    return minute * 20


class Hostile:
    """A misbehaving service on a free loopback port; `mode` picks the misbehaviour."""

    def __init__(self, mode: str, gap: float = TRICKLE_GAP):
        self.mode = mode
        self.gap = gap  # seconds between the bytes of a trickled answer
        self.hits: Counter[str] = Counter()
        self.streamed = 0  # bytes of the "huge" output written before the client hung up
        self.bodies: list[bytes] = []
        self.creates: Counter[str] = Counter()  # create requests received, per text
        self.lock = threading.Lock()  # a thread per connection
        handler = type("Handler", (_Handler,), {"service": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Hostile:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    service: Hostile
    protocol_version = "HTTP/1.0"  # bodies end when the connection closes

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        service, mode = self.service, self.service.mode
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with service.lock:
            service.hits[self.path] += 1
            service.bodies.append(body)
        if self.path == CREATE_PATH:
            with service.lock:
                service.creates[json.loads(body).get("text", "")] += 1
            answer = {"code": 100000, "data": {"job_id": "j1"}, "message": "Request Success"}
            if mode == "echo-key":
                key = self.headers.get("api-key", "")
                echoed = f"bad key {key} / {key!r} / {urllib.parse.quote(key, safe='')}"
                return self._json({"code": 101002, "message": echoed}, status=200)
            if mode == "slow-create":
                return self._trickle(json.dumps(answer).encode())
            return self._json(answer)
        if mode == "slow-create":  # no create was ever answered: nothing to poll
            return self._json({"code": 101008, "data": {}, "message": "Task not found"})
        output = {"file": "file:///etc/passwd", "ftp": "ftp://127.0.0.1/out.mp3"}.get(
            mode, f"{service.url}/out/{mode}")
        self._json({"code": 100000, "data": {"status": "success", "output": output},
                    "message": "Request Success"})

    def do_GET(self) -> None:
        service, mode = self.service, self.service.mode
        service.hits[self.path] += 1
        if mode == "redirect-file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
            return
        if mode == "huge":
            self._stream_huge()
        elif mode == "slow-download":
            self._trickle(tone_wav(0.5))
        elif mode == "bomb":
            self._send(bomb_mp3(), "audio/mpeg")
        else:
            self._send(tone_wav(0.5), "audio/wav")

    def _json(self, payload: dict, status: int = 200) -> None:
        self._send(json.dumps(payload).encode(), "application/json", status)

    def _send(self, body: bytes, kind: str, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _trickle(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(len(body)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(self.service.gap)
        except OSError:
            pass  # the client gave up, as it should

    def _stream_huge(self) -> None:
        self.send_response(200)  # no Content-Length: only the stream says how big
        self.send_header("Content-Type", "audio/mpeg")
        self.end_headers()
        block = b"ID3" + bytes(1 << 20)
        try:
            for _ in range(HUGE // len(block)):
                self.wfile.write(block)
                self.service.streamed += len(block)
        except OSError:
            pass


def write_book(folder: Path) -> None:
    """One chapter of 50 characters: one paid request, one credit."""
    (folder / "ch").mkdir(parents=True, exist_ok=True)
    (folder / "ch" / "01.md").write_text(
        "The lamp at Gannet Point was lit at dusk, always.\n", encoding="utf-8")
    (folder / "audiobook.yml").write_text("\n".join([
        "title: Hostile", "author: Tester", "language: en", "backend: audiocleaner",
        "narrator: {voice: 2072, emotion: auto, speed: 1}",
        "output: {dir: build, formats: [mp3]}", "cache: {dir: .audiobook-cache}",
        "chapters:", "  - {source: ch/01.md, title: One}",
    ]) + "\n", encoding="utf-8")


def build(folder: Path, url: str, timeout: float = 240.0, key: str = KEY, args: tuple = (),
          **env: str) -> tuple[subprocess.CompletedProcess, int]:
    """`audiobook build ARGS`: its result and peak RSS (KiB, from wait4).

    Killed after `timeout` s, a hang guard only: then its exit code is -9, not 1.
    """
    full = {**os.environ, "AUDIOCLEANER_BASE_URL": url, "AUDIOCLEANER_API_KEY": key, **env}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "build", *args], cwd=folder,
                            env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    timer = threading.Timer(timeout, proc.kill)  # a hang fails the test instead of the suite
    timer.start()
    try:
        out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), err.decode())
    return done, usage.ru_maxrss


SHORT = {"AUDIOBOOK_HTTP_DEADLINE": "2", "AUDIOBOOK_HTTP_RETRIES": "1"}


def requests_by_kind(service: Hostile) -> dict[str, int]:
    """What the service was asked, by kind: create, get, out/MODE."""
    return {path.lstrip("/").rsplit("tts/task/", 1)[-1]: n for path, n in service.hits.items()}


@pytest.mark.parametrize("mode, words, tries", [
    ("huge", "byte cap", {"create": 1, "get": 1, "out/huge": 1}),  # over its cap: not retried
    ("slow-create", "deadline", {"create": 2}),  # AUDIOBOOK_HTTP_RETRIES=1: two tries
    ("slow-download", "deadline", {"create": 1, "get": 1, "out/slow-download": 2}),
])
def test_a_huge_or_trickling_answer_ends_the_build_in_time_and_memory(tmp_path, mode, words,
                                                                     tries):
    write_book(tmp_path)
    with Hostile(mode) as service:
        done, rss = build(tmp_path, service.url, **SHORT)
    # Exit 1 on its own (the hang guard's kill is -9): a trickle of one byte every 10 s
    # would take hours; the deadline ended each try, and there were only the tries allowed.
    assert done.returncode == 1, done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr
    assert requests_by_kind(service) == tries
    assert service.streamed < HUGE // 4  # the stream was cut near the cap, not read to its end
    assert rss < MEMORY_LIMIT_KB, rss


def test_audio_far_longer_than_its_text_is_the_service_fault_and_never_cached(tmp_path):
    write_book(tmp_path)
    with Hostile("bomb") as service:
        done, rss = build(tmp_path, service.url)
    assert done.returncode == 1, done.stderr
    assert "not your text" in done.stderr and "minutes long" not in done.stderr
    assert service.hits["/out/bomb"] == 1  # refused, not fetched again
    assert rss < MEMORY_LIMIT_KB
    store = SegmentCache(tmp_path / ".audiobook-cache")
    try:
        assert store.keys() == set()  # no bomb kept as paid audio
    finally:
        store.close()


@pytest.mark.parametrize("mode, scheme", [("file", "'file'"), ("ftp", "'ftp'"),
                                          ("redirect-file", "'file'")])
def test_output_urls_that_are_not_http_are_refused_at_once(tmp_path, mode, scheme):
    write_book(tmp_path)
    with Hostile(mode) as service:
        done, _ = build(tmp_path, service.url)  # default retries: 8
    assert done.returncode == 1, done.stderr
    assert f"scheme {scheme}" in done.stderr and "Traceback" not in done.stderr
    downloads = sum(n for path, n in service.hits.items() if path.startswith("/out/"))
    assert downloads == (1 if mode == "redirect-file" else 0)  # never retried
    assert service.hits[CREATE_PATH] == 1


def test_the_key_is_scrubbed_in_every_form_the_service_echoes(tmp_path):
    key = "SeCrEt/k+y 'q\\z=1"
    forms = [key, repr(key)[1:-1], urllib.parse.quote(key, safe=""), urllib.parse.quote_plus(key)]
    assert len(set(forms)) == 4  # the forms really differ
    write_book(tmp_path)
    with Hostile("echo-key") as service:
        done, _ = build(tmp_path, service.url, key=key)
    assert done.returncode == 1 and "101002" in done.stderr
    for form in forms:
        assert form not in done.stderr + done.stdout, form


@pytest.mark.parametrize("key", ["SECRETPART1\nSECRETPART2", "SECRETPART1\x01", "SECRÉTPART1"])
def test_a_key_with_control_or_non_ascii_characters_is_refused_before_any_request(tmp_path, key):
    write_book(tmp_path)
    with Hostile("normal") as service:
        done, _ = build(tmp_path, service.url, key=key)
    assert done.returncode == 2, done.stderr
    assert "SECRETPART" not in done.stderr + done.stdout and "SECRÉT" not in done.stderr
    assert "AUDIOCLEANER_API_KEY" in done.stderr
    assert sum(service.hits.values()) == 0


def test_a_well_behaved_server_builds(tmp_path):
    # The hostile server's honest mode works: the failures above are the modes, not the rig.
    write_book(tmp_path)
    with Hostile("normal") as service:
        done, _ = build(tmp_path, service.url)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "build").is_dir()


PER_REQUEST = 4.0  # AUDIOBOOK_HTTP_DEADLINE when every create answer trickles


def test_a_service_trickling_every_create_answer_gets_each_segment_at_most_twice(tmp_path):
    # Issue #33: every create was sent again at each per-request deadline, up to 9 times a
    # segment, each maybe paid. Now a segment risks one retry, and the second lost answer
    # stops all creates: the build ends within the acceptance bound (the kill below).
    config, files = book_config(chapters=2, per_chapter=4)
    for name, text in {"audiobook.yml": config, **files}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    segments = plan_totals(tmp_path, {"AUDIOCLEANER_API_KEY": KEY})["segments"]
    assert segments > 4  # more than --jobs: some are never started
    with Hostile("slow-create", gap=1.5) as service:
        done, _ = build(tmp_path, service.url, timeout=2 * PER_REQUEST + 30, args=("--json",),
                        AUDIOBOOK_HTTP_DEADLINE=str(PER_REQUEST))
    assert done.returncode == 1, done.stderr  # -9: killed at 2 x deadline + 30 s
    assert "Traceback" not in done.stderr
    sent = service.creates
    assert sent and max(sent.values()) <= 2, sent
    maybe = sum(credits_for(len(text)) * n for text, n in sent.items())
    summary = json.loads(done.stdout)
    assert summary["credits_maybe_charged"] == maybe and summary["credits_spent"] == 0
    assert summary["segments_maybe_charged"] == len(sent)
    assert len(summary["segments_left_undone"]) == segments
    assert f"up to {maybe} credit(s) may have been charged" in done.stderr
    assert "left undone" in done.stderr and "(chapters/01.md, line" in done.stderr
    assert "build again later" in done.stderr
