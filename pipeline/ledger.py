"""The build ledger: one record of what is current, kept in the cache folder's ledger/.

Like SCons's .sconsign or ninja's log, it decides "nothing to do" from the
inputs a build declares, never from what a process happened to touch:

- `Signatures` (ledger/files.json): for every file the build declares (the
  config, sources, cover, voice library, lexicon file, this package's own
  files, the ffmpeg binary) and every output it wrote, a stat signature
  (size, mtime_ns, ctime_ns, inode, mode) and the SHA-256 taken when that
  signature last changed. A file is hashed again only when its stat moved,
  or when its mtime is not older than the moment it was last checked (git's
  racy-timestamp rule: two edits of one size inside one clock tick look
  alike). ctime cannot be set back by `touch -r`, `cp -p` or `tar`, so a
  same-size edit with the old mtime restored is still seen.
- the plan memo (ledger/plans/, plan.py): each chapter's packing, keyed by
  the content digests of what it depends on.
- build records (ledger/builds/): for a whole-book `audiobook build`, what
  a build that finds nothing to do prints, and the signatures it vouches
  for. The front door (`answer`, run by pipeline/__main__.py before click,
  the config schema or the planner are imported) prints that record again
  when every recorded file still holds what it held; anything it does not
  recognise, and any doubt, falls through to the full command line, which
  is always right.

Only the standard library is imported here: the front door's cost is
Python's start-up plus a few dozen stats.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat as st
import sys
import time
from typing import Any

FORMAT = 1
FOLDER = "ledger"
RACY_NS = 2_000_000_000  # FAT keeps times to 2 s; most file systems far finer
MAX_AGE_S = 86400  # a day: a build refreshes the cache's use record daily (cache prune)
DEFAULT_CACHE_DIR = ".audiobook-cache"
CACHE_ENV = "AUDIOBOOK_CACHE_DIR"

# The environment a build reads, in one place: by prefix or by name. Values
# of secrets count only as present or absent, and are never written.
ENV_PREFIXES = ("AUDIOBOOK_", "AUDIOCLEANER_", "AWS_")
ENV_NAMES = ("CI", "HOME", "XDG_CACHE_HOME", "PATH", "PYTHONPATH", "PYTHONIOENCODING",
             "PYTHONUTF8", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD")


def environment() -> list[list[str]]:
    """The variables a build reads, sorted; a secret's value as "<set>"."""
    found = []
    for name, value in os.environ.items():
        if name in ENV_NAMES or name.startswith(ENV_PREFIXES):
            secret = any(word in name for word in SECRET_WORDS)
            found.append([name, "<set>" if secret and value else value])
    return sorted(found)


# ------------------------------------------------------------------ signatures


