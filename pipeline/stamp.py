"""The build stamp: a no-op build, remembered, so the next one need not plan.

A build that changes nothing still reads the config, every chapter's plan
memo, the manifest and the cache's folders; in a long book that is most of
half a second, and most of that is importing the code that does it. Like
make's timestamps or ninja's log, the stamp lets the command line answer
"nothing to do" before it imports any of it.

Recording. While `audiobook build` runs, a Recorder notes every path the
process looks at: files opened (Python's audit hook, `open`), folders listed
(`os.listdir`, `os.scandir`) and paths stat'ed (os.stat and os.lstat are
wrapped for the run, so an optional file that was *absent* is noted too).
Nothing is chosen by hand, so an input added later (a cover, a lexicon
file) cannot be forgotten here. When the run changed nothing, started no
process and touched no network, the stamp keeps:

- what was found at each path: a file's size, times and inode, plus a
  SHA-256 of every file the build read; a folder's sorted names; "absent";
- the code: every file of this package, and the folders on sys.path that
  pip installs into (an upgrade changes their listing);
- what the run printed, to print again.

A build that did change something looks once more, silently and without
acting (Recorder.look_only), to record the stamp, so the very next build is
already fast.

Replaying. `replay(argv)` runs before the command line is imported. The
stamp is found by a hash of the arguments, the working folder, the Python
and the environment variables the build reads (secrets by presence only:
no key, nor a hash of one, is written). It is used only if it is less than
a day old and every path still holds what it held. A file the build read
(the config, the manifest) whose stat changed is hashed again, so touching
it does not force planning; a file the build only stat'ed (a source whose
plan memo matched, an output) must keep its size and mtime. Any doubt (a
missing, damaged or foreign stamp, any error) means the normal build runs,
which is always correct: the stamp can only make a build skip work that
build would have found unneeded.

Files edited within RACY_NS of being read are not vouched for (the times
a file system keeps are coarse: two edits of the same size inside one tick
look alike), except the tool's own files in the cache and output folders,
which are replaced, never edited in place, so their inode changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat as st
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing costs the fast path 5 ms
    from typing import Any

FORMAT = 1
MAX_AGE_S = 86400  # a day: the normal build also refreshes the cache's use record daily
RACY_NS = 2_000_000_000  # FAT keeps times to 2 s; most file systems far finer
HASH_LIMIT = 64 << 20  # a file read by the build and larger than this is trusted by its stat
FOLDER = "stamps"

# Environment variables a build reads, by prefix or name. Values that are
# secrets count only as present or absent.
_ENV_PREFIXES = ("AUDIOBOOK_", "AUDIOCLEANER_", "AWS_")
_ENV_NAMES = ("CI", "HOME", "XDG_CACHE_HOME", "PATH", "PYTHONPATH", "LANG", "LC_ALL", "LC_CTYPE",
              "TZ")
_SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD")
# Audit events after which a run is not a pure function of its files, or did
# more than look: it started a process, used the network, or changed a file.
_SPOILERS = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                       "os.fork", "socket.connect", "socket.getaddrinfo", "socket.gethostbyname",
                       "os.rename", "os.remove", "os.rmdir", "os.truncate", "os.link",
                       "os.symlink", "os.chmod", "os.utime", "shutil.move", "shutil.rmtree",
                       "sqlite3.connect"})
# Options after which no stamp is replayed: help, or output that must be live.
_LIVE = frozenset({"-h", "--help", "--version", "-v", "--verbose", "--"})


# ------------------------------------------------------------------ shared


def stamp_key(argv: list[str], cwd: str) -> str:
    env = []
    for name in sorted(os.environ):
        if name.startswith(_ENV_PREFIXES) or name in _ENV_NAMES:
            secret = any(word in name for word in _SECRET_WORDS)
            env.append([name, bool(os.environ[name].strip()) if secret else os.environ[name]])
    from pipeline import __version__

    spec = [FORMAT, __version__, sys.executable, sys.version, argv, cwd, env]
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:32]


def package_files() -> list[list[Any]]:
    """[path inside the package, size, mtime_ns] of each file of this package, sorted.

    The code's identity for the build stamp and for the plan memo (plan.py).
    """
    package = os.path.dirname(os.path.abspath(__file__))
    found: list[list[Any]] = []
    folders = [package]
    while folders:
        folder = folders.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name == "__pycache__":
                    continue
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                else:
                    s = entry.stat()
                    found.append([os.path.relpath(entry.path, package), s.st_size,
                                  s.st_mtime_ns])
    return sorted(found)


def code_state() -> list[Any]:
    """This package's files and the install folders on sys.path, by size and time."""
    found: list[Any] = package_files()
    for path in _libraries():
        try:
            found.append([path, _real_stat(path).st_mtime_ns])
        except OSError:
            found.append([path, None])
    return found


