"""What both tiers of the segment store agree on (cache.py, remote_cache.py).

The size cap of one entry, and when a lease on a segment is still alive:
its holder's ttl has not passed and, for a holder on this host, its
process still runs.
"""

from __future__ import annotations

import os
import socket
import time

MAX_ENTRY_BYTES = 256 * 2**20


def lease_alive(info: dict) -> bool:
    return not expired(info) and not _holder_gone(info)


def expired(info: dict) -> bool:
    try:
        return time.time() > float(info["time"]) + float(info["ttl_s"])
    except (KeyError, TypeError, ValueError):
        return True


def _holder_gone(info: dict) -> bool:
    if info.get("host") != socket.gethostname() or not isinstance(info.get("pid"), int):
        return False  # another machine's process: only its ttl can tell
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


def is_mine(info: dict) -> bool:
    return info.get("pid") == os.getpid() and info.get("host") == socket.gethostname()
