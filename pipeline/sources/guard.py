"""Bounded input: a source is a regular file under a size cap, or a clear error.

A chapter source named in audiobook.yml may be a symlink to /dev/zero, a
FIFO, or a 400 MB log file. Each would hang a reader or eat memory; each is
refused here, from `os.stat`, before the file is opened. The file is then
opened with O_NONBLOCK (a FIFO swapped in after the check cannot block us)
and its type checked again on the open descriptor, and never more than the
cap plus one byte is read.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from pipeline.errors import InputError, Problem

# A long novel in Markdown is 1-2 MB; 20 MiB is ten of them.
MAX_MARKDOWN_BYTES = 20 * 2**20


def _fail(display: str, message: str) -> InputError:
    return InputError(Problem(display, None, None, message))


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular(path: Path, display: str, max_bytes: int, what: str) -> int:
    """The size of `path` if it is a regular file within `max_bytes`; else an InputError.

    `what` names the expected content in the message ("a Markdown file").
    Symlinks are followed: the file they reach is what is checked.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise _fail(display, "file not found") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _fail(display, "is a symlink loop; point it at " + what) from None
        raise _fail(display, f"cannot read: {exc.strerror}") from None
    return _checked(info, display, max_bytes, what)


def _checked(info: os.stat_result, display: str, max_bytes: int, what: str) -> int:
    if stat.S_ISDIR(info.st_mode):
        raise _fail(display, f"is a folder; name {what}")
    if not stat.S_ISREG(info.st_mode):
        raise _fail(display, f"is {_kind(info.st_mode)}, not a file; name {what}")
    if info.st_size > max_bytes:
        raise _fail(display, f"is {_mib(info.st_size)}; the most a source may be is "
                             f"{_mib(max_bytes)}: split it into several chapters")
    return info.st_size


def read_capped(path: Path, display: str, max_bytes: int, what: str) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (see the module)."""
    check_regular(path, display, max_bytes, what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except IsADirectoryError:
        raise _fail(display, f"is a folder; name {what}") from None
    except OSError as exc:
        raise _fail(display, f"cannot read: {exc.strerror}") from None
    try:
        # The path may have been swapped between stat and open: check what is open.
        _checked(os.fstat(fd), display, max_bytes, what)
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(2**20, max_bytes + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:  # it grew after the check
                raise _fail(display, f"is over {_mib(max_bytes)}; split it into several chapters")
    except OSError as exc:
        raise _fail(display, f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size} bytes"