def _libraries() -> list[str]:
    """The folders on sys.path that belong to the Python install (stdlib, site-packages).

    Only those: sys.path[0] may be the book's own folder (`python -m`), and
    a venv made in the book's folder must not hide the book.
    """
    prefixes = {os.path.join(p, "") for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    found = []
    for path in sys.path:
        folder = os.path.join(os.path.abspath(path or "."), "")
        if any(folder.startswith(p) and folder != p for p in prefixes):  # inside, not the root
            found.append(folder.rstrip(os.sep))
    return found


def _digest(path: str) -> str:
    from pipeline.files import sha256_file  # only when a stat changed: not on the fast path

    return sha256_file(path)


def _names(path: str, stamps: str) -> str:
    """A digest of a folder's names; the stamps folder itself is not one of them
    (it may first appear after the run that recorded its cache folder)."""
    names = sorted(os.listdir(path))
    if path == os.path.dirname(stamps):
        names = [n for n in names if n != os.path.basename(stamps)]
    return hashlib.sha256("\0".join(names).encode()).hexdigest()


def _probe(path: str, follow: bool) -> list[Any]:
    """What is at path now, as a stamp entry's tail: absent, dir, link, file."""
    try:
        s = _real_stat(path) if follow else _real_lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return ["absent"]
    return _tail(path, s)


def _tail(path: str, s: os.stat_result) -> list[Any]:
    if st.S_ISLNK(s.st_mode):
        return ["link", os.readlink(path)]
    if st.S_ISDIR(s.st_mode):
        return ["dir"]
    if st.S_ISREG(s.st_mode):
        return ["file", s.st_size, s.st_mtime_ns]
    return ["other", st.S_IFMT(s.st_mode)]


def _signature(s: os.stat_result) -> list[int]:
    return [s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino, s.st_dev]


# ------------------------------------------------------------------ recording


class Recorder:
    """The paths one build run looked at, and what it printed (see the module doc)."""

    def __init__(self) -> None:
        self.read: dict[str, tuple[os.stat_result, int]] = {}  # path -> (stat, when) at first read
        self.probed: dict[tuple[str, bool], list[Any]] = {}  # (path, follow) -> what was there
        self.listed: dict[str, int | None] = {}  # folder -> its mtime when listed
        self.written: dict[str, list[Any]] = {}  # opened to write -> what was there before
        self.spoiled = ""
        self.lines: list[tuple[str, str]] = []  # ("out" | "err", text) in order
        # The look after a build that made things: it prints only here, and may
        # not write, start a process or use the network (the audit hook stops it
        # with LookOnly), so an edit saved during the build is never made or
        # paid for in silence.
        self.look_only = False

    def say(self, stream: str, text: str) -> None:
        self.lines.append((stream, text))

    def spoil(self, why: str) -> None:
        self.spoiled = self.spoiled or why

    def on_open(self, path: Any, mode: Any, flags: Any) -> bool:
        """Note an open; True when it is opened to write."""
        name = _name(path)
        if name is None:
            return False
        writing = isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR)
        if writing or isinstance(mode, str) and any(c in mode for c in "wax+"):
            if name not in self.written:
                self.written[name] = _probe(name, True)
            return True
        if name not in self.read:
            try:
                self.read[name] = (_real_stat(name), time.time_ns())
            except OSError:
                self.probed.setdefault((name, True), ["absent"])
        return False

    def on_list(self, path: Any) -> None:
        name = _name("." if path is None else path)
        if name is not None and name not in self.listed:
            try:
                self.listed[name] = _real_stat(name).st_mtime_ns
            except OSError:
                self.listed[name] = None

    def on_probe(self, path: Any, follow: bool, found: os.stat_result | None) -> None:
        name = _name(path)
        if name is not None and (name, follow) not in self.probed:
            self.probed[(name, follow)] = ["absent"] if found is None else _tail(name, found)

    def entries(self, exempt: tuple[str, ...], skip: tuple[str, ...], stamps: str
                ) -> list[Any] | None:
        """The stamp's paths, or None when this run cannot be vouched for."""
        if self.spoiled:
            return None
        now: list[Any] = []
        for name, (before, when) in self.read.items():
            if _under(name, skip) or f"{os.sep}__pycache__{os.sep}" in name:
                continue
            if not st.S_ISREG(before.st_mode):
                now.append([name, True, *_probe(name, True)])
                continue
            recent = max(before.st_mtime_ns, before.st_ctime_ns) > when - RACY_NS
            if recent and not _under(name, exempt):
                return None  # edited as it was read: an edit in the same tick would not show
            digest = _digest(name) if before.st_size <= HASH_LIMIT else None
            if _signature(_real_stat(name)) != _signature(before):
                return None  # changed during the build
            now.append([name, True, "read", *_signature(before), digest])
        for (name, follow), seen in self.probed.items():
            if _under(name, skip) or follow and name in self.read:
                continue  # a read file's entry holds its stat
            if _probe(name, follow) != seen:
                return None  # changed during the build
            if name in self.read and seen[0] == "file":
                seen = ["regular"]  # an lstat of a read file: not a link; its bytes are judged
            now.append([name, follow, *seen])
        for name, there in self.written.items():
            if _under(name, skip):
                continue
            if _probe(name, True) != there:
                return None  # written to: the run changed something (a lock file is not)
            now.append([name, True, *there])
        for name, mtime in self.listed.items():
            if _under(name, skip):
                continue
            try:
                if _real_stat(name).st_mtime_ns != mtime:
                    return None  # changed during the build
                now.append([name, True, "names", _names(name, stamps)])
            except OSError:
                return None
        return now