def stat_of(path: str) -> list[int] | None:
    """[size, mtime_ns, ctime_ns, inode, mode] of a regular file; None if it is anything else."""
    try:
        s = os.stat(path)
    except (OSError, ValueError):
        return None
    if not st.S_ISREG(s.st_mode):
        return None
    return [s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino, s.st_mode]


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes (the project's one file hash; pipeline.files re-exports it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _sha256_or_none(path: str) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def _trusted(sig: list[int], known: list[Any]) -> bool:
    """Whether a recorded [*sig, sha256, checked_ns] still vouches for a file now stat'ed as sig."""
    return known[:5] == sig and sig[1] < int(known[6]) - RACY_NS


class Signatures:
    """path -> (stat signature, SHA-256, when checked): files hashed only when they changed."""

    def __init__(self, cache_dir: str | os.PathLike[str] | None):
        self.path = os.path.join(cache_dir, FOLDER, "files.json") if cache_dir else None
        self._known: dict[str, list[Any]] = {}
        self._changed = False
        self.code: str | None = None  # code_identity(), once per build
        if self.path:
            data = _read_json(self.path)
            table = data.get("files") if data and data.get("format") == FORMAT else None
            if isinstance(table, dict):
                self._known = {k: v for k, v in table.items()
                               if isinstance(v, list) and len(v) == 7}

    def digest(self, path: str | os.PathLike[str], own: bool = False) -> str | None:
        """The file's SHA-256 (None if it is not a readable regular file).

        own: a file this tool writes (an output), always replaced whole by a
        rename, never edited in place: its stat is trusted as soon as it is
        checked, so a no-op right after a build need not hash a long M4B.
        """
        name = os.path.abspath(path)
        sig = stat_of(name)
        if sig is None:
            return None
        known = self._known.get(name)
        if known is not None and _trusted(sig, known):
            return str(known[5])
        checked = time.time_ns()
        if own:
            checked = max(checked, sig[1] + RACY_NS + 1)
        digest = _sha256_or_none(name)
        if digest is not None and stat_of(name) == sig:  # not changed while read
            self._known[name] = [*sig, digest, checked]
            self._changed = True
        return digest

    def entry(self, path: str, own: bool = False) -> list[Any] | None:
        """[path, *signature, sha256, checked_ns] for a build record, or None if unreadable."""
        name = os.path.abspath(path)
        digest = self.digest(name, own)
        known = self._known.get(name)
        if digest is None or known is None:
            return None
        return [name, *known]

    def save(self) -> None:
        if not (self.path and self._changed):
            return
        self._known = {k: v for k, v in self._known.items() if os.path.lexists(k)}
        write_json(self.path, {"format": FORMAT, "files": self._known})
        self._changed = False


def holds(entry: list[Any]) -> bool:
    """Whether a recorded [path, *signature, sha256, checked_ns] still holds its bytes."""
    if not (isinstance(entry, list) and len(entry) == 8 and isinstance(entry[0], str)):
        return False
    sig = stat_of(entry[0])
    if sig is None:
        return False
    if _trusted(sig, entry[1:]):
        return True
    return sig[0] == entry[1] and _sha256_or_none(entry[0]) == entry[6]


# ------------------------------------------------------------------ the code


def package_files() -> list[str]:
    """Every file of this package (its code and data), sorted."""
    package = os.path.dirname(os.path.abspath(__file__))
    found: list[str] = []
    folders = [package]
    while folders:
        folder = folders.pop()
        with os.scandir(folder) as entries:
            for item in entries:
                if item.name == "__pycache__":
                    continue
                if item.is_dir(follow_symlinks=False):
                    folders.append(item.path)
                elif item.is_file(follow_symlinks=False):
                    found.append(item.path)
    return sorted(found)


def distributions() -> list[str]:
    """The name and version of every installed distribution (its *.dist-info folder), sorted.

    From the folder names alone: no metadata is read, so this costs one
    listing per folder on sys.path that belongs to the Python install.
    """
    prefixes = {os.path.join(p, "") for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    found = []
    for path in sys.path:
        folder = os.path.join(os.path.abspath(path or "."), "")
        if not any(folder.startswith(p) and folder != p for p in prefixes):
            continue  # sys.path[0] may be the book's own folder
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        found += [n[: -len(".dist-info")] for n in names if n.endswith(".dist-info")]
    return sorted(set(found))


def code_identity(signatures: Signatures) -> str:
    """This package's files by content, and every installed distribution's version.

    An upgrade of num2words, pysbd or markdown-it-py can change the text a
    build sends, so it re-plans; a fresh checkout or reinstall with the same
    bytes does not.
    """
    if signatures.code is None:
        package = os.path.dirname(os.path.abspath(__file__))
        files = [[os.path.relpath(p, package), signatures.digest(p)] for p in package_files()]
        spec = json.dumps([FORMAT, files, distributions()])
        signatures.code = hashlib.sha256(spec.encode()).hexdigest()
    return signatures.code


# ------------------------------------------------------------------ build records


def read_argv(argv: list[str]) -> tuple[str, bool, bool, bool] | None:
    """(config, quiet, verbose, json) of a whole-book `build` the front door answers; else None.

    Only `build` with -c/--config, -q, -v and --json, before or after the
    command name: anything else (chapters, --force, --backend, ...) is the
    full command line's.
    """
    config, quiet, verbose, as_json, command = "audiobook.yml", False, False, False, False
    tokens = iter(argv)
    for token in tokens:
        if token == "build" and not command:
            command = True
        elif token in ("-c", "--config"):
            config = next(tokens, "")
        elif token.startswith("--config="):
            config = token[len("--config="):]
        elif token in ("-q", "--quiet"):
            quiet = True
        elif token in ("-v", "--verbose"):
            verbose = True
        elif token == "--json" and command:
            as_json = True
        else:
            return None
    if not command or not config or (quiet and verbose):
        return None
    return config, quiet, verbose, as_json


def record_key(config: str) -> str:
    """The build record of a config file (an absolute path) in this environment."""
    spec = json.dumps([FORMAT, os.path.abspath(config), environment(), sys.executable])
    return hashlib.sha256(spec.encode()).hexdigest()[:40]


def cache_dir_of(config: str, text: bytes) -> str:
    """AUDIOBOOK_CACHE_DIR, else the config's cache.dir, else .audiobook-cache beside it.

    config.py resolves cache.dir with this same function.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return os.path.abspath(os.path.expanduser(env))
    where = DEFAULT_CACHE_DIR
    if b"cache" in text:  # only then is yaml worth importing
        import yaml

        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        cache = data.get("cache") if isinstance(data, dict) else None
        value = cache.get("dir") if isinstance(cache, dict) else None
        if isinstance(value, str) and value.strip():
            where = value.strip()
    return resolve_in(os.path.dirname(os.path.abspath(config)), where)


def resolve_in(root: str | os.PathLike[str], value: str) -> str:
    """A path from the config, relative to the config's folder (~ expanded)."""
    return os.path.realpath(os.path.join(root, os.path.expanduser(value.strip())))


def summary_line(result: dict) -> str:
    """The one-line summary of a build, as the command line and the front door print it."""
    return (f"{result['segments_synthesized']} segment(s) synthesized, "
            f"{result['segments_cached']} cached; {result['credits_spent']} credit(s) spent; "
            f"{result['chapters_written']} chapter(s) written, "
            f"{result['chapters_unchanged']} unchanged")


def write_record(cache_dir: str, config: str, *, files: list[list[Any]],
                 binaries: list[list[Any]], segments: list[str], warnings: list[str],
                 noop: dict, out_dir: str) -> None:
    """Keep what a build of `config` that finds nothing to do prints, and what it vouches for.

    files: signature entries (Signatures.entry) of every declared input and
    every output; binaries: [path, size, mode] of a pinned binary, known by
    its wheel's version; segments: the cache entries the outputs were made from.
    """
    text = _read_bytes(config)
    if text is None:
        return
    record = {
        "format": FORMAT,
        "written": time.time(),
        "config": [os.path.abspath(config), hashlib.sha256(text).hexdigest()],
        "code": _code(),
        "binaries": binaries,
        "files": files,
        "segments": segments,
        "cache_names": _names(cache_dir),
        "warnings": warnings,
        "result": noop,
        "out_dir": out_dir,
    }
    write_json(os.path.join(cache_dir, FOLDER, "builds", record_key(config) + ".json"), record)


def drop_records(cache_dir: str, older_than_s: float | None = None) -> None:
    """Forget the build records: all (cache clear), or those too old to be used (prune)."""
    folder = os.path.join(cache_dir, FOLDER, "builds")
    cutoff = time.time() - (older_than_s or 0)
    for name in _listdir(folder):
        path = os.path.join(folder, name)
        try:
            if name.endswith(".json") and (older_than_s is None
                                           or os.stat(path).st_mtime < cutoff):
                os.unlink(path)
        except OSError:
            pass


def answer(argv: list[str]) -> int | None:
    """Print a recorded no-op build and return 0; None means: run the full command line."""
    try:
        return _answer(argv)
    except Exception:  # noqa: BLE001 - any doubt: the full build decides
        return None


def _answer(argv: list[str]) -> int | None:
    read = read_argv(argv)
    if read is None:
        return None
    config, quiet, verbose, as_json = read
    config = os.path.abspath(config)
    text = _read_bytes(config)
    if text is None:
        return None
    cache_dir = cache_dir_of(config, text)
    record = _read_json(os.path.join(cache_dir, FOLDER, "builds", record_key(config) + ".json"))
    if not record or record.get("format") != FORMAT:
        return None
    if not 0 <= time.time() - float(record["written"]) < MAX_AGE_S:
        return None
    if record["config"] != [config, hashlib.sha256(text).hexdigest()]:
        return None
    if record["code"] != _code():
        return None
    if not all(_binary_holds(*b) for b in record["binaries"]):
        return None
    if _listdir(os.path.join(cache_dir, "pending")):
        return None  # paid tasks to download: the build has work
    if record["cache_names"] != _names(cache_dir):
        return None
    if not all(holds(entry) for entry in record["files"]):
        return None
    if not all(os.path.isfile(path) for path in record["segments"]):
        return None
    _print(record, quiet, verbose, as_json)
    return 0


def _print(record: dict, quiet: bool, verbose: bool, as_json: bool) -> None:
    err = [str(w) for w in record["warnings"]]
    out: list[str] = []
    if verbose:
        err.append(f"nothing to do: {len(record['files'])} file(s) hold what the last build "
                   f"left (the build ledger in {FOLDER}/)")
    if as_json:
        out.append(json.dumps(record["result"], indent=2))
    else:
        if not quiet:
            err.append(summary_line(record["result"]))
            out.append(f"outputs in {record['out_dir']}")
    for stream, lines in ((sys.stderr, err), (sys.stdout, out)):
        if lines:
            data = "".join(line + "\n" for line in lines)
            try:
                stream.write(data)
            except UnicodeEncodeError:
                stream.buffer.write(data.encode(stream.encoding or "utf-8", "backslashreplace"))
            stream.flush()


def _code() -> list[Any]:
    """The package's file names (their bytes are in a record's files) and the distributions."""
    return [package_files(), distributions()]


def binary_entry(path: str) -> list[Any]:
    s = os.stat(path)
    return [os.path.abspath(path), s.st_size, s.st_mode]


def _binary_holds(path: str, size: int, mode: int) -> bool:
    try:
        s = os.stat(path)
    except OSError:
        return False
    return [s.st_size, s.st_mode] == [size, mode]


# ------------------------------------------------------------------ small files


def _names(folder: str) -> list[str]:
    return sorted(_listdir(folder))


def _listdir(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _read_json(path: str) -> dict | None:
    text = _read_bytes(path)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def write_json(path: str, value: Any) -> None:
    """Write a small JSON file whole or not at all; a read-only cache only loses speed.

    Only the full build writes (never the front door), so pipeline.files's
    atomic write is imported here, not at the top.
    """
    from pathlib import Path

    from pipeline.errors import OutputWriteError
    from pipeline.files import write_atomic

    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, json.dumps(value, ensure_ascii=False).encode("utf-8"))
    except (OSError, OutputWriteError):
        pass
