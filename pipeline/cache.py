"""The segment store: paid-for audio, keyed by everything that decides it.

Like pre-commit's store: its folder comes from AUDIOBOOK_CACHE_DIR, else the
config's cache.dir; it writes a README saying what it is; changes that drop
entries (prune, clear) take an exclusive lock while builds hold a shared one.

Each entry is one file, `segments/<k[:2]>/<key>.seg`: a JSON header line (key,
sha256 and byte length of the audio, format, credits paid, backend identity)
and then the audio bytes. It is written to a temporary file beside it and
renamed into place, so an entry is whole or absent. The files are the index:
there is no database to fall out of step with them, and every read checks the
header against the bytes, so a damaged entry is dropped and made again instead
of being played. Nothing is evicted: an entry leaves only by `cache prune`,
`cache clear` or being found damaged.

Beside the entries, as small JSON files: `pending/` (remote tasks created but
not yet downloaded: the client's journal), `leases/` (which build is paying for
a segment right now, so builds sharing the store pay once) and `uses/` (which
config used the store with which backend, so prune keeps what they still use).

Nothing in the folder is ever unpickled, executed or imported: a cache folder
can arrive with an untrusted repository. A `store/` folder or `.val` files
(the diskcache layout of an early, never released format) are named as foreign
in a warning and left unread (docs/cache.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shlex
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import files
from pipeline.book import Voice
from pipeline.ledger import MAX_AGE_S, Signatures, drop_records
from pipeline.store_rules import MAX_ENTRY_BYTES, expired, is_mine, lease_alive

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.remote_cache import RemoteCache

log = logging.getLogger("pipeline.cache")

# Bump when anything about how audio is produced or stored changes, so stale
# entries are never served for new keys.
CACHE_FORMAT = 1

# The on-disk layout of an entry (1 was a diskcache store, never released).
ENTRY_FORMAT = 2
_SUFFIX = ".seg"
# No segment is near this; a bigger file is not ours to read whole.
HEADER_MAX = 4096
# A temporary file this old belongs to no live writer.
_STALE_TMP_S = 600.0
# What the store itself writes at its top; anything else is not read.
_OURS = frozenset({"segments", "pending", "leases", "uses", "covers", "ledger",
                   "README.txt", "lock"})
# Our own folders of earlier versions (JSON only), removed unread: the plan
# memo moved into ledger/, and the build stamp gave way to the ledger.
_RETIRED = ("plans", "stamps")

_README = """\
This folder is an audiobook-pipeline segment cache.

Each entry is the audio of one segment of speech, keyed by the SHA-256 of
everything that decides that audio (backend, service URL, voice, emotion,
speed, language, text, cache format). Entries from a paid service were paid
for: nothing here is evicted automatically.

segments/  one file per entry: a JSON header line (checksum, length, credits)
           and the audio bytes; checked on every read