def _under(name: str, folders: tuple[str, ...]) -> bool:
    """name is one of folders (each ends in a separator) or inside one."""
    return (name + os.sep).startswith(folders)


def _name(path: Any) -> str | None:
    if isinstance(path, int) or path is None:
        return None  # an open file's handle: its path was noted when it was opened
    return os.path.abspath(os.fsdecode(path))


_real_stat = os.stat
_real_lstat = os.lstat
_active: Recorder | None = None
_hooked = False


class LookOnly(RuntimeError):
    """A look-only run (Recorder.look_only) tried to change something, and was stopped."""


def _audit(event: str, args: tuple) -> None:
    rec = _active
    if rec is None:
        return
    acts = False
    try:
        if event == "open":
            acts = rec.on_open(*args)
        elif event in ("os.listdir", "os.scandir"):
            rec.on_list(args[0])
        elif event in _SPOILERS:
            rec.spoil(event)
            acts = True
    except Exception:  # noqa: BLE001 - never let bookkeeping break the build
        rec.spoil(f"a path it could not note ({event})")
    if acts and rec.look_only:
        rec.spoil(event)
        raise LookOnly(f"a look-only build stopped before {event} {args[0]!r}")


def _stat(path: Any, *, dir_fd: Any = None, follow_symlinks: bool = True) -> os.stat_result:
    return _noted(path, dir_fd, follow_symlinks)


def _lstat(path: Any, *, dir_fd: Any = None) -> os.stat_result:
    return _noted(path, dir_fd, False)


def _noted(path: Any, dir_fd: Any, follow: bool) -> os.stat_result:
    rec = _active
    try:
        found = _real_stat(path, dir_fd=dir_fd, follow_symlinks=follow)
    except (FileNotFoundError, NotADirectoryError):
        if rec is not None and dir_fd is None:
            rec.on_probe(path, follow, None)
        raise
    except OSError:
        if rec is not None:
            rec.spoil("a path it could not stat")
        raise
    if rec is not None:
        if dir_fd is None:
            rec.on_probe(path, follow, found)
        else:
            rec.spoil("a path relative to a folder handle")
    return found


class recording:
    """`with recording() as rec:` notes what the block looks at (one at a time per process).

    With look_only, the block may only look (see Recorder.look_only).
    """

    def __init__(self, look_only: bool = False) -> None:
        self.look_only = look_only

    def __enter__(self) -> Recorder:
        global _active, _hooked
        if not _hooked:
            sys.addaudithook(_audit)  # cannot be removed; idle, it returns at once
            _hooked = True
        self.recorder = Recorder()
        self.recorder.look_only = self.look_only
        os.stat, os.lstat = _stat, _lstat
        _active = self.recorder
        return self.recorder

    def __exit__(self, *exc: object) -> None:
        global _active
        _active = None
        os.stat, os.lstat = _real_stat, _real_lstat


def prepare(argv: list[str]) -> tuple[str, str] | None:
    """(folder, key) of argv's stamp; None: no stamp for this run."""
    if not applies(argv):
        return None
    cwd = os.getcwd()
    try:
        folder = stamp_folder(argv, cwd)
    except Exception:  # noqa: BLE001 - a config the build will reject
        return None
    return None if folder is None else (folder, stamp_key(argv, cwd))


