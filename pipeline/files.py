"""Files we write: the one place that knows every temporary name.

Every file we write is first a fresh temporary file in its target folder
(tempfile.mkstemp: O_EXCL and a random name, so a planted symlink can never
be written through), then `os.replace`d into place. ffmpeg is only ever
handed such a name, because its `-y` follows symlinks. Every temporary name
has the form `.<what>.tmp-<pid>-<random><suffix>`, so `remove_leftovers` can
tell a dead process's litter from a running build's files.

Removing is stricter still: `remove_owned` deletes only a regular file
inside the output folder, reached through no symlink, whose bytes hash to
what our manifest recorded.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import OutputWriteError
from pipeline.ledger import sha256_file  # noqa: F401 - the one file hash, for callers here

log = logging.getLogger("pipeline")

# One pattern for every temporary name we make (see temp_path), plus the
# names older versions made: `.X.tmp-PID`, `.X.tmp-PID.ffmeta`,
# `.stitch-PID-*.raw` and `.cover-PID.png`.
_LEFTOVER = re.compile(r"^\.(?:.+\.tmp-(\d+)(?:[-.].*)?|stitch-(\d+)-.+\.raw|cover-(\d+)\.\w+)$")


def _umask() -> int:
    # os.umask can only be read by setting it; done once, at import, before any threads.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # mkstemp makes 0600; outputs get the usual mode


def temp_path(directory: Path, what: str, suffix: str = "") -> Path:
    """A new, empty, exclusively created file in directory, named as ours."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{what}.tmp-{os.getpid()}-", suffix=suffix,
                                    dir=directory)
    except OSError as exc:
        raise os_error(exc, directory) from exc
    os.close(fd)
    return Path(name)


@contextmanager
def temporary(directory: Path, what: str, suffix: str = "") -> Iterator[Path]:
    """temp_path, removed when the block ends however it ends."""
    path = temp_path(directory, what, suffix)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary name to write `path` through; renamed into place if the block succeeds."""
    tmp = temp_path(path.parent, path.name, path.suffix)
    try:
        yield tmp
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)  # replaces a symlink at path, never writes through it
    except OSError as exc:
        raise os_error(exc, path) from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> bool:
    """Write bytes atomically; skip (and return False) when already identical."""
    if not path.is_symlink() and path.is_file() and path.read_bytes() == data:
        return False
    with atomic_output(path) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as exc:
            raise os_error(exc, path) from exc
    return True


def remove_leftovers(directory: Path) -> list[Path]:
    """Delete temporary files (or planted links by those names) that dead processes left.

    A live process's files are kept: another build may still be writing them.
    """
    removed: list[Path] = []
    if directory.is_symlink() or not directory.is_dir():
        return removed
    for path in directory.iterdir():
        match = _LEFTOVER.match(path.name)
        if not match or path.is_dir() and not path.is_symlink():
            continue
        pid = int(next(g for g in match.groups() if g))
        if not _process_alive(pid):
            path.unlink(missing_ok=True)  # unlink removes a link, never its target
            removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # not ours to signal: assume alive
        return True
    return True


def inside(root: Path, name: str) -> Path | None:
    """root/name if name stays inside root through no symlink, else None.

    root itself may be a link (the user chose it); nothing below it may be.
    """
    if not isinstance(name, str) or not name or "\0" in name:
        return None
    rel = Path(name)
    if rel.is_absolute() or any(part in ("..", ".", "") for part in rel.parts):
        return None
    path = root
    for part in rel.parts:
        path = path / part
        if path.is_symlink():
            return None
    return path


def safe_folder(root: Path, name: str) -> Path:
    """root/name as a real folder (made if missing); a link or a file there is refused."""
    path = inside(root, name)
    if path is None or path.exists() and not path.is_dir():
        raise OutputWriteError(f"{root / name}: is a link or a file where the build keeps a folder; "
                          "remove it and build again")
    try:
        path.mkdir(exist_ok=True)
    except OSError as exc:
        raise os_error(exc, path) from exc
    return path


def remove_owned(root: Path, name: str, sha256: str | None) -> bool:
    """Delete root/name only if it is a regular file inside root whose bytes we wrote."""
    path = inside(root, name)
    if path is None:
        log.warning("not removing %s: it leaves the output folder or passes through a link",
                    name)
        return False
    if not path.exists():
        return False
    if not path.is_file() or not sha256 or sha256_file(path) != sha256:
        log.warning("not removing %s: it is not the file this book wrote (changed since?)", path)
        return False
    path.unlink()
    return True


def os_error(exc: OSError, path: Path) -> OutputWriteError:
    """An OSError as a message naming the path and what to do."""
    if isinstance(exc, OutputWriteError):
        return exc
    reasons = {
        errno.ENOSPC: "the disk is full; free some space and build again",
        errno.EDQUOT: "the disk quota is used up; free some space and build again",
        errno.EACCES: "permission denied; make it writable or choose another output.dir",
        errno.EPERM: "permission denied; make it writable or choose another output.dir",
        errno.EROFS: "the file system is read-only; choose another output.dir",
        errno.ENOTDIR: "a file stands where a folder should be; fix output.dir",
        errno.EEXIST: "a file stands where a folder should be; fix output.dir",
    }
    reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
    return OutputWriteError(f"cannot write {path}: {reason}")
