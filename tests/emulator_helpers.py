"""Helpers for tests that talk to the Audio Cleaner emulator over loopback HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from pipeline.tts.emulator import CREATE_PATH, GET_PATH, EmulatorConfig, EmulatorThread
from tests.conftest import wait_for  # noqa: F401 - where the emulator's tests look for it

KEY = "test-key-5f0c1d9a7b"  # distinctive, so a grep for it cannot match by chance

VOICE_BODY = {"voice_id": 2072, "emotion": 0, "speed": 1, "language": "en"}


class ManualClock:
    """A monotonic clock that moves only when the test moves it.

    Given to the emulator, it makes "still waiting", "the rate bucket is
    empty" and "the task has expired" events the test decides, not races
    against a loaded machine.
    """

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextlib.contextmanager
def emulator(clock: ManualClock | None = None, **config) -> Iterator[EmulatorThread]:
    """The emulator in a thread of this process, on a free port; on `clock` if given."""
    with EmulatorThread(EmulatorConfig(**config),
                        **({"clock": clock} if clock is not None else {})) as emu:
        yield emu


@contextlib.contextmanager
def emulator_process(*args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """`python -m pipeline emulator --port 0 ARGS` as a user would run it; yields its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "emulator", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if "http://" not in line:
            raise RuntimeError(f"emulator did not start: {line!r} {proc.stderr.read()}")
        yield proc, line.split()[-1]
    finally:
        proc.terminate()
        proc.wait(10)


# One client for the whole session: a new httpx client costs tens of ms (TLS setup).
http = httpx.Client(timeout=10)


def post(url: str, path: str, body: dict, key: str | None = KEY) -> dict:
    headers = {"api-key": key} if key is not None else {}
    return http.post(url + path, json=body, headers=headers).json()


def create(url: str, text: str = "Hello there.", key: str | None = KEY) -> dict:
    return post(url, CREATE_PATH, {**VOICE_BODY, "text": text}, key)


def get(url: str, job_id: str, key: str | None = KEY) -> dict:
    return post(url, GET_PATH, {"global_id": job_id}, key)


# ---------------------------------------------------------------- books

PARAGRAPHS = [
    "The lamp at Gannet Point was lit at dusk, as it had been for ninety years.",
    "Rain came in from the west and the keeper wrote the pressure in his log.",
    "By midnight the wind had turned, and the sea climbed the rocks below.",
    "A ship's lights showed to the south, then vanished behind the squall.",
    "He wound the clockwork that turned the lens, and counted the flashes.",
    "At four the radio spoke: a trawler had lost her rudder off the reef.",
    "The keeper put on his coat and went down to the boathouse with a lantern.",
    "The tide was high, the slipway black with weed, the winch cold to touch.",
    "Two men from the village came running, their boots loud on the stones.",
    "They launched the boat into the surf and rowed towards the trawler's flare.",
    "Dawn found them alongside, a line made fast and the crew safe aboard.",
    "In the log that morning he wrote one line: all well, lamp extinguished.",
]


def book_config(chapters: int = 1, per_chapter: int = 6, max_chars: int = 100) -> tuple[str, dict]:
    """An audiobook.yml for the audiocleaner backend, and its chapter files.

    Paragraphs near max_chars each make their own segment, so the segment
    count is known before any build.
    """
    files = {}
    entries = []
    for c in range(chapters):
        paragraphs = [f"{PARAGRAPHS[(c * per_chapter + i) % len(PARAGRAPHS)]} ({c}.{i})"
                      for i in range(per_chapter)]
        name = f"chapters/{c + 1:02d}.md"
        files[name] = f"# Chapter {c + 1}\n\n" + "\n\n".join(paragraphs) + "\n"
        entries.append(f"  - source: {name}")
    config = "\n".join([
        "title: Test Book",
        "author: Tester",
        "language: en",
        "backend: audiocleaner",
        "narrator: {voice: 2072, emotion: auto, speed: 1}",
        f"segments: {{max_chars: {max_chars}}}",
        "output: {dir: build, formats: [mp3]}",
        "cache: {dir: .audiobook-cache}",
        "chapters:",
        *entries,
    ]) + "\n"
    return config, files


def remote_env(url: str, key: str = KEY) -> dict[str, str]:
    return {"AUDIOCLEANER_BASE_URL": url, "AUDIOCLEANER_API_KEY": key}


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=300)


def plan_totals(cwd: Path, env: dict[str, str], *extra: str) -> dict:
    done = cli("plan", "--json", *extra, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["totals"]


def build_json(cwd: Path, env: dict[str, str], *extra: str) -> dict:
    done = cli("build", "--json", *extra, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
