"""What the Audio Cleaner client needs from the segment cache: the task journal and its lease.

The segment cache (pipeline/cache.py) is the journal builds use; MemoryJournal
serves callers without one (`say`) and tests.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Journal(Protocol):
    """What the client needs from the segment cache to pay once per segment."""

    def pending(self, key: str) -> dict | None: ...

    def set_pending(self, key: str, info: dict) -> None: ...

    def drop_pending(self, key: str) -> None: ...

    def __contains__(self, key: str) -> bool:
        """Whether the segment's audio is stored (another build may have made it)."""
        ...


class LeasingJournal(Journal, Protocol):
    """A journal several builds share: a per-segment lease decides who pays.

    lease() returns None when the caller now holds the lease, else the
    holder's info (with `job_id` and `base_url` once its task exists).
    Expired leases are taken over. The client uses these when present, and
    three optional methods when the journal has them (the segment cache does):
    `took_over(key) -> dict | None`, the dead holder's info when the last
    lease() took over its lease (a job id in it is a task to adopt), and
    `leases_lost() -> int`, leases this process held that another build took,
    and `mark_creating(key)`, which says in our lease that we are about to pay.
    """

    def lease(self, key: str, holder: dict, ttl_s: float) -> dict | None: ...

    def release(self, key: str) -> None: ...


class MemoryJournal:
    """A journal for callers without a cache (one-off `say`): no resume across processes.

    Its lease is real within the process (threads share it), so tests can run
    two clients on one journal.
    """

    def __init__(self) -> None:
        self._entries: dict[str, dict] = {}
        self._leases: dict[str, tuple[float, dict]] = {}
        self._lock = threading.Lock()

    def pending(self, key: str) -> dict | None:
        return self._entries.get(key)

    def set_pending(self, key: str, info: dict) -> None:
        with self._lock:
            self._entries[key] = info
            if key in self._leases:
                self._leases[key][1].update(info)

    def drop_pending(self, key: str) -> None:
        self._entries.pop(key, None)

    def pending_keys(self) -> set[str]:
        return set(self._entries)

    def __contains__(self, key: str) -> bool:
        return False  # it stores no audio

    def lease(self, key: str, holder: dict, ttl_s: float) -> dict | None:
        now = time.monotonic()
        with self._lock:
            current = self._leases.get(key)
            if current and current[0] > now and current[1].get("holder") != holder.get("holder"):
                return dict(current[1])
            self._leases[key] = (now + ttl_s, dict(holder))
            return None

    def release(self, key: str) -> None:
        with self._lock:
            self._leases.pop(key, None)