def write(folder: str, key: str, rec: Recorder, exempt: tuple[str, ...]) -> bool:
    """Keep rec as the stamp for key in folder; False when it cannot vouch for its run."""
    from pathlib import Path

    from pipeline.files import write_atomic

    package = os.path.dirname(os.path.abspath(__file__))
    skip = tuple(os.path.join(p, "") for p in (
        *_libraries(), folder, package, "/dev", "/proc", "/sys",
        *([sys.pycache_prefix] if sys.pycache_prefix else [])))
    entries = rec.entries(tuple(os.path.join(e, "") for e in exempt), skip, folder)
    if entries is None:
        return False
    data = {"format": FORMAT, "key": key, "written": time.time(), "code": code_state(),
            "paths": entries, "lines": rec.lines}
    os.makedirs(folder, exist_ok=True)
    write_atomic(Path(folder) / f"{key}.json", json.dumps(data).encode())
    return True


# ------------------------------------------------------------------ replaying


def applies(argv: list[str]) -> bool:
    """Whether a build stamp may stand for this command line at all."""
    return "build" in argv and not _LIVE.intersection(argv)


def replay(argv: list[str]) -> int | None:
    """Print what the stamped no-op build printed and return 0; None to build as usual."""
    try:
        if not applies(argv):
            return None
        cwd = os.getcwd()
        folder = stamp_folder(argv, cwd)
        if folder is None:
            return None
        key = stamp_key(argv, cwd)
        with open(os.path.join(folder, f"{key}.json"), "rb") as f:
            data = json.loads(f.read())
        if (data.get("format") != FORMAT or data.get("key") != key
                or not 0 <= time.time() - data["written"] < MAX_AGE_S
                or data["code"] != code_state()
                or not all(_holds(entry, folder) for entry in data["paths"])):
            return None
        lines = [(sys.stdout if stream == "out" else sys.stderr, text + "\n")
                 for stream, text in data["lines"]]
    except Exception:  # noqa: BLE001 - any doubt: build as usual
        return None
    try:
        for out, text in lines:
            out.write(text)
            out.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _holds(entry: list[Any], stamps: str) -> bool:
    name, follow, kind, *rest = entry
    if kind == "read":
        try:
            s = _real_stat(name)
        except OSError:
            return False
        if _signature(s) == rest[:5]:
            return True
        digest = rest[5]
        return digest is not None and s.st_size == rest[0] and _digest(name) == digest
    if kind == "regular":
        return _probe(name, follow)[0] == "file"
    if kind == "names":
        try:
            return _names(name, stamps) == rest[0]
        except OSError:
            return False
    return _probe(name, follow) == [kind, *rest]


def stamp_folder(argv: list[str], cwd: str) -> str | None:
    """Where the stamps of this command line are: the cache folder's stamps/.

    The cache folder is AUDIOBOOK_CACHE_DIR, else the config's cache.dir,
    else .audiobook-cache beside the config. A wrong answer here only misses.
    """
    env = os.environ.get("AUDIOBOOK_CACHE_DIR")
    if env:
        return os.path.join(os.path.abspath(os.path.expanduser(env)), FOLDER)
    config = _config_arg(argv)
    if config is None:
        return None
    config = os.path.realpath(os.path.join(cwd, config))
    with open(config, "rb") as f:
        text = f.read()
    where = ".audiobook-cache"
    if b"cache" in text:  # only then is yaml worth importing
        import yaml

        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        cache = data.get("cache") if isinstance(data, dict) else None
        value = cache.get("dir") if isinstance(cache, dict) else None
        if isinstance(value, str) and value.strip():
            where = os.path.expanduser(value.strip())
    return os.path.join(os.path.realpath(os.path.join(os.path.dirname(config), where)), FOLDER)


def _config_arg(argv: list[str]) -> str | None:
    """The -c/--config of argv as click would read it; None when unsure."""
    config = "audiobook.yml"
    tokens = iter(argv)
    for token in tokens:
        if token in ("-c", "--config"):
            config = next(tokens, "")
        elif token.startswith("--config="):
            config = token[len("--config="):]
        elif token.startswith("-c"):
            config = token[2:]
        elif token.startswith("-") and not token.startswith("--") and len(token) > 2 \
                and not token.startswith("-j"):
            return None  # bundled short options: leave them to click
    return config or None
