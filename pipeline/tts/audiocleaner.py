"""The Audio Cleaner TTS client: create a task, poll it, download its output.

What the guide leaves open is handled defensively (see docs/audiocleaner.md):
HTTP statuses, non-JSON bodies and unknown codes become typed errors that keep
the raw code and message; the output's format is read from its bytes; the
output host never sees the api-key.

Paying once per segment rests on the task journal (the segment cache): a
created task's id is written there before it is polled, so a build killed at
any point polls that task again instead of paying for a new one.

Concurrency is a window of tasks in flight, at most --jobs, that shrinks to
what the service accepts when it answers 101004 or 101003 and creeps back up
(additive increase, multiplicative decrease), so a build runs at the
service's own limit instead of hammering it.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from pipeline.errors import EXIT_BUDGET, EXIT_INPUT, AudiobookError, BudgetError, ServiceError
from pipeline.segment import credits_for
from pipeline.tts.base import Audio, OnResult, SynthesisRequest
from pipeline.tts.base import detect_format as sniff_format

log = logging.getLogger("pipeline.audiocleaner")

CREATE_PATH = "/audio/api/v1/api-keys/tts/task/create"
GET_PATH = "/audio/api/v1/api-keys/tts/task/get"
KEY_ENV = "AUDIOCLEANER_API_KEY"
OK = 100000

# Statuses seen across the vendor's products that mean "not done yet", and
# the one product's word for failure. Anything else is unknown.
WAITING_STATUSES = {"waiting", "queued", "pending", "processing", "running"}
FAILED_STATUSES = {"failed", "error"}


DEFAULT_BASE_URL = "https://audiocleaner.ai"


def base_url() -> str:
    """The Audio Cleaner API host: AUDIOCLEANER_BASE_URL, else the vendor's."""
    return (os.environ.get("AUDIOCLEANER_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def identity_of(url: str) -> str:
    """The cache-key identity of the service at url: emulator audio never stands in for real."""
    return f"audiocleaner:{url.rstrip('/')}"



# ------------------------------------------------------------------ errors


class AudioCleanerError(ServiceError):
    """Any failure talking to Audio Cleaner; keeps the raw code and message."""

    retryable = False

    def __init__(self, message: str, *, code: int | str | None = None,
                 raw_message: str | None = None, http_status: int | None = None,
                 job_id: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.raw_message = raw_message
        self.http_status = http_status
        self.job_id = job_id
        self.retry_after = retry_after


class MissingKeyError(AudiobookError):
    exit_code = EXIT_INPUT


class AuthError(AudioCleanerError):
    """101002, 101005, 101006: the key is wrong, suspended or not enabled."""


class CreditError(AudioCleanerError, BudgetError):
    """100100: the account lacks credit."""

    exit_code = EXIT_BUDGET


class ThrottledError(AudioCleanerError):
    retryable = True


class RateLimitError(ThrottledError):
    """101003."""


class ConcurrencyLimitError(ThrottledError):
    """101004."""


class TaskNotFoundError(AudioCleanerError):
    """101008: an unknown, expired or another key's job id."""


class ParameterError(AudioCleanerError):
    """100002 (not in the TTS guide; the vendor's web endpoints use it)."""


class RetryLaterError(AudioCleanerError):
    """100099 (the vendor's web endpoints' "needs retry")."""

    retryable = True


class ServerError(AudioCleanerError):
    """An HTTP 5xx answer: the request did not take effect."""

    retryable = True


class TransportError(AudioCleanerError):
    """No answer: refused, dropped, timed out. May have taken effect if sent."""

    retryable = True

    def __init__(self, message: str, *, maybe_took_effect: bool, **kw):
        super().__init__(message, **kw)
        self.maybe_took_effect = maybe_took_effect


class RequestTimeoutError(TransportError):
    pass


class UnexpectedResponseError(AudioCleanerError):
    """An unknown code, a non-JSON body, an HTTP error or an unknown task status."""


class TaskFailedError(AudioCleanerError):
    """A task ended `failed` more times than we retry."""


class PollDeadlineError(AudioCleanerError):
    """A task was still waiting at the polling deadline; it stays journaled."""


class OutputError(AudioCleanerError):
    """The output file could not be fetched or is not audio."""

    retryable = True


_AUTH_HINTS = {
    101002: "the API key was rejected; check AUDIOCLEANER_API_KEY",
    101005: "the account is suspended; contact Audio Cleaner",
    101006: "the API key is not enabled yet; enable it in the Audio Cleaner console",
}


def error_for_code(code: Any, message: str, http_status: int | None,
                   retry_after: float | None) -> AudioCleanerError:
    """The typed error for a body code other than success."""
    raw = f"(code {code}: {message})"
    kw = {"code": code, "raw_message": message, "http_status": http_status,
          "retry_after": retry_after}
    if code in _AUTH_HINTS:
        return AuthError(f"Audio Cleaner: {_AUTH_HINTS[code]} {raw}", **kw)
    if code == 100100:
        return CreditError(f"Audio Cleaner: insufficient credit balance {raw}", **kw)
    if code == 101003:
        return RateLimitError(f"Audio Cleaner: rate limit {raw}", **kw)
    if code == 101004:
        return ConcurrencyLimitError(f"Audio Cleaner: concurrency limit {raw}", **kw)
    if code == 101008:
        return TaskNotFoundError(f"Audio Cleaner: task not found {raw}", **kw)
    if code == 100002:
        return ParameterError(f"Audio Cleaner refused the request's parameters {raw}", **kw)
    if code == 100099:
        return RetryLaterError(f"Audio Cleaner asked to retry {raw}", **kw)
    return UnexpectedResponseError(f"Audio Cleaner answered an unknown code {raw}", **kw)


# ------------------------------------------------------------------ policies


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed request is tried again, and after how long."""

    max_retries: int = 8  # faults: 5xx, transport, bad output
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


# ------------------------------------------------------------------ the journal


class MemoryJournal:
    """A journal for callers without a cache (one-off `say`): no resume."""

    def __init__(self) -> None:
        self._entries: dict[str, dict] = {}

    def pending(self, key: str) -> dict | None:
        return self._entries.get(key)

    def set_pending(self, key: str, info: dict) -> None:
        self._entries[key] = info

    def drop_pending(self, key: str) -> None:
        self._entries.pop(key, None)

    def pending_keys(self) -> set[str]:
        return set(self._entries)


# ------------------------------------------------------------------ the client


class _Stop(Exception):
    """Another task failed the build: stop before paying for anything more."""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:  # the other form the header may take: an HTTP date
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class AudioCleanerBackend:
    name = "audiocleaner"

    def __init__(self, api_key: str, base: str | None = None, *, journal=None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 retry: RetryPolicy | None = None, poll: PollPolicy | None = None,
                 task_retries: int = 8, timeout: float = 30.0):
        if not api_key:
            raise MissingKeyError(f"{KEY_ENV} is empty")
        self._key = api_key
        self.base_url = (base or base_url()).rstrip("/")
        self.journal = journal if journal is not None else MemoryJournal()
        self.transport = transport
        self.retry = retry or RetryPolicy()
        self.poll = poll or PollPolicy()
        self.task_retries = task_retries
        self.timeout = timeout
        self.durations = DurationEstimate(self.poll)
        self.rng = random.Random()
        self.counters = dict.fromkeys(
            ("tasks_created", "tasks_resumed", "tasks_failed_retried", "retries", "throttled",
             "create_retries_that_may_have_taken_effect", "polls", "downloads"), 0)
        self._window_size: float | None = None
        _warn_if_plaintext(self.base_url)

    @classmethod
    def from_environment(cls, genders: Any = None, journal=None, **options) -> AudioCleanerBackend:
        """The key from AUDIOCLEANER_API_KEY (never from a file), the host from base_url()."""
        key = os.environ.get(KEY_ENV, "").strip()
        if not key:
            raise MissingKeyError(
                f"{KEY_ENV} is not set: the audiocleaner backend needs your Audio Cleaner API "
                f"key in that environment variable (never in audiobook.yml), or build with "
                f"--backend local")
        return cls(key, journal=journal, **options)

    def __repr__(self) -> str:
        return f"AudioCleanerBackend({self.base_url!r})"

    def identity(self) -> str:
        return identity_of(self.base_url)

    def stats(self) -> dict:
        out = dict(self.counters)
        if self._window_size is not None:
            out["concurrency_window"] = round(self._window_size, 2)
        return out

    def close(self) -> None:
        pass  # clients live only inside synthesize_all

    def _scrub(self, text: str) -> str:
        """Text from outside may echo what we sent: never let the key through."""
        return text.replace(self._key, "[api-key]") if text else text

    # -- the entry point ---------------------------------------------------
    def synthesize_all(self, requests: Sequence[SynthesisRequest], jobs: int,
                       on_result: OnResult) -> None:
        if requests:
            asyncio.run(_Run(self, requests, max(1, jobs), on_result).main())


class _Run:
    """One synthesize_all call: its HTTP clients, window, and the first failure."""

    def __init__(self, backend: AudioCleanerBackend, requests: Sequence[SynthesisRequest],
                 jobs: int, on_result: OnResult):
        self.b = backend
        self.requests = list(requests)
        self.jobs = jobs
        self.on_result = on_result
        self.done: set[str] = set()
        self.failure: BaseException | None = None
        self.window = AdaptiveWindow(jobs)

    # -- orchestration -----------------------------------------------------
    async def main(self) -> None:
        limits = httpx.Limits(max_connections=self.jobs + 8, max_keepalive_connections=self.jobs + 8)
        timeout = httpx.Timeout(self.b.timeout, pool=None)
        # Two clients: only the API client carries the key, and it never
        # follows redirects (httpx would carry a custom header to another host).
        self.api = httpx.AsyncClient(base_url=self.b.base_url, transport=self.b.transport,
                                     headers={"api-key": self.b._key}, timeout=timeout,
                                     limits=limits, follow_redirects=False)
        self.files = httpx.AsyncClient(transport=self.b.transport, timeout=timeout, limits=limits,
                                       follow_redirects=True)
        self.finishing: set[asyncio.Task] = set()
        try:
            queue = iter(self._ordered())
            await asyncio.gather(*(self._worker(queue) for _ in range(self.jobs)))
            while self.finishing:
                await asyncio.gather(*list(self.finishing))
        finally:
            self.b._window_size = self.window.size
            await self.api.aclose()
            await self.files.aclose()
        if self.failure is not None:
            raise self._final(self.failure)

    def _ordered(self) -> list[SynthesisRequest]:
        """Tasks already paid for first: they free the service's slots soonest."""
        journaled = [r for r in self.requests if self._journaled(r)]
        return journaled + [r for r in self.requests if not self._journaled(r)]

    def _journaled(self, request: SynthesisRequest) -> str | None:
        info = self.b.journal.pending(request.key)
        if isinstance(info, dict) and info.get("base_url") == self.b.base_url:
            return info.get("job_id")
        return None

    async def _worker(self, queue) -> None:
        for request in queue:
            if self.failure is not None:
                return
            try:
                await self._one(request)
            except _Stop:
                return
            except Exception as exc:  # noqa: BLE001 - the first failure stops the build
                self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        else:
            log.debug("also failed: %s", exc)

    def _final(self, exc: BaseException) -> BaseException:
        if isinstance(exc, CreditError):
            left = [r for r in self.requests if r.key not in self.done]
            need = sum(credits_for(len(r.text)) for r in left)
            exc.args = (f"{exc} ; the rest of this build needs {need} credit(s) for {len(left)} "
                        f"segment(s): top up and build again (audio already made is kept)",)
        return exc

    # -- one segment -------------------------------------------------------
    async def _one(self, request: SynthesisRequest) -> None:
        """Make one segment's audio: resume its task or create one, retrying failures."""
        failures = 0
        while True:
            job_id = self._journaled(request)
            resumed = job_id is not None
            await self.window.acquire()
            held = False
            try:
                if resumed:
                    self.b.counters["tasks_resumed"] += 1
                    log.debug("resuming task %s for %s", job_id, request.label)
                else:
                    job_id = await self._create(request)
                self.window.confirmed += 1
                held = True
                output = await self._wait(job_id, request, resumed)
            finally:
                self.window.confirmed -= held
                await self.window.release()
            if output is not None:
                break
            failures += 1
            self.b.journal.drop_pending(request.key)
            if failures > self.b.task_retries:
                raise TaskFailedError(
                    f"Audio Cleaner failed to synthesize {request.label} {failures} times "
                    f"(last task {job_id}); check that segment's text and build again",
                    job_id=job_id)
            self.b.counters["tasks_failed_retried"] += 1
            log.info("task %s for %s failed; trying again", job_id, request.label)
        self._spawn(self._finish(request, job_id, output))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.finishing.add(task)
        task.add_done_callback(self.finishing.discard)

    async def _create(self, request: SynthesisRequest) -> str:
        voice = request.voice
        body = {"voice_id": voice.voice, "emotion": voice.emotion, "speed": voice.speed,
                "language": voice.language, "text": request.text}
        data = await self._call(CREATE_PATH, body, creating=True)
        job_id = data.get("job_id") if isinstance(data, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise UnexpectedResponseError(f"Audio Cleaner's create answer has no job_id: "
                                          f"{self.b._scrub(str(data))[:200]}")
        # Durable before the first poll: a build killed from here on polls
        # this task again instead of paying for another.
        self.b.journal.set_pending(request.key, {
            "job_id": job_id, "base_url": self.b.base_url, "created_at": time.time(),
            "credits": credits_for(len(request.text))})
        self.b.counters["tasks_created"] += 1
        self.window.accepted()
        log.debug("created task %s for %s", job_id, request.label)
        return job_id

    # -- requests with retries ---------------------------------------------
    async def _call(self, path: str, body: dict, creating: bool = False) -> Any:
        """POST to the API, retried per retry_delay; the answer's `data`."""
        attempt = 0
        while True:
            if creating and self.failure is not None:
                raise _Stop()
            try:
                return await self._post(path, body)
            except AudioCleanerError as exc:
                delay = retry_delay(self.b.retry, exc, attempt, self.b.rng)
                if delay is None:
                    raise
                attempt += 1
                await self._before_retry(exc, delay, creating)

    async def _before_retry(self, exc: AudioCleanerError, delay: float, creating: bool) -> None:
        counters = self.b.counters
        if isinstance(exc, ThrottledError):
            counters["throttled"] += 1
            if isinstance(exc, ConcurrencyLimitError) and creating:
                await self._yield_slot(delay)
                return
            self.window.rate_refused()
        else:
            counters["retries"] += 1
            if creating and getattr(exc, "maybe_took_effect", False):
                counters["create_retries_that_may_have_taken_effect"] += 1
                log.warning("a create request may have reached Audio Cleaner before the "
                            "connection failed; retrying it may pay twice")
        log.debug("retrying in %.2fs after: %s", delay, exc)
        await asyncio.sleep(delay)

    async def _yield_slot(self, delay: float) -> None:
        """After 101004: wait for one of our own tasks to end, else back off."""
        self.window.concurrency_refused()
        if self.window.confirmed == 0:
            await asyncio.sleep(delay)  # the key is busy elsewhere: back off
            return
        await self.window.release()
        try:
            await self.window.acquire()
        except BaseException:
            self.window.active += 1  # keep the caller's release balanced
            raise

    async def _post(self, path: str, body: dict) -> Any:
        try:
            response = await self.api.post(path, json=body)
        except httpx.TimeoutException as exc:
            sent = not isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
            raise RequestTimeoutError(f"Audio Cleaner did not answer in time ({type(exc).__name__})",
                                      maybe_took_effect=sent) from None
        except httpx.TransportError as exc:
            sent = not isinstance(exc, httpx.ConnectError)
            raise TransportError(f"cannot reach Audio Cleaner at {self.b.base_url}: "
                                 f"{self.b._scrub(str(exc)) or type(exc).__name__}",
                                 maybe_took_effect=sent) from None
        return self._parse(response)

    def _parse(self, response: httpx.Response) -> Any:
        """The answer's data, or the typed error its HTTP status or code means."""
        status, after = response.status_code, _retry_after(response)
        snippet = self.b._scrub(response.text[:200])
        if status >= 500 or status in (408, 429):
            kind = ThrottledError if status == 429 else ServerError
            raise kind(f"Audio Cleaner answered HTTP {status}: {snippet}", http_status=status,
                       raw_message=snippet, retry_after=after)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or "code" not in payload:
            raise UnexpectedResponseError(
                f"Audio Cleaner answered HTTP {status} without a JSON code: {snippet!r}",
                http_status=status, raw_message=snippet)
        code, message = payload.get("code"), self.b._scrub(str(payload.get("message", "")))
        if code == OK and status < 300:
            return payload.get("data") or {}
        if code == OK:
            raise UnexpectedResponseError(f"Audio Cleaner answered HTTP {status} with code "
                                          f"{code}: {message}", code=code, http_status=status)
        raise error_for_code(code, message, status, after)

    # -- polling -----------------------------------------------------------
    async def _wait(self, job_id: str, request: SynthesisRequest, resumed: bool) -> str | None:
        """Poll until the task ends: its output URL, or None when it failed."""
        started = time.monotonic()
        interval: float | None = None
        unknown = 0
        await asyncio.sleep(0 if resumed else self.b.durations.first_poll())
        while True:
            try:
                data = await self._call(GET_PATH, {"global_id": job_id})
            except TaskNotFoundError as exc:
                if resumed:
                    # Expired, or made with another key: it cannot be had now.
                    log.warning("journaled task %s for %s is gone (%s); creating a new one",
                                job_id, request.label, exc.raw_message)
                    return None
                # A task we just created: the service may not know it everywhere yet.
                data = {"status": "not found"}
            self.b.counters["polls"] += 1
            status = str(data.get("status", "")).lower() if isinstance(data, dict) else ""
            output = data.get("output") if isinstance(data, dict) else None
            if status == "success" and isinstance(output, str) and output:
                if not resumed:
                    self.b.durations.add(time.monotonic() - started)
                return output
            if status in FAILED_STATUSES:
                return None
            if status not in WAITING_STATUSES:
                # Unknown, or success without an output yet: not success, and bounded.
                unknown += 1
                if unknown > self.b.poll.unknown_status_limit:
                    raise UnexpectedResponseError(
                        f"Audio Cleaner task {job_id} for {request.label} reports status "
                        f"{status!r} with output {output!r}; not a status we know",
                        job_id=job_id, raw_message=status)
            interval = self.b.durations.next_interval(interval)
            if time.monotonic() - started + interval > self.b.poll.deadline:
                raise PollDeadlineError(
                    f"Audio Cleaner task {job_id} for {request.label} was still {status!r} "
                    f"after {self.b.poll.deadline:.0f}s; build again later to resume it "
                    f"(it is paid for and journaled)", job_id=job_id)
            await asyncio.sleep(interval)

    # -- the output --------------------------------------------------------
    async def _finish(self, request: SynthesisRequest, job_id: str, url: str) -> None:
        try:
            data, fmt = await self._download(url, job_id)
            self.on_result(request, Audio(data, fmt, credits_for(len(request.text))))
            self.done.add(request.key)
            self.b.journal.drop_pending(request.key)
        except Exception as exc:  # noqa: BLE001 - the first failure stops the build
            self._fail(exc)

    async def _download(self, url: str, job_id: str) -> tuple[bytes, str]:
        """The output's bytes and format, retried until they decode."""
        attempt = 0
        while True:
            try:
                return await self._fetch(url, job_id)
            except AudioCleanerError as exc:
                delay = retry_delay(self.b.retry, exc, attempt, self.b.rng)
                if delay is None:
                    raise
                attempt += 1
                self.b.counters["retries"] += 1
                log.debug("download of task %s failed (%s); retrying in %.2fs", job_id, exc, delay)
                await asyncio.sleep(delay)

    async def _fetch(self, url: str, job_id: str) -> tuple[bytes, str]:
        if not url.startswith(("http://", "https://")):
            url = str(httpx.URL(self.b.base_url).join(url))
        try:
            # The file client has no key to send: output hosts are not the API.
            response = await self.files.get(url)
        except httpx.HTTPError as exc:
            raise OutputError(f"cannot download the output of task {job_id}: "
                              f"{type(exc).__name__}", job_id=job_id) from None
        self.b.counters["downloads"] += 1
        if response.status_code != 200:
            error = OutputError(f"downloading the output of task {job_id} answered HTTP "
                                f"{response.status_code}", job_id=job_id,
                                http_status=response.status_code)
            error.retryable = response.status_code >= 500 or response.status_code in (408, 429)
            raise error
        return await asyncio.to_thread(_checked_audio, response.content, job_id)


def _checked_audio(data: bytes, job_id: str) -> tuple[bytes, str]:
    """The bytes and their format, if they are audio that decodes and is not empty."""
    from pipeline.audio import check_audio
    from pipeline.errors import AudioToolError

    fmt = sniff_format(data)
    if fmt is None:
        raise OutputError(f"the output of task {job_id} is not audio we know "
                          f"({len(data)} bytes starting {data[:8]!r})", job_id=job_id)
    try:
        check_audio(data, fmt)
    except AudioToolError as exc:
        raise OutputError(f"the output of task {job_id} does not decode as {fmt}: {exc}",
                          job_id=job_id) from None
    return data, fmt


def _warn_if_plaintext(url: str) -> None:
    parsed = httpx.URL(url)
    if parsed.scheme == "http" and parsed.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("AUDIOCLEANER_BASE_URL %s is plain http: the api-key would cross the "
                    "network unencrypted", url)


__all__ = [
    "AudioCleanerBackend", "AudioCleanerError", "AuthError", "ConcurrencyLimitError",
    "CreditError", "MissingKeyError", "OutputError", "ParameterError", "PollDeadlineError",
    "PollPolicy", "RateLimitError", "RequestTimeoutError", "RetryLaterError", "RetryPolicy",
    "ServerError", "TaskFailedError", "TaskNotFoundError", "ThrottledError", "TransportError",
    "UnexpectedResponseError", "error_for_code", "retry_delay",
]