pending/   remote tasks created but not yet downloaded (resumed by the next build)
leases/    which build is making a segment right now
uses/      which config used this cache with which backend (prune keeps their audio)
covers/    the book's cover as fitted into the files (an SVG rasterized once)
ledger/    what each build read and wrote, by content: files.json (signatures),
           plans/ (each chapter's plan), builds/ (what a no-op build prints)

Commands: `audiobook cache stats`, `audiobook cache verify [--repair]`,
`audiobook cache prune` (drop what no recorded config uses; paid audio only
with --include-paid), `audiobook cache clear`.
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


@dataclass(frozen=True)
class Damage:
    """An entry (or file) of the store that cannot be served."""

    key: str
    path: str
    reason: str
    credits: int | None  # what it had cost, when its header still says

    def cost(self) -> str:
        if self.credits is None:
            return "cost unknown"
        return f"{self.credits} credit(s)" if self.credits else "free (offline audio)"


@dataclass
class PruneReport:
    """What a prune of either tier dropped and kept."""

    in_use: int = 0
    dropped: int = 0
    dropped_credits: int = 0
    kept_paid: int = 0  # unused, but paid for: kept without --include-paid
    kept_paid_credits: int = 0
    kept_fresh: int = 0  # remote only: younger than a lease's ttl, a build may have just uploaded it


class EntryDamaged(Exception):
    """Internal: why an entry file cannot be served."""

    def __init__(self, reason: str, credits: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.credits = credits


def _is_key(name: str) -> bool:
    return len(name) == 64 and not name.strip("0123456789abcdef")


def _durable_temp(path: Path, data: bytes) -> Path:
    """data in a new temporary file beside path (named by pipeline.files), synced to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = files.temp_path(path.parent, "entry", ".part")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _write_atomically(path: Path, data: bytes) -> None:
    """Whole or absent: a temporary file in the same folder, renamed into place."""
    tmp = _durable_temp(path, data)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_once(path: Path, data: bytes) -> bool:
    """Create path with data unless it exists already; True if this call wrote it.

    An entry, once stored, never changes: two builds that made the same
    segment at once then both play the first one, and give the same bytes.
    """
    tmp = _durable_temp(path, data)
    try:
        try:
            os.link(tmp, path)  # atomic create-if-absent, whole when visible
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        tmp.unlink(missing_ok=True)


_warned: set[Path] = set()


def foreign_paths(root: Path) -> list[Path]:
    """What in a cache folder the store did not write and never reads.

    A `store/` folder or `.val` files are the diskcache layout of an early
    format that never left development; diskcache's reader unpickles what its
    database says is a pickle, so such a folder is code a repository could ship.
    Only names are looked at here, never contents, and our own folders (where
    the entries are) are not walked.
    """
    found: list[Path] = []
    try:
        top = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return found
    for entry in top:
        path = Path(entry.path)
        if entry.name == "store" or entry.name.endswith(".val"):
            found.append(path)
        elif entry.name not in _OURS and entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(OSError):
                if next(iter(path.rglob("*.val")), None) is not None:
                    found.append(path)
    return found


def warn_foreign(root: Path) -> None:
    """One warning per folder and process naming what is foreign; nothing in it is read."""
    key = root.resolve()
    if key in _warned:
        return
    _warned.add(key)
    for path in foreign_paths(root):
        log.warning("%s is not part of this cache (it looks like a diskcache store, a format "
                    "this tool never reads: its files could run code); it is ignored. Remove "
                    "it with: rm -rf %s", path, shlex.quote(str(path)))


def _remove_leftovers(root: Path) -> None:
    """Temporary files of killed builds, in the store's folders (see pipeline.files)."""
    for folder in [root, *(p for p in root.glob("*/") if p.is_dir() and p.name in _OURS),
                   *(p for p in root.glob("segments/*/") if p.is_dir())]:
        files.remove_leftovers(folder)


def _read_json(path: Path) -> dict | None:
    """A small JSON object file; None when absent or unreadable."""
    try:
        if path.stat().st_size > HEADER_MAX * 16:
            return None
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _parse_header(head: bytes, key: str) -> dict:
    try:
        meta = json.loads(head)
    except ValueError:
        raise EntryDamaged("its header is unreadable") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("size"), int):
        raise EntryDamaged("its header is unreadable")
    credits = meta.get("credits") if isinstance(meta.get("credits"), int) else None
    if meta.get("key") != key:
        raise EntryDamaged("its header names another segment", credits)
    return meta


def read_entry(path: Path, key: str) -> tuple[dict, bytes]:
    """(header, audio bytes) of an entry file, checked; EntryDamaged if it is not whole."""
    size = path.stat().st_size  # FileNotFoundError: simply missing
    if size > MAX_ENTRY_BYTES:
        raise EntryDamaged(f"it is {size} bytes, more than any segment")
    return parse_entry(path.read_bytes(), key)


def entry_bytes(key: str, audio: CachedAudio) -> bytes:
    """An entry as stored, locally and remotely: a JSON header line, then the audio."""
    header = {
        "entry_format": ENTRY_FORMAT, "key": key,
        "sha256": hashlib.sha256(audio.data).hexdigest(), "size": len(audio.data),
        "format": audio.format, "credits": audio.credits, "backend": audio.backend,
        "created": round(time.time(), 3), "marks": [list(m) for m in audio.marks],
    }
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\n" + audio.data


def parse_entry(raw: bytes, key: str) -> tuple[dict, bytes]:
    """(header, audio bytes) of an entry's bytes, checked; EntryDamaged if it is not whole."""
    head, newline, data = raw.partition(b"\n")
    if not newline:
        raise EntryDamaged("it has no header (truncated)")
    meta = _parse_header(head, key)
    credits = meta.get("credits") if isinstance(meta.get("credits"), int) else None
    if len(data) != meta["size"]:
        raise EntryDamaged(f"it holds {len(data)} of {meta['size']} audio bytes (truncated)",
                           credits)
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise EntryDamaged("its audio does not match its checksum", credits)
    return meta, data


def read_header(path: Path, key: str) -> dict:
    """An entry's header alone (for stats and prune); EntryDamaged if unreadable."""
    with open(path, "rb") as handle:
        return header_of(handle.read(HEADER_MAX), key)


def header_of(start: bytes, key: str) -> dict:
    """The header of an entry from its first bytes (HEADER_MAX suffice); EntryDamaged if bad."""
    head = start.partition(b"\n")
    if not head[1]:
        raise EntryDamaged("it has no header (truncated)")
    return _parse_header(head[0], key)


class SegmentCache:
    def __init__(self, directory: Path, remote: RemoteCache | None = None):
        self.directory = Path(directory)
        self.remote = remote  # the fleet tier (remote_cache.py), read- and write-through
        self.directory.mkdir(parents=True, exist_ok=True)
        readme = self.directory / "README.txt"
        if not readme.exists() or _LEGACY_README_MARK in readme.read_text("utf-8", "replace"):
            _write_atomically(readme, _README.encode())
        self._lock_path = self.directory / "lock"
        self._segments = self.directory / "segments"
        self._pending = self.directory / "pending"
        self._leases = self.directory / "leases"
        self._uses = self.directory / "uses"
        # Leases this process holds ("local" or "remote" tier), dead holders' leases
        # it took over (their info, until the client asks), and leases it lost.
        self._held: dict[str, str] = {}
        self._taken_over: dict[str, dict] = {}
        self._lost: set[str] = set()
        for name in _RETIRED:
            if (self.directory / name).is_dir() and not (self.directory / name).is_symlink():
                shutil.rmtree(self.directory / name, ignore_errors=True)
        warn_foreign(self.directory)
        _remove_leftovers(self.directory)
        self.signatures = Signatures(self.directory)

    # -- segments --------------------------------------------------------
    def _path(self, key: str) -> Path:
        return self._segments / key[:2] / (key + _SUFFIX)

    def entry_path(self, key: str) -> Path:
        """Where a local entry is (the build ledger checks that it is still there)."""
        return self._path(key)

    def _entry_files(self) -> Iterator[tuple[str, Path]]:
        if not self._segments.is_dir():
            return
        for sub in sorted(os.scandir(self._segments), key=lambda e: e.name):
            if not sub.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(sub.path):
                name = entry.name
                if name.endswith(_SUFFIX) and _is_key(name[: -len(_SUFFIX)]):
                    yield name[: -len(_SUFFIX)], Path(entry.path)

    def keys(self) -> set[str]:
        """Every key a build can get: this folder's, and the remote tier's."""
        local = self.local_keys()
        return local | self.remote.keys() if self.remote is not None else local

    def local_keys(self) -> set[str]:
        return {key for key, _ in self._entry_files()}

    def get(self, key: str) -> CachedAudio | None:
        """The entry, checked against its checksum; None when missing or damaged.

        A damaged entry is deleted (with a warning naming it), so the plan
        that follows sees it missing and makes it again.
        """
        path = self._path(key)
        try:
            before = path.stat()
            meta, data = read_entry(path, key)
        except FileNotFoundError:
            return self._get_remote(key)
        except (EntryDamaged, OSError) as exc:
            reason = exc.reason if isinstance(exc, EntryDamaged) else f"it cannot be read ({exc})"
            credits = exc.credits if isinstance(exc, EntryDamaged) else None
            damage = Damage(key, str(path), reason, credits)
            log.warning("cache entry %s is damaged: %s; dropped it, it will be made again (%s)",
                        key[:12], reason, damage.cost())
            self._drop_if_unchanged(path, before)
            return self._get_remote(key)
        return _cached_audio(meta, data)

    def _get_remote(self, key: str) -> CachedAudio | None:
        """Read-through: a checked remote entry is kept locally as well."""
        if self.remote is None:
            return None
        raw = self.remote.get(key)
        if raw is None:
            return None
        try:
            meta, data = parse_entry(raw, key)
        except EntryDamaged as exc:
            log.warning("remote cache entry %s is damaged: %s; it will be made again",
                        key[:12], exc.reason)
            return None
        _write_atomically(self._path(key), raw)
        return _cached_audio(meta, data)

    def _drop_if_unchanged(self, path: Path, seen: os.stat_result) -> None:
        # Another build may have just replaced the damaged file with a good one.
        with contextlib.suppress(OSError):
            now = path.stat()
            if (now.st_ino, now.st_size, now.st_mtime_ns) == (seen.st_ino, seen.st_size,
                                                                 seen.st_mtime_ns):
                path.unlink()

    def __contains__(self, key: str) -> bool:
        return self._path(key).is_file() or (self.remote is not None and key in self.remote)

    def put(self, key: str, audio: CachedAudio) -> None:
        """Store an entry; one already stored and whole is kept (first writer wins)."""
        raw = entry_bytes(key, audio)
        path = self._path(key)
        if not _write_once(path, raw):
            try:
                read_entry(path, key)
            except (EntryDamaged, OSError):
                _write_atomically(path, raw)  # what was there is damaged: replace it
            else:
                raw = path.read_bytes()
        if self.remote is not None:
            self.remote.put(key, raw)  # write-through: the fleet pays once too

    def entry_credits(self, key: str) -> int | None:
        """What an entry cost, from its header; None when unreadable."""
        try:
            return int(read_header(self._path(key), key).get("credits", 0))
        except (OSError, EntryDamaged, ValueError, TypeError):
            return None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    # -- tasks created but not yet downloaded (remote backends) -----------
    def pending(self, key: str) -> dict | None:
        path = self._pending / f"{key}.json"
        if not path.exists():
            return None
        info = _read_json(path)
        if info is None:
            log.warning("the journal entry of segment %s (%s) is unreadable; a build makes the "
                        "segment again", key[:12], path)
        return info

    def set_pending(self, key: str, info: dict) -> None:
        _write_atomically(self._pending / f"{key}.json", json.dumps(info).encode())
        # The job id travels with the lease, so a second build polls it instead of paying.
        self._update_lease(key, {k: info[k] for k in ("job_id", "base_url") if k in info})

    def drop_pending(self, key: str) -> None:
        (self._pending / f"{key}.json").unlink(missing_ok=True)

    def pending_keys(self) -> set[str]:
        return set(self._json_names(self._pending))

    @staticmethod
    def _json_names(folder: Path) -> Iterator[str]:
        if folder.is_dir():
            for entry in os.scandir(folder):
                if entry.name.endswith(".json") and not entry.name.startswith("."):
                    yield entry.name[: -len(".json")]

    # -- leases: one build pays for a segment, the others wait for it -----
    def lease(self, key: str, holder: dict, ttl_s: float) -> dict | None:
        """Take the lease on key before paying for it.

        None: this process holds it now. Otherwise the live holder's info
        (pid, host, time, ttl_s, and job_id/base_url once its task exists).
        A lease whose ttl passed, or whose holder process on this host is
        gone, is taken over; took_over(key) then says whose it was (its job
        id is a task already paid for). Check-and-write happens under the
        lease lock, the local form of a conditional write (see docs/cache.md).
        """
        mine = {**holder, "pid": os.getpid(), "host": socket.gethostname(),
                "time": time.time(), "ttl_s": float(ttl_s), "token": uuid.uuid4().hex}
        if self.remote is not None and self.remote.available:
            state, info = self.remote.lease(key, mine)
            if state == "busy":  # the remote answered: it speaks for the fleet
                return info
            if state == "held":
                self._held[key] = "remote"
                if info is not None:
                    self._taken_over[key] = info
                return None
        path = self._leases / f"{key}.json"
        with _flock(self._leases_lock(), exclusive=True):
            current = _read_json(path)
            if current is not None and lease_alive(current) and not is_mine(current):
                return current
            if current is not None and not is_mine(current):
                log.info("taking over the lease on segment %s from pid %s on %s (%s)",
                         key[:12], current.get("pid"), current.get("host"),
                         "expired" if expired(current) else "process gone")
                self._taken_over[key] = current
            _write_atomically(path, json.dumps(mine).encode())
        self._held[key] = "local"
        return None

    def took_over(self, key: str) -> dict | None:
        """The dead holder's lease info if our last lease() on key took it over (asked once)."""
        return self._taken_over.pop(key, None)

    def leases_lost(self) -> int:
        """Leases this process held that another build took before we were done with them."""
        return len(self._lost)

    def lease_info(self, key: str) -> dict | None:
        """The live lease on key (whoever holds it), or None."""
        if self.remote is not None and self.remote.available:
            found = self.remote.lease_info(key)
            if found is not False:
                return found
        current = _read_json(self._leases / f"{key}.json")
        return current if current is not None and lease_alive(current) else None

    def release(self, key: str) -> None:
        """Give up this process's lease on key (someone else's is left alone)."""
        tier = self._held.pop(key, None)
        if self.remote is not None and self.remote.available:
            if self.remote.release(key) is False and tier == "remote":
                self._lose(key, "released")
        path = self._leases / f"{key}.json"
        if not path.exists():
            if tier == "local":
                self._lose(key, "released")
            return
        with _flock(self._leases_lock(), exclusive=True):
            current = _read_json(path)
            if current is None or is_mine(current) or not lease_alive(current):
                path.unlink(missing_ok=True)
            elif tier == "local":
                self._lose(key, "released")

    def mark_creating(self, key: str) -> None:
        """Say in our lease that we are about to pay for key's task.

        A build that takes the lease over from us dead, without a job id in
        it, then knows we may have paid; without the mark, that we had not.
        """
        self._update_lease(key, {"creating": True}, "started its task")

    def _update_lease(self, key: str, info: dict, when: str = "journaled its task") -> None:
        tier = self._held.get(key)
        if info and self.remote is not None and self.remote.available:
            if self.remote.update_lease(key, info) is False and tier == "remote":
                self._lose(key, when)
        path = self._leases / f"{key}.json"
        if not info:
            return
        if not path.exists():
            if tier == "local":
                self._lose(key, when)
            return
        with _flock(self._leases_lock(), exclusive=True):
            current = _read_json(path)
            if current is not None and is_mine(current):
                _write_atomically(path, json.dumps({**current, **info,
                                                   "time": time.time()}).encode())
            elif tier == "local":
                self._lose(key, when)

    def _lose(self, key: str, when: str) -> None:
        if key not in self._lost:
            self._lost.add(key)
            log.warning("the lease on segment %s was taken by another build before this one %s "
                        "(its ttl passed): that segment may be paid for twice", key[:12], when)

    def _leases_lock(self) -> Path:
        self._leases.mkdir(parents=True, exist_ok=True)
        return self._leases / ".lock"

    # -- which configs use this store ------------------------------------
    def record_use(self, config_path: str, backend: str, identity: str) -> None:
        """Remember that config_path built with backend at identity (prune keeps its audio)."""
        record = {"config": str(config_path), "backend": backend, "identity": identity}
        name = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:32]
        path = self._uses / f"{name}.json"
        old = _read_json(path)
        # One write a day at most: builds are frequent, the record barely changes.
        if old is None or time.time() - float(old.get("last_used", 0)) > 86400:
            _write_atomically(path, json.dumps({**record, "last_used": time.time()}).encode())

    def uses(self) -> list[dict]:
        found = []
        for name in sorted(self._json_names(self._uses)):
            record = _read_json(self._uses / f"{name}.json")
            if record and all(isinstance(record.get(k), str)
                              for k in ("config", "backend", "identity")):
                found.append({**record, "id": name})
        return found

    def forget_use(self, record_id: str) -> None:
        (self._uses / f"{record_id}.json").unlink(missing_ok=True)

    # -- maintenance -----------------------------------------------------
    def stats(self) -> dict:
        count, size, credits, disk = 0, 0, 0, 0
        for key, path in self._entry_files():
            with contextlib.suppress(OSError, EntryDamaged, ValueError, TypeError):
                disk += path.stat().st_size
                meta = read_header(path, key)
                count += 1
                size += int(meta["size"])
                credits += int(meta.get("credits", 0))
        return {
            "directory": str(self.directory),
            "segments": count,
            "audio_bytes": size,
            "disk_bytes": disk,
            "credits_paid": credits,
            "pending_tasks": len(self.pending_keys()),
            "pending": self.pending_list(),
            "configs_recorded": len(self.uses()),
            **self._remote_stats(),
        }

    def _remote_stats(self) -> dict:
        if self.remote is None:
            return {}
        keys = self.remote.keys()
        return {"remote": str(self.remote.where),
                "remote_segments": len(keys) if self.remote.available else None,
                "local_only_segments": len(self.local_keys() - keys)
                if self.remote.available else None}

    def push(self) -> tuple[int, int]:
        """Upload local entries the remote tier lacks; (entries, bytes) sent."""
        from pipeline.errors import RemoteCacheError

        remote = self.remote
        if remote is None:
            raise RemoteCacheError("no remote cache is set: set cache.remote in audiobook.yml or "
                                   "AUDIOBOOK_REMOTE_CACHE to s3://BUCKET/PREFIX")
        there = remote.keys()
        sent, size = 0, 0
        for key in sorted(self.local_keys() - there):
            if not remote.available:
                break
            if self.get(key) is None:  # damaged: dropped with a warning, not sent
                continue
            raw = self._path(key).read_bytes()
            if remote.put(key, raw):
                sent, size = sent + 1, size + len(raw)
        if not remote.available:
            raise RemoteCacheError(f"remote cache {remote.where} cannot be used; {sent} "
                                   "entr(ies) were sent before it failed (see above)")
        return sent, size

    def pending_list(self) -> list[dict]:
        """Journalled remote tasks: paid for (or being paid), not downloaded yet."""
        out = []
        now = time.time()
        for key in sorted(self.pending_keys()):
            info = _read_json(self._pending / f"{key}.json") or {}
            created = info.get("created_at")
            out.append({"key": key, "job_id": info.get("job_id"), "base_url": info.get("base_url"),
                        "credits": info.get("credits"),
                        "age_s": round(now - created, 1) if isinstance(created, (int, float))
                        else None})
        return out

    def prune(self, keep: set[str], include_paid: bool = False,
              only: set[str] | None = None) -> PruneReport:
        """Drop entries not in keep (and in only, when given); paid ones only with include_paid.

        The caller holds exclusive(): keep must be computed under the same lock.
        """
        report = PruneReport(in_use=len(keep))
        for key in self.local_keys() - keep:
            if only is not None and key not in only:
                continue
            credits = self.entry_credits(key)
            if credits and not include_paid:
                report.kept_paid += 1
                report.kept_paid_credits += credits
                continue
            self.delete(key)
            report.dropped += 1
            report.dropped_credits += credits or 0
        drop_records(str(self.directory), MAX_AGE_S)
        return report

    def clear(self) -> int:
        with self.exclusive():
            keys = self.local_keys()
            for key in keys:
                self.delete(key)
            drop_records(str(self.directory))
        return len(keys)

    def verify(self, repair: bool = False) -> list[Damage]:
        """Check every entry, journal and lease file; with repair drop what is bad."""
        bad: list[Damage] = []
        with self.exclusive() if repair else contextlib.nullcontext():
            for key, path in self._entry_files():
                try:
                    read_entry(path, key)
                except FileNotFoundError:
                    continue
                except (EntryDamaged, OSError) as exc:
                    reason = exc.reason if isinstance(exc, EntryDamaged) else str(exc)
                    credits = exc.credits if isinstance(exc, EntryDamaged) else None
                    bad.append(Damage(key, str(path), reason, credits))
                    if repair:
                        path.unlink(missing_ok=True)
            for folder, what in ((self._pending, "journal entry"), (self._leases, "lease"),
                                 (self._uses, "use record")):
                for name in list(self._json_names(folder)):
                    path = folder / f"{name}.json"
                    if _read_json(path) is None and path.exists():
                        bad.append(Damage(name, str(path), f"its {what} is unreadable", None))
                        if repair:
                            path.unlink(missing_ok=True)
            if repair:
                self._remove_stale_temporaries()
        return bad

    def _remove_stale_temporaries(self) -> None:
        cutoff = time.time() - _STALE_TMP_S
        for path in self.directory.rglob(".tmp-*.part"):
            with contextlib.suppress(OSError):
                if not path.is_symlink() and path.stat().st_mtime < cutoff:
                    path.unlink()

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with _flock(self._lock_path, exclusive=False):
            yield

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with _flock(self._lock_path, exclusive=True):
            yield

    def close(self) -> None:
        self.signatures.save()

    def __enter__(self) -> SegmentCache:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _cached_audio(meta: dict, data: bytes) -> CachedAudio:
    return CachedAudio(data, str(meta.get("format", "")), int(meta.get("credits", 0)),
                       str(meta.get("backend", "")), _marks(meta.get("marks")))


