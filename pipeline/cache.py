"""The segment store: paid-for audio, keyed by everything that decides it.

Like pre-commit's store: its folder comes from AUDIOBOOK_CACHE_DIR, else the
config's cache.dir; it writes a README saying what it is; changes that drop
entries (prune, clear) take an exclusive lock while builds hold a shared one.

diskcache gives atomic, process-safe writes (SQLite transactions). Its default
2 GB size limit would silently evict paid audio, so the store is opened with
eviction turned off: an entry leaves only by `cache prune` or `cache clear`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import diskcache

from pipeline.book import Voice

if TYPE_CHECKING:
    from pipeline.config import Config

# Bump when anything about how audio is produced or stored changes, so stale
# entries are never served for new keys.
CACHE_FORMAT = 1

_SEGMENT = "seg:"
_PENDING = "pending:"

_README = """\
This folder is an audiobook-pipeline segment cache.

Each entry is the audio of one segment of speech, keyed by the SHA-256 of
everything that decides that audio (backend, service URL, voice, emotion,
speed, language, text, cache format). Entries from a paid service were paid
for: nothing here is evicted automatically.

Commands: `audiobook cache stats`, `audiobook cache prune` (drop what the
current config no longer uses), `audiobook cache clear`.
Keep it between builds (in CI: restore and save it) so nothing is paid twice.
"""


def segment_key(backend: str, voice: Voice, text: str, engine_voice: str = "") -> str:
    """SHA-256 hex over everything that changes a segment's audio.

    engine_voice is what an offline engine makes of the voice (its variant and
    prosody), which can depend on the voice library as well as on the voice.
    """
    return KeyMaker(backend, lambda v: engine_voice)(voice, text)


class KeyMaker:
    """segment_key as a function of (voice, text), hashing each voice's head once.

    The packer asks for the key of every candidate segment, so the per-voice
    part of the hash is computed once and copied.
    """

    def __init__(self, backend: str, engine_voice=lambda voice: ""):
        self.backend = backend
        self.engine_voice = engine_voice
        self._heads: dict[Voice, hashlib._Hash] = {}

    def _head(self, voice: Voice):
        head = self._heads.get(voice)
        if head is None:
            spec = json.dumps(
                {
                    "format": CACHE_FORMAT,
                    "backend": self.backend,
                    "engine_voice": self.engine_voice(voice),
                    "voice": voice.voice,
                    "emotion": voice.emotion,
                    "speed": float(voice.speed),
                    "language": voice.language,
                },
                sort_keys=True,
            )
            head = self._heads[voice] = hashlib.sha256(f"{spec}\n".encode())
        return head

    def __call__(self, voice: Voice, text: str) -> str:
        digest = self._head(voice).copy()
        digest.update(text.encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class CachedAudio:
    data: bytes
    format: str  # "wav", "mp3", ... detected from the bytes
    credits: int  # what was paid for it (0 offline)
    backend: str
    # (character offset, ms) of each sentence start the engine reported; () when none.
    marks: tuple[tuple[int, int], ...] = ()


class SegmentCache:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        readme = self.directory / "README.txt"
        if not readme.exists():
            readme.write_text(_README, encoding="utf-8")
        self._store = diskcache.Cache(
            str(self.directory / "store"),
            size_limit=2**62,
            eviction_policy="none",
            cull_limit=0,
            # Several builds may share one cache; wait for the lock rather than fail.
            timeout=300,
        )
        self._lock_path = self.directory / "lock"

    # -- segments --------------------------------------------------------
    def keys(self) -> set[str]:
        return {k[len(_SEGMENT):] for k in self._store.iterkeys() if k.startswith(_SEGMENT)}

    def get(self, key: str) -> CachedAudio | None:
        value = self._store.get(_SEGMENT + key)
        if not value:
            return None
        marks = tuple((int(c), int(t)) for c, t in value.get("marks", ()))
        return CachedAudio(value["data"], value["format"], value["credits"], value["backend"],
                           marks)

    def __contains__(self, key: str) -> bool:
        return (_SEGMENT + key) in self._store

    def put(self, key: str, audio: CachedAudio) -> None:
        self._store.set(
            _SEGMENT + key,
            {"data": audio.data, "format": audio.format, "credits": audio.credits,
             "backend": audio.backend, "marks": [list(m) for m in audio.marks]},
        )

    # -- tasks created but not yet downloaded (remote backends) -----------
    def pending(self, key: str) -> dict | None:
        return self._store.get(_PENDING + key)

    def set_pending(self, key: str, info: dict) -> None:
        self._store.set(_PENDING + key, info)

    def drop_pending(self, key: str) -> None:
        self._store.delete(_PENDING + key)

    def pending_keys(self) -> set[str]:
        return {k[len(_PENDING):] for k in self._store.iterkeys() if k.startswith(_PENDING)}

    # -- maintenance -----------------------------------------------------
    def stats(self) -> dict:
        count, size, credits = 0, 0, 0
        for key in self._store.iterkeys():
            if key.startswith(_SEGMENT):
                value = self._store.get(key)
                if value:
                    count += 1
                    size += len(value["data"])
                    credits += value["credits"]
        return {
            "directory": str(self.directory),
            "segments": count,
            "audio_bytes": size,
            "disk_bytes": self._store.volume(),
            "credits_paid": credits,
            "pending_tasks": len(self.pending_keys()),
        }

    def prune(self, keep: set[str]) -> tuple[int, int]:
        """Drop segments not in keep; return (count, credits) dropped."""
        dropped, credits = 0, 0
        with self.exclusive():
            for key in list(self._store.iterkeys()):
                if key.startswith(_SEGMENT) and key[len(_SEGMENT):] not in keep:
                    value = self._store.get(key)
                    self._store.delete(key)
                    dropped += 1
                    credits += value["credits"] if value else 0
        return dropped, credits

    def clear(self) -> int:
        with self.exclusive():
            count = len(self.keys())
            self._store.clear()
        return count

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with _flock(self._lock_path, exclusive=False):
            yield

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with _flock(self._lock_path, exclusive=True):
            yield

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> SegmentCache:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


@contextlib.contextmanager
def _flock(path: Path, exclusive: bool) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: diskcache's own transactions still apply
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def resolve_cache_dir(configured: Path) -> Path:
    env = os.environ.get("AUDIOBOOK_CACHE_DIR")
    return Path(env).expanduser() if env else configured


def open_cache(cfg: Config) -> SegmentCache:
    """The store a config uses (AUDIOBOOK_CACHE_DIR wins over cache.dir)."""
    return SegmentCache(resolve_cache_dir(cfg.cache_dir))
