"""The Audio Cleaner TTS client: create a task, poll it, download its output.

What the guide leaves open is handled defensively (see docs/audiocleaner.md):
HTTP statuses, non-JSON bodies and unknown codes become typed errors that keep
the raw code and message; the output's format is read from its bytes; the
output host never sees the api-key. Every read is bounded and every request
has an overall deadline (pipeline/tts/http.py); the error types live in
pipeline/errors.py, the retry and poll policies in pipeline/tts/policy.py.

Paying once per segment rests on the task journal (the segment cache): a
created task's id is written there before it is polled, so a build killed at
any point polls that task again instead of paying for a new one. Builds that
share a cache take the journal's per-segment lease before paying, so two of
them never pay for one segment twice.

A create whose answer is lost (a timeout or a connection broken after
sending) may have been paid: each segment risks one such retry per build.
A second lost answer leaves the segment undone and stops every new create
for the rest of the run, as does the service deadline; tasks already
created are still polled and stored, then SegmentsUndoneError names what
was left (see ServiceLimits).

Concurrency is a window of tasks in flight, at most --jobs, that shrinks to
what the service accepts when it answers 101004 or 101003 and creeps back up
(additive increase, multiplicative decrease), so a build runs at the
service's own limit instead of hammering it.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import httpx

from pipeline.errors import (
    AudioCleanerError,
    AuthError,
    ConcurrencyLimitError,
    CreditCapError,
    CreditError,
    HostileOutputError,
    MissingKeyError,
    OutputError,
    ParameterError,
    PollDeadlineError,
    RateLimitError,
    RequestTimeoutError,
    RetryLaterError,
    SegmentsUndoneError,
    ServerError,
    TaskFailedError,
    TaskNotFoundError,
    ThrottledError,
    TransportError,
    UnexpectedResponseError,
)
from pipeline.segment import credits_for
from pipeline.tts.base import Audio, OnResult, SynthesisRequest
from pipeline.tts.base import detect_format as sniff_format
from pipeline.tts.http import (
    KEY_ENV,
    MAX_REDIRECTS,
    Bounds,
    checked_duration,
    checked_key,
    output_byte_cap,
    safe_url,
    scrubber_for,
    send_capped,
    within,
)
from pipeline.tts.journal import Journal, LeasingJournal, MemoryJournal
from pipeline.tts.policy import (
    LOST_CREATE_RETRIES,
    SERVICE_DEADLINE_ENV,
    AdaptiveWindow,
    DurationEstimate,
    PollPolicy,
    RetryPolicy,
    ServiceLimits,
    retry_delay,
)

log = logging.getLogger("pipeline.audiocleaner")

CREATE_PATH = "/audio/api/v1/api-keys/tts/task/create"
GET_PATH = "/audio/api/v1/api-keys/tts/task/get"
OK = 100000

# Statuses seen across the vendor's products that mean "not done yet", and
# the one product's word for failure. Anything else is unknown.
WAITING_STATUSES = {"waiting", "queued", "pending", "processing", "running"}
FAILED_STATUSES = {"failed", "error"}

DEFAULT_BASE_URL = "https://audiocleaner.ai"

T = TypeVar("T")


def base_url() -> str:
    """The Audio Cleaner API host: AUDIOCLEANER_BASE_URL, else the vendor's."""
    return (os.environ.get("AUDIOCLEANER_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def identity_of(url: str) -> str:
    """The cache-key identity of the service at url: emulator audio never stands in for real."""
    return f"audiocleaner:{url.rstrip('/')}"


_AUTH_HINTS = {
    101002: "the API key was rejected; check AUDIOCLEANER_API_KEY",
    101005: "the account is suspended; contact Audio Cleaner",
    101006: "the API key is not enabled yet; enable it in the Audio Cleaner console",
}


def error_for_code(code: Any, message: str, http_status: int | None,
                   retry_after: float | None) -> AudioCleanerError:
    """The typed error for a body code other than success."""
    raw = f"(code {code}: {message})"
    kw: dict[str, Any] = {"code": code, "raw_message": message, "http_status": http_status,
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


# ------------------------------------------------------------------ the backend


class AudioCleanerBackend:
    name = "audiocleaner"

    def __init__(self, api_key: str, base: str | None = None, *, journal: Journal | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 retry: RetryPolicy | None = None, poll: PollPolicy | None = None,
                 bounds: Bounds | None = None, task_retries: int = 8, timeout: float = 30.0,
                 max_credits: int | None = None, limits: ServiceLimits | None = None,
                 genders: Any = None):
        if not api_key:
            raise MissingKeyError(f"{KEY_ENV} is empty")
        self._key = checked_key(api_key)
        self.scrub = scrubber_for(api_key)
        self.base_url = (base or base_url()).rstrip("/")
        self.journal: Journal = journal if journal is not None else MemoryJournal()
        self.transport = transport
        self.retry = retry or RetryPolicy()
        self.poll = poll or PollPolicy()
        self.bounds = bounds or Bounds()
        self.task_retries = task_retries
        self.timeout = timeout
        self.max_credits = max_credits
        self.limits = limits or ServiceLimits()
        self.durations = DurationEstimate(self.poll)
        self.rng = random.Random()
        self.counters = dict.fromkeys(
            ("tasks_created", "tasks_resumed", "tasks_shared", "tasks_adopted",
             "segments_made_elsewhere", "leases_taken_over", "leases_taken_over_without_job",
             "leases_lost",
             "resume_only_skipped", "tasks_failed_retried", "retries", "throttled",
             "create_retries_that_may_have_taken_effect", "credits_maybe_charged",
             "segments_maybe_charged", "polls", "downloads"), 0)
        self._window_size: float | None = None
        _warn_if_plaintext(self.base_url)

    @classmethod
    def from_environment(cls, genders: Any = None, journal: Journal | None = None,
                         **options: Any) -> AudioCleanerBackend:
        """The key from AUDIOCLEANER_API_KEY (never from a file), the host from base_url()."""
        key = os.environ.get(KEY_ENV, "").strip()
        if not key:
            raise MissingKeyError(
                f"{KEY_ENV} is not set: the audiocleaner backend needs your Audio Cleaner API "
                f"key in that environment variable (never in audiobook.yml), or build with "
                f"--backend local")
        return cls(key, journal=journal, genders=genders, **options)

    def __repr__(self) -> str:
        return f"AudioCleanerBackend({self.base_url!r})"

    def identity(self) -> str:
        return identity_of(self.base_url)

    def stats(self) -> dict:
        out: dict[str, Any] = dict(self.counters)
        if self._window_size is not None:
            out["concurrency_window"] = round(self._window_size, 2)
        return out

    def close(self) -> None:
        pass  # clients live only inside synthesize_all

    def synthesize_all(self, requests: Sequence[SynthesisRequest], jobs: int,
                       on_result: OnResult) -> None:
        if not requests:
            return
        run = _Run(self, self._key, requests, max(1, jobs), on_result)
        try:
            asyncio.run(run.main())
        finally:
            self._window_size = run.window.size


# ------------------------------------------------------------------ one run


class _Stop(Exception):
    """Another task failed the build: stop before paying for anything more."""


class _Undone(Exception):
    """This segment is left undone (see _may_create); the build goes on with the rest."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


# Why no create may start any more in a run (_Run.halt).
_LOSING = "Audio Cleaner is losing create answers"
_DEADLINE = "the service deadline passed"


# How a run came by a segment's task (_claim): it creates one, polls one another live
# build created, adopts a dead build's, resumes its own journal's; or the audio is stored.
_NEW, _SHARED, _ADOPTED, _RESUMED = "new", "shared", "adopted", "resumed"
_MADE_ELSEWHERE = "made elsewhere"
_COUNTER = {_SHARED: "tasks_shared", _ADOPTED: "tasks_adopted", _RESUMED: "tasks_resumed"}


def lease_ttl(poll: PollPolicy, retry: RetryPolicy, bounds: Bounds) -> float:
    """How long a lease lives unrenewed: the longest a holder can take, its create's
    retries and then its polls. Objects younger than this may belong to a build in progress."""
    return poll.deadline + (retry.max_retries + 1) * (bounds.deadline + retry.cap)


def default_lease_ttl() -> float:
    return lease_ttl(PollPolicy(), RetryPolicy(), Bounds())


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


class _Run:
    """One synthesize_all call: its HTTP clients, window, budget, and the first failure."""

    def __init__(self, backend: AudioCleanerBackend, key: str,
                 requests: Sequence[SynthesisRequest], jobs: int, on_result: OnResult):
        self.key = key
        self.scrub = backend.scrub
        self.base_url = backend.base_url
        self.journal = backend.journal
        self.transport = backend.transport
        self.retry, self.poll, self.bounds = backend.retry, backend.poll, backend.bounds
        self.task_retries, self.timeout = backend.task_retries, backend.timeout
        self.max_credits = backend.max_credits
        self.limits = backend.limits
        self.limits.start()
        self.counters, self.durations, self.rng = backend.counters, backend.durations, backend.rng
        self.requests = list(requests)
        self.jobs = jobs
        self.on_result = on_result
        self.done: set[str] = set()
        self.failure: BaseException | None = None
        self.window = AdaptiveWindow(jobs)
        # Budget: credits of tasks this run created, of creates that may have
        # been paid though their answer was lost, and of creates in the air.
        self.spent = self.maybe = self.in_flight = 0
        self.maybe_keys: set[str] = set()  # segments whose credits are in credits_maybe_charged
        # Once set, no create starts in this run: why (_LOSING, _DEADLINE).
        self.halt: str | None = None
        self.last_lost = ""  # the last lost create answer's error, for the final message
        self.undone: dict[str, tuple[str, str]] = {}  # key -> (label, why)
        self.holder = {"holder": uuid.uuid4().hex, "pid": os.getpid(),
                       "host": socket.gethostname(), "base_url": self.base_url}
        self.lease_ttl = lease_ttl(self.poll, self.retry, self.bounds)
        self.leased: set[str] = set()
        self.lost_before = self._leases_lost()

    # -- orchestration -----------------------------------------------------
    async def main(self) -> None:
        limits = httpx.Limits(max_connections=self.jobs + 8, max_keepalive_connections=self.jobs + 8)
        timeout = httpx.Timeout(self.timeout, pool=None)
        # Two clients: only the API client carries the key. Neither follows
        # redirects by itself: httpx would carry a custom header to another
        # host, and each hop of a download must be checked (_get_following).
        self.api = httpx.AsyncClient(base_url=self.base_url, transport=self.transport,
                                     headers={"api-key": self.key}, timeout=timeout,
                                     limits=limits, follow_redirects=False)
        self.files = httpx.AsyncClient(transport=self.transport, timeout=timeout, limits=limits,
                                       follow_redirects=False)
        self.finishing: set[asyncio.Future] = set()
        try:
            queue = iter(self._ordered())
            await asyncio.gather(*(self._worker(queue) for _ in range(self.jobs)))
            while self.finishing:
                await asyncio.gather(*list(self.finishing))
        finally:
            for key in list(self.leased):
                self._release(key)
            self.counters["leases_lost"] += self._leases_lost() - self.lost_before
            await self.api.aclose()
            await self.files.aclose()
        if self.failure is not None:
            if self.undone:
                log.warning("%d segment(s) were also left undone; build again to make them",
                            len(self.undone))
            raise self._final(self.failure)
        if self.undone:
            raise self._undone_error()

    def _ordered(self) -> list[SynthesisRequest]:
        """Tasks already paid for first: they free the service's slots soonest."""
        journaled = [r for r in self.requests if self._journaled(r)]
        return journaled + [r for r in self.requests if not self._journaled(r)]

    def _journaled(self, request: SynthesisRequest) -> str | None:
        info = self.journal.pending(request.key)
        if isinstance(info, dict) and info.get("base_url") == self.base_url:
            job = info.get("job_id")
            return str(job) if job else None
        return None

    async def _worker(self, queue) -> None:
        for request in queue:
            if self.failure is not None:
                return
            try:
                await self._one(request)
            except _Stop:
                return
            except _Undone as undone:
                self.undone[request.key] = (request.label, undone.why)
                self._release(request.key)  # another build may make it
            except Exception as exc:  # noqa: BLE001 - the first failure stops the build
                self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        else:
            log.debug("also failed: %s", exc)

    def _final(self, exc: BaseException) -> BaseException:
        if isinstance(exc, (CreditError, CreditCapError)):
            left = [r for r in self.requests if r.key not in self.done]
            need = sum(credits_for(len(r.text)) for r in left)
            exc.args = (f"{exc} ; the rest of this build needs {need} credit(s) for {len(left)} "
                        f"segment(s): top up and build again (audio already made is kept)",)
        return exc

    def _undone_error(self) -> SegmentsUndoneError:
        """The segments left undone, what may have been charged, and what to do."""
        order = {r.key: i for i, r in enumerate(self.requests)}
        undone = [self.undone[k] for k in sorted(self.undone, key=order.__getitem__)]
        shown = "; ".join(f"{label}: {why}" for label, why in undone[:3])
        more = f"; and {len(undone) - 3} more" if len(undone) > 3 else ""
        lines = [f"{len(undone)} segment(s) left undone: {shown}{more}"]
        if self.halt == _LOSING:
            lines.append(f"Audio Cleaner is losing the answers of creates it may have taken "
                         f"(the last: {self.last_lost}): no segment was sent more than twice, "
                         "and no new create started after a segment's second loss")
        elif self.halt == _DEADLINE:
            lines.append(f"the service deadline of {self.limits.deadline:g}s passed "
                         f"(--service-deadline, {SERVICE_DEADLINE_ENV}): no new create was "
                         "started after it; tasks already created were waited for")
        maybe = self.counters["credits_maybe_charged"]
        if maybe:
            lines.append(f"up to {maybe} credit(s) may have been charged for "
                         f"{self.counters['segments_maybe_charged']} segment(s) whose create "
                         "answer was lost (credits_maybe_charged)")
        lines.append("build again later: the audio made so far is kept, and the next build asks "
                     "only for what is missing")
        return SegmentsUndoneError(lines, undone)

    # -- one segment -------------------------------------------------------
    async def _one(self, request: SynthesisRequest) -> None:
        """Make one segment's audio: resume or join a task, or create one, retrying failures."""
        failures = 0
        while True:
            job_id = self._journaled(request)
            shared = False
            if job_id is None:
                if not request.text:  # resume-only: nothing journaled, so nothing to do
                    self.counters["resume_only_skipped"] += 1
                    log.info("%s has no journaled task to resume; skipped", request.label)
                    return
                job_id, how = await self._claim(request)
                if how == _MADE_ELSEWHERE:
                    self.counters["segments_made_elsewhere"] += 1
                    log.info("%s was made by another build sharing the cache", request.label)
                    self.done.add(request.key)
                    return
                shared = how == _SHARED
            else:
                how = _SHARED if self._held_elsewhere(request) else _RESUMED
                shared = how == _SHARED
            resumed = job_id is not None
            await self.window.acquire()
            held = False
            try:
                if job_id is not None:
                    self.counters[_COUNTER[how]] += 1
                    log.debug("%s task %s for %s", "joining" if shared else "resuming", job_id,
                              request.label)
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
            if not shared:  # the holder owns its journal entry (it may hold a new task by now)
                self.journal.drop_pending(request.key)
            if not resumed:
                self.spent -= credits_for(len(request.text))  # a failed task is not charged
            if not request.text:
                log.warning("journaled task %s for %s did not succeed; a build of that segment "
                            "will create a new one", job_id, request.label)
                return
            if failures > self.task_retries:
                raise TaskFailedError(
                    f"Audio Cleaner failed to synthesize {request.label} {failures} times "
                    f"(last task {job_id}); check that segment's text and build again",
                    job_id=job_id)
            self.counters["tasks_failed_retried"] += 1
            log.info("task %s for %s failed; trying again", job_id, request.label)
        self._spawn(self._finish(request, job_id, output, self._credits_of(request, shared)))

    def _credits_of(self, request: SynthesisRequest, shared: bool) -> int:
        """What this build paid for the segment's audio (a joined task: another build did)."""
        if shared:
            return 0
        if request.text:
            return credits_for(len(request.text))
        info = self.journal.pending(request.key) or {}
        return int(info.get("credits", 0) or 0)

    async def _claim(self, request: SynthesisRequest) -> tuple[str | None, str]:
        """Who pays for the segment: (None, _NEW) when this run may; else a job id to poll
        and how we came by it (_SHARED, _ADOPTED), or (None, _MADE_ELSEWHERE).

        With a leasing journal, only the lease holder creates a task. Another
        live holder's task is polled once it exists; until then we wait
        (backing off) for its job id, for the audio, or for its lease to die.
        A dead holder's task is adopted (see _after_takeover).
        """
        lease: Callable[[str, dict, float], dict | None] | None = getattr(self.journal, "lease",
                                                                          None)
        if lease is None:
            return None, _NEW
        delay, told = 0.05, False
        while True:
            if self.failure is not None:
                raise _Stop()
            other = lease(request.key, self.holder, self.lease_ttl)
            if other is None:
                self.leased.add(request.key)
                if request.key in self.journal:  # stored just before we took the lease
                    self._release(request.key)
                    return None, _MADE_ELSEWHERE
                adopted = self._after_takeover(request)
                return (adopted, _ADOPTED) if adopted else (None, _NEW)
            job = other.get("job_id") if other.get("base_url") == self.base_url else None
            if job:
                return str(job), _SHARED
            if request.key in self.journal:
                return None, _MADE_ELSEWHERE
            journaled = self._journaled(request)
            if journaled:  # the live holder journaled it in the folder we share
                return journaled, _SHARED
            self._may_start(request)  # waiting is for a create we would no longer send
            if not told:
                log.info("%s is being paid for by another build; waiting for its task",
                         request.label)
                told = True
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 2.0)

    def _after_takeover(self, request: SynthesisRequest) -> str | None:
        """The dead holder's job id when our lease took over one that carried it, else None.

        Its journal may be on another machine, but its lease carries the job
        id: we journal that task as ours and poll it instead of paying again.
        A dead holder without a job id whose lease says it had started a
        create may have been killed between the service taking it and the
        job id reaching the lease: the one case a segment may be paid twice
        (the API has no idempotency key), so its credits are counted in
        credits_maybe_charged. They are not held against this run's
        --max-credits: if paid, the dead run paid them.
        """
        took_over = getattr(self.journal, "took_over", None)
        previous = took_over(request.key) if took_over is not None else None
        if previous is None:
            return None
        self.counters["leases_taken_over"] += 1
        job = previous.get("job_id") if previous.get("base_url") == self.base_url else None
        if job:
            self.journal.set_pending(request.key, {
                "job_id": str(job), "base_url": self.base_url, "created_at": time.time(),
                "credits": credits_for(len(request.text)), "adopted": True})
            log.info("%s: the build holding it (pid %s on %s) is gone; polling its task %s "
                     "instead of paying again", request.label, previous.get("pid"),
                     previous.get("host"), job)
            return str(job)
        journaled = self._journaled(request)
        if journaled:
            return journaled
        self.counters["leases_taken_over_without_job"] += 1
        if not previous.get("creating"):
            log.info("%s: the build holding it (pid %s on %s) is gone before it started a task; "
                     "nothing was paid for it", request.label, previous.get("pid"),
                     previous.get("host"))
            return None
        cost = credits_for(len(request.text))
        self.counters["credits_maybe_charged"] += cost
        self._maybe_segment(request.key)
        log.warning("%s: the build holding it (pid %s on %s) was killed while creating its task, "
                    "before it recorded the job id; if the service had taken that create, this "
                    "segment's %d credit(s) are paid twice", request.label, previous.get("pid"),
                    previous.get("host"), cost)
        return None

    def _held_elsewhere(self, request: SynthesisRequest) -> bool:
        """Whether another live build holds this journaled task's lease (it is polling it too)."""
        lease = getattr(self.journal, "lease", None)
        if lease is None:
            return False
        if lease(request.key, self.holder, self.lease_ttl) is None:
            self.leased.add(request.key)  # its builder is gone: the task is ours to resume
            took_over = getattr(self.journal, "took_over", None)
            if took_over is not None and took_over(request.key) is not None:
                self.counters["leases_taken_over"] += 1  # the task is in our journal: no cost
            return False
        return True

    def _leases_lost(self) -> int:
        lost = getattr(self.journal, "leases_lost", None)
        return int(lost()) if lost is not None else 0

    def _release(self, key: str) -> None:
        if key in self.leased:
            self.leased.discard(key)
            release = getattr(self.journal, "release", None)
            if release is not None:
                release(key)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.finishing.add(task)
        task.add_done_callback(self.finishing.discard)

    async def _create(self, request: SynthesisRequest) -> str:
        voice = request.voice
        body = {"voice_id": voice.voice, "emotion": voice.emotion, "speed": voice.speed,
                "language": voice.language, "text": request.text}
        cost = credits_for(len(request.text))
        self._may_start(request)  # before the lease says we may be paying
        mark = getattr(self.journal, "mark_creating", None)
        if mark is not None and request.key in self.leased:
            # Said in the lease before paying: a build that takes it over from us
            # dead then knows whether we may have paid (see _after_takeover).
            mark(request.key)

        async def attempt() -> Any:
            self._may_create(request, cost)
            self.in_flight += cost  # no await since the check: the two are one step
            try:
                return await self._post(CREATE_PATH, body)
            finally:
                self.in_flight -= cost

        data = await self._retrying(attempt, create=request)
        self.spent += cost
        job_id = data.get("job_id") if isinstance(data, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise UnexpectedResponseError(f"Audio Cleaner's create answer has no job_id: "
                                          f"{self.scrub(str(data))[:200]}")
        # Durable before the first poll: a build killed from here on polls
        # this task again instead of paying for another.
        self.journal.set_pending(request.key, {
            "job_id": job_id, "base_url": self.base_url, "created_at": time.time(),
            "credits": cost})
        self.counters["tasks_created"] += 1
        self.window.accepted()
        log.debug("created task %s for %s", job_id, request.label)
        return job_id

    def _may_create(self, request: SynthesisRequest, cost: int) -> None:
        """Raise unless this create may be sent now: the build goes on, no create is halted,
        and it fits --max-credits."""
        if self.failure is not None:
            raise _Stop()
        self._may_start(request)
        self._check_budget(cost, request)

    def _may_start(self, request: SynthesisRequest) -> None:
        """_Undone when no create may start any more: the service is losing answers, or the
        service deadline passed."""
        if self.halt is None and self.limits.passed():
            self.halt = _DEADLINE
            log.warning("the service deadline of %gs passed (--service-deadline, %s): no new "
                        "create starts; waiting for the tasks already created",
                        self.limits.deadline, SERVICE_DEADLINE_ENV)
        if self.halt is not None:
            raise _Undone(f"its create answer was lost; not sent again: {self.halt}"
                          if self.limits.lost[request.key] else f"not started: {self.halt}")

    def _check_budget(self, cost: int, request: SynthesisRequest) -> None:
        """Refuse a create that could take this run's spending past --max-credits."""
        cap = self.max_credits
        if cap is None or self.spent + self.maybe + self.in_flight + cost <= cap:
            return
        if self.limits.lost[request.key]:
            # Sending a lost create again would risk the cap: this segment waits for
            # the next build, and the rest of this one goes on.
            raise _Undone(f"its create answer was lost, and sending it again could pass "
                          f"--max-credits {cap}")
        raise CreditCapError(
            f"stopping before --max-credits {cap} would be passed: this build's tasks cost "
            f"{self.spent} credit(s), creates whose answer was lost may have cost {self.maybe} "
            f"more, {self.in_flight} are being created, and {request.label} needs {cost}")

    # -- requests with retries ---------------------------------------------
    async def _retrying(self, attempt: Callable[[], Awaitable[T]], *,
                        create: SynthesisRequest | None = None) -> T:
        """attempt(), tried again per retry_delay: the one retry loop (create, poll, download).

        For a create, a lost answer (maybe_took_effect) is counted once and
        sent again at most LOST_CREATE_RETRIES times per segment per build.
        """
        failures = 0
        while True:
            try:
                return await attempt()
            except AudioCleanerError as exc:
                delay = retry_delay(self.retry, exc, failures, self.rng)
                if create is not None and getattr(exc, "maybe_took_effect", False):
                    self._answer_lost(create, exc, delay is not None)
                if delay is None:
                    raise
                failures += 1
                await self._before_retry(exc, delay, creating=create is not None)

    def _answer_lost(self, request: SynthesisRequest, exc: AudioCleanerError,
                     retryable: bool) -> None:
        """Count a create that may have been paid; _Undone past the segment's one retry."""
        cost = credits_for(len(request.text))
        self.maybe += cost
        self.counters["credits_maybe_charged"] += cost
        self.counters["create_retries_that_may_have_taken_effect"] += 1
        self._maybe_segment(request.key)
        self.limits.lost[request.key] += 1
        self.last_lost = str(exc)
        if self.limits.lost[request.key] <= LOST_CREATE_RETRIES:
            if retryable:
                log.warning("%s: Audio Cleaner may have taken its create, but the answer was "
                            "lost (%s); sending it once more, which may pay its %d credit(s) "
                            "twice (counted against --max-credits)", request.label, exc, cost)
            return
        if self.halt is None:
            self.halt = _LOSING
            log.warning("%s: its create answer was lost again (%s); left undone, and no new "
                        "create starts in this build: Audio Cleaner is losing answers",
                        request.label, exc)
        raise _Undone("its create answer was lost twice")

    def _maybe_segment(self, key: str) -> None:
        if key not in self.maybe_keys:
            self.maybe_keys.add(key)
            self.counters["segments_maybe_charged"] += 1

    async def _before_retry(self, exc: AudioCleanerError, delay: float, creating: bool) -> None:
        if isinstance(exc, ThrottledError):
            self.counters["throttled"] += 1
            if isinstance(exc, ConcurrencyLimitError) and creating:
                await self._yield_slot(delay)
                return
            self.window.rate_refused()
        else:
            self.counters["retries"] += 1
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
        """One API request, within the deadline and the body cap; the answer's data."""
        what = f"Audio Cleaner at {self.base_url}"
        request = self.api.build_request("POST", path, json=body)
        response, raw = await within(self.bounds.deadline, what, self.scrub,
                                     send_capped(self.api, request, self.bounds.api_body_cap, what))
        return self._parse(response, raw)

    def _parse(self, response: httpx.Response, raw: bytes) -> Any:
        """The answer's data, or the typed error its HTTP status or code means."""
        status, after = response.status_code, _retry_after(response)
        snippet = self.scrub(raw[:200].decode("utf-8", "replace"))
        if status >= 500 or status in (408, 429):
            kind = ThrottledError if status == 429 else ServerError
            raise kind(f"Audio Cleaner answered HTTP {status}: {snippet}", http_status=status,
                       raw_message=snippet, retry_after=after)
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or "code" not in payload:
            raise UnexpectedResponseError(
                f"Audio Cleaner answered HTTP {status} without a JSON code: {snippet!r}",
                http_status=status, raw_message=snippet)
        code, message = payload.get("code"), self.scrub(str(payload.get("message", "")))
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
        await asyncio.sleep(0 if resumed else self.durations.first_poll())
        while True:
            try:
                data = await self._retrying(lambda: self._post(GET_PATH, {"global_id": job_id}))
            except TaskNotFoundError as exc:
                if resumed:
                    # Expired, or made with another key: it cannot be had now.
                    log.warning("journaled task %s for %s is gone (%s); creating a new one",
                                job_id, request.label, exc.raw_message)
                    return None
                # A task we just created: the service may not know it everywhere yet.
                data = {"status": "not found"}
            self.counters["polls"] += 1
            status = str(data.get("status", "")).lower() if isinstance(data, dict) else ""
            output = data.get("output") if isinstance(data, dict) else None
            if status == "success" and isinstance(output, str) and output:
                if not resumed:
                    self.durations.add(time.monotonic() - started)
                return output
            if status in FAILED_STATUSES:
                return None
            if status not in WAITING_STATUSES:
                # Unknown, or success without an output yet: not success, and bounded.
                unknown += 1
                if unknown > self.poll.unknown_status_limit:
                    raise UnexpectedResponseError(
                        f"Audio Cleaner task {job_id} for {request.label} reports status "
                        f"{self.scrub(status)!r} with output {self.scrub(str(output))!r}; "
                        "not a status we know", job_id=job_id, raw_message=self.scrub(status))
            interval = self.durations.next_interval(interval)
            if time.monotonic() - started + interval > self.poll.deadline:
                raise PollDeadlineError(
                    f"Audio Cleaner task {job_id} for {request.label} was still {status!r} "
                    f"after {self.poll.deadline:.0f}s; build again later to resume it "
                    f"(it is paid for and journaled)", job_id=job_id)
            await asyncio.sleep(interval)

    # -- the output --------------------------------------------------------
    async def _finish(self, request: SynthesisRequest, job_id: str, url: str,
                      credits: int) -> None:
        chars = len(request.text) or 100 * max(1, credits)
        try:
            data, fmt = await self._retrying(lambda: self._fetch(url, job_id, chars))
            self.on_result(request, Audio(data, fmt, credits))
            self.done.add(request.key)
            self.journal.drop_pending(request.key)
        except HostileOutputError as exc:
            # Downloading it again gets the same: the next build asks for a new task.
            self.journal.drop_pending(request.key)
            self._fail(exc)
        except Exception as exc:  # noqa: BLE001 - the first failure stops the build
            self._fail(exc)
        finally:
            self._release(request.key)

    async def _fetch(self, url: str, job_id: str, chars: int) -> tuple[bytes, str]:
        """The output's bytes and format, if they are plausible audio for chars characters."""
        what = f"the output of task {job_id}"
        cap = output_byte_cap(chars, self.bounds)
        try:
            response, body = await within(self.bounds.deadline, what, self.scrub,
                                          self._get_following(url, cap, what))
        except AudioCleanerError as exc:
            exc.job_id = exc.job_id or job_id
            raise
        self.counters["downloads"] += 1
        status = response.status_code
        if status != 200:
            raise OutputError(f"downloading {what} answered HTTP {status}", job_id=job_id,
                              http_status=status,
                              retryable=status >= 500 or status in (408, 429))
        return await asyncio.to_thread(_checked_audio, body, job_id, chars)

    async def _get_following(self, url: str, cap: int, what: str) -> tuple[httpx.Response, bytes]:
        """GET url, following redirects by hand: every hop must be http(s)."""
        url = safe_url(url, self.base_url, what)
        for _ in range(MAX_REDIRECTS + 1):
            request = self.files.build_request("GET", url)
            response, body = await send_capped(self.files, request, cap, what)
            location = response.headers.get("location")
            if not (response.is_redirect and location):
                return response, body
            url = safe_url(location, url, what)
        raise OutputError(f"{what}: more than {MAX_REDIRECTS} redirects", retryable=False)


def _checked_audio(data: bytes, job_id: str, chars: int) -> tuple[bytes, str]:
    """The bytes and their format, if they decode to a plausible length for the text."""
    fmt = sniff_format(data)
    what = f"the output of task {job_id}"
    if fmt is None:
        raise OutputError(f"{what} is not audio we know ({len(data)} bytes starting "
                          f"{data[:8]!r})", job_id=job_id)
    try:
        checked_duration(data, chars, what, fmt)
    except OutputError as exc:
        exc.job_id = job_id
        if not isinstance(exc, HostileOutputError):
            exc.args = (f"{what} does not decode as {fmt}: {exc}",)
        raise
    return data, fmt


def _warn_if_plaintext(url: str) -> None:
    parsed = httpx.URL(url)
    if parsed.scheme == "http" and parsed.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("AUDIOCLEANER_BASE_URL %s is plain http: the api-key would cross the "
                    "network unencrypted", url)


__all__ = [
    "AudioCleanerBackend", "AudioCleanerError", "AuthError", "ConcurrencyLimitError",
    "CreditCapError", "CreditError", "HostileOutputError", "Journal", "LeasingJournal",
    "MemoryJournal", "MissingKeyError", "OutputError", "ParameterError", "PollDeadlineError",
    "PollPolicy", "RateLimitError", "RequestTimeoutError", "RetryLaterError", "RetryPolicy",
    "SegmentsUndoneError", "ServerError", "ServiceLimits", "TaskFailedError",
    "TaskNotFoundError", "ThrottledError", "TransportError", "UnexpectedResponseError",
    "error_for_code", "retry_delay",
]
