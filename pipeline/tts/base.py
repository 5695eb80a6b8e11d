"""The backend protocol, the request and result types, and the registry."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pipeline.book import Voice
from pipeline.errors import AudiobookError, ServiceError


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


class BackendUnavailable(AudiobookError):
    exit_code = 2


def get_backend(name: str, **options) -> Backend:
    """The registry: a backend by its config name."""
    if name == "local":
        from pipeline.tts.local import LocalBackend

        return LocalBackend(genders=options.get("genders"))
    if name == "audiocleaner":
        from pipeline.tts.audiocleaner import AudioCleanerBackend

        return AudioCleanerBackend.from_environment(**options)
    raise BackendUnavailable(f"unknown backend {name!r}; use 'local' or 'audiocleaner'")


__all__ = ["Audio", "Backend", "ServiceError", "SynthesisRequest", "detect_format", "get_backend"]


DEFAULT_BASE_URL = "https://audiocleaner.ai"


def base_url() -> str:
    """The Audio Cleaner API host: AUDIOCLEANER_BASE_URL, else the vendor's."""
    import os

    return (os.environ.get("AUDIOCLEANER_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def backend_identity(name: str) -> str:
    """The cache-key identity of a backend, without needing its credentials.

    A remote backend's identity includes its base URL: audio made by the
    emulator must never stand in for the real service's.
    """
    if name == "local":
        from pipeline.tts.local import LocalBackend

        return LocalBackend().identity()
    if name == "audiocleaner":
        return f"audiocleaner:{base_url()}"
    raise BackendUnavailable(f"unknown backend {name!r}; use 'local' or 'audiocleaner'")
