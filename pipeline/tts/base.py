"""The backend protocol and the request and result types (the registry is tts/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pipeline.book import Voice


@dataclass(frozen=True)
class SynthesisRequest:
    key: str
    text: str
    voice: Voice
    label: str  # where it comes from, for messages: "chapter 3 'Title', line 12"


@dataclass(frozen=True)
class Audio:
    data: bytes
    format: str  # detected from the bytes: "wav", "mp3", "ogg", "flac", "m4a"
    credits: int = 0  # what it cost
    # Where the engine said each sentence starts: (character offset, audio ms).
    # The offset counts Unicode code points from 0 in the request's `text`
    # (a Python str index); the ms counts from the first sample of `data` as
    # decoded. One pair per sentence the engine itself found (eSpeak's
    # SENTENCE events, which also split inside quotations), in order; the
    # first is (0, 0) when the text starts with a sentence. Empty when the
    # backend reports none (the Audio Cleaner API does not).
    marks: tuple[tuple[int, int], ...] = ()


OnResult = Callable[[SynthesisRequest, Audio], None]


class Backend(Protocol):
    name: str

    def identity(self) -> str:
        """What goes into the cache key: engine and version, or service URL."""
        ...

    def synthesize_all(self, requests: Sequence[SynthesisRequest], jobs: int,
                       on_result: OnResult) -> None:
        """Synthesize every request, calling on_result as each one is done.

        on_result stores the audio at once, so whatever finished before a
        failure or an interruption is kept.
        """
        ...

    def stats(self) -> dict:
        """Counters for the build summary (tasks created, retries, ...); {} if none."""
        ...

    def close(self) -> None: ...


def detect_format(data: bytes) -> str | None:
    """An audio container from its first bytes, not from a URL or a header."""
    head = data[:12]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"fLaC":
        return "flac"
    if head[4:8] == b"ftyp":
        return "m4a"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "webm"
    return None
