"""When the Audio Cleaner client tries again, polls, and how many tasks it keeps in flight.

Retrying and polling are kept apart (as Google's api-core does): a retry
answers a request that failed; a poll asks about a task that is fine but not
done. The one function that decides what is retried is retry_delay.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.errors import AudioCleanerError, InputError, Problem, ThrottledError

RETRIES_ENV = "AUDIOBOOK_HTTP_RETRIES"
SERVICE_DEADLINE_ENV = "AUDIOBOOK_SERVICE_DEADLINE"
# Three hours: a healthy service makes even a long book well within it, and a
# build that ends on its own then leaves time, before a CI runner's usual 6 h
# limit, for the poll deadline of the tasks already paid for (docs/audiocleaner.md).
SERVICE_DEADLINE = 3 * 3600.0
# A create whose answer was lost may have been paid: it is sent again at most
# this many times per segment per build.
LOST_CREATE_RETRIES = 1


def _retries_from_env() -> int:
    """AUDIOBOOK_HTTP_RETRIES, else 8: retries of one failed request (not of throttling)."""
    value = os.environ.get(RETRIES_ENV, "").strip()
    return int(value) if value.isdigit() else 8


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed request is tried again, and after how long."""

    max_retries: int = field(default_factory=_retries_from_env)  # 5xx, transport, bad output
    throttle_retries: int = 30  # 101003 / 101004 answers
    base: float = 0.5
    cap: float = 8.0
    max_retry_after: float = 120.0


def retry_delay(policy: RetryPolicy, error: BaseException, attempt: int,
                rng: random.Random | None = None) -> float | None:
    """Seconds to wait before trying again after `attempt` failures, or None.

    The one place that decides what is retryable. Backoff doubles from
    `base` up to `cap`, less up to 25% jitter so clients spread out; a
    server's Retry-After wins (bounded).
    """
    if not isinstance(error, AudioCleanerError) or not error.retryable:
        return None
    budget = policy.throttle_retries if isinstance(error, ThrottledError) else policy.max_retries
    if attempt >= budget:
        return None
    if error.retry_after is not None:
        return min(max(0.0, error.retry_after), policy.max_retry_after)
    backoff = min(policy.base * 2 ** min(attempt, 30), policy.cap)
    return backoff * (1 - 0.25 * (rng or random).random())


@dataclass(frozen=True)
class PollPolicy:
    """How often a task is asked about (polling is not retrying)."""

    first: float = 0.25  # first poll, before any task duration is learned
    factor: float = 1.5
    cap: float = 10.0
    deadline: float = 1800.0  # seconds one task may wait before the build gives up
    unknown_status_limit: int = 5  # unknown statuses tolerated before failing


class DurationEstimate:
    """How long tasks take, learned from the ones that finished.

    A task's first poll goes out a little before the shortest recent
    duration, then polls come at short, growing steps. Polling a little early
    costs a request; polling late costs the slot's idle time. Polling early
    is also what lets the estimate come down when the service speeds up: it
    is the smallest duration observed, and a poll made late observes nothing
    shorter than itself.
    """

    def __init__(self, policy: PollPolicy):
        self.policy = policy
        self._recent: deque[float] = deque(maxlen=32)

    def add(self, seconds: float) -> None:
        self._recent.append(seconds)

    def first_poll(self) -> float:
        return 0.9 * min(self._recent) if self._recent else self.policy.first

    def next_interval(self, previous: float | None) -> float:
        if previous is None:
            return max(0.01, 0.05 * min(self._recent)) if self._recent else self.policy.first
        return min(previous * self.policy.factor, self.policy.cap)


class AdaptiveWindow:
    """Tasks in flight: at most `ceiling`, shrunk to the service's limit (AIMD)."""

    def __init__(self, ceiling: int):
        self.ceiling = max(1, ceiling)
        self.size = float(self.ceiling)
        self.active = 0  # slots held: tasks being created or polled
        self.confirmed = 0  # of those, tasks the service accepted and has not finished
        self._changed = asyncio.Condition()

    async def acquire(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.active < int(self.size))
            self.active += 1

    async def release(self) -> None:
        async with self._changed:
            self.active -= 1
            self._changed.notify_all()

    def accepted(self) -> None:
        """A create went through: probe one task higher, slowly, if the window is full."""
        if self.active >= int(self.size):
            self.size = min(float(self.ceiling), self.size + 1 / self.size)

    def concurrency_refused(self) -> None:
        # The tasks the service holds for us are exactly what it allows us.
        self.size = max(1.0, float(self.confirmed))

    def rate_refused(self) -> None:
        self.size = max(1.0, self.size / 2)


def service_deadline(given: float | None = None) -> float:
    """Seconds a build may start creates: --service-deadline, else AUDIOBOOK_SERVICE_DEADLINE,
    else SERVICE_DEADLINE. A bad variable is refused rather than ignored: it was set for a bound."""
    if given is not None:
        return given
    value = os.environ.get(SERVICE_DEADLINE_ENV, "").strip()
    if not value:
        return SERVICE_DEADLINE
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise InputError(Problem(SERVICE_DEADLINE_ENV, None, None,
                                 f"{value!r} is not a number of seconds (0 or more); unset it "
                                 f"for the default {SERVICE_DEADLINE:g}"))
    return seconds


class ServiceLimits:
    """What one build allows its creates, across its synthesis passes.

    A build makes a second pass only for audio that left the cache during
    it; the deadline and each segment's lost create answers carry over, so
    the limits hold per build. The deadline counts from the first pass's
    start: planning is not the service's time.
    """

    def __init__(self, deadline: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.given = deadline
        self.clock = clock
        self.deadline: float | None = None  # seconds, once started
        self.ends_at: float | None = None
        self.lost: Counter[str] = Counter()  # create answers lost, per segment key

    def start(self) -> None:
        if self.ends_at is None:
            self.deadline = service_deadline(self.given)
            self.ends_at = self.clock() + self.deadline

    def passed(self) -> bool:
        """Whether the service deadline has passed: no new create may start."""
        return self.ends_at is not None and self.clock() >= self.ends_at