def _marks(raw: object) -> tuple[tuple[int, int], ...]:
    """The engine's sentence marks from a header, or () when they are not well formed.

    The checksum covers the audio, not the header, so marks are not trusted
    blindly: anything but increasing (offset, ms) pairs of integers is dropped,
    and the stitcher then finds the sentences in the audio itself.
    """
    if not isinstance(raw, list):
        return ()
    marks: list[tuple[int, int]] = []
    for pair in raw:
        if not (isinstance(pair, list) and len(pair) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in pair)):
            return ()
        if marks and (pair[0] <= marks[-1][0] or pair[1] < marks[-1][1]):
            return ()
        marks.append((pair[0], pair[1]))
    return tuple(marks)


_LEGACY_README_MARK = "`audiobook cache prune` (drop what the\ncurrent config no longer uses)"


@contextlib.contextmanager
def _flock(path: Path, exclusive: bool) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; atomic renames still apply
        yield
        return
    # Opened read-only: flock needs no write access, and a build that only
    # looks (a no-op) then opens nothing to write.
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def resolve_cache_dir(configured: Path) -> Path:
    env = os.environ.get("AUDIOBOOK_CACHE_DIR")
    return Path(env).expanduser() if env else configured


def open_cache(cfg: Config, offline: bool = False,
               local_only: bool = False) -> SegmentCache:
    """The store a config uses (AUDIOBOOK_CACHE_DIR wins over cache.dir).

    With a remote tier configured (AUDIOBOOK_REMOTE_CACHE, else cache.remote)
    it reads and writes through to it, except offline: --offline never
    touches the network.
    """
    remote = None
    if not (offline or local_only):
        from pipeline.remote_cache import open_remote

        remote = open_remote(cfg)
    return SegmentCache(resolve_cache_dir(cfg.cache_dir), remote=remote)


def sum_credits(damage: list[Damage]) -> int:
    return sum(d.credits or 0 for d in damage)


def as_json(damage: list[Damage]) -> list[dict[str, Any]]:
    return [{"key": d.key, "path": d.path, "reason": d.reason, "credits": d.credits}
            for d in damage]
