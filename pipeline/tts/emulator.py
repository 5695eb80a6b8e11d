"""A local emulator of the Audio Cleaner TTS API, for tests and users' CI.

It serves the guide's two endpoints with the behaviour a client must cope
with: the api-key check, per-key rate and concurrency limits, a credit
balance reserved at create and refunded when a task fails, tasks that wait
`latency` seconds, output files served from a path of their own, 101008 for
unknown or foreign ids, 100002 (and no charge) for out-of-range parameters,
finished tasks forgotten `task_ttl` seconds after they end (so memory stays
bounded), and injected failures and transport faults. For tests it also says
where each sentence of a task's speech starts (`/_emulator/tasks/ID/boundaries`).

The server is aiohttp on one asyncio event loop: a poll is a few dictionary
look-ups, so one thread holds hundreds of concurrent connections without a
thread each, and task lifetimes are timestamps rather than sleeping threads.
Synthesis and MP3 encoding (eSpeak, ffmpeg) run in a small thread pool so
they never stall the loop. See docs/audiocleaner.md for the choice.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import io
import math
import os
import random
import threading
import time
import uuid
import wave
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aiohttp import web

from pipeline.book import EMOTION_NAMES, LANGUAGES, SPEED_MAX, SPEED_MIN, Voice

CREATE_PATH = "/audio/api/v1/api-keys/tts/task/create"
GET_PATH = "/audio/api/v1/api-keys/tts/task/get"
OUTPUT_PATH = "/_emulator/output/"
STATS_PATH = "/_emulator/stats"
TASKS_PATH = "/_emulator/tasks/"  # + {job_id}/boundaries

OK = 100000
PARAMETER_ERROR = 100002  # not in the TTS guide; the vendor's web endpoints use it
NO_CREDIT = 100100
INVALID_KEY = 101002
RATE_LIMITED = 101003
CONCURRENCY_LIMITED = 101004
KEY_DISABLED = 101005
KEY_NOT_ENABLED = 101006
NOT_FOUND = 101008

MESSAGES = {
    OK: "Request Success",
    PARAMETER_ERROR: "Parameter error",
    NO_CREDIT: "Insufficient credit balance",
    INVALID_KEY: "Invalid API key",
    RATE_LIMITED: "API key rate limit exceeded",
    CONCURRENCY_LIMITED: "API key concurrent request limit exceeded",
    KEY_DISABLED: "Your account is suspended. Status cannot be modified. "
                  "Please contact the administrator",
    KEY_NOT_ENABLED: "API key not enabled",
    NOT_FOUND: "Task not found",
}


@dataclass(frozen=True)
class EmulatorConfig:
    api_keys: tuple[str, ...] = ()  # empty: any non-empty key is accepted
    credits: int = 1_000_000  # starting balance of each key
    latency: float = 1.0
    rate_limit: float | None = None  # requests per second per key
    concurrency: int | None = None  # tasks `waiting` at once per key
    fail_rate: float = 0.0
    fault_rate: float = 0.0
    lost_response_rate: float = 0.0
    seed: int | None = None
    audio_kind: str = "speech"  # or "tone"
    task_ttl: float = 3600.0  # seconds a finished task and its output are kept
    # Not CLI options: keys answered 101005 / 101006, so tests can see them.
    disabled_keys: tuple[str, ...] = ()
    unenabled_keys: tuple[str, ...] = ()


def credits_for(text: str) -> int:
    """The guide's billing: 1 credit per started 100 characters."""
    return max(1, math.ceil(len(text) / 100))


@dataclass(order=True)
class Task:
    ready_at: float
    id: str = field(compare=False)
    key: str = field(compare=False)
    cost: int = field(compare=False)
    text: str = field(compare=False)
    voice: Voice = field(compare=False)
    fails: bool = field(compare=False)
    settled: bool = field(default=False, compare=False)

    def status(self, now: float) -> str:
        if now < self.ready_at:
            return "waiting"
        return "failed" if self.fails else "success"


class TokenBucket:
    """A per-key rate limit: `rate` requests a second, bursts up to one second's worth."""

    def __init__(self, rate: float, now: float):
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class EmulatorState:
    """The service's bookkeeping, free of HTTP so its rules read plainly.

    Every method takes `now` (monotonic seconds); tasks change state by time
    alone, and `settle` books what the passage of time decided (successes,
    failures and their refunds).
    """

    def __init__(self, config: EmulatorConfig, rng: random.Random):
        self.config = config
        self.rng = rng
        self.tasks: dict[str, Task] = {}
        self.balances: dict[str, int] = {}
        self.waiting: dict[str, int] = {}
        self.buckets: dict[str, TokenBucket] = {}
        self._unsettled: list[Task] = []
        self.counters = dict.fromkeys(
            ("tasks_created", "tasks_succeeded", "tasks_failed", "credits_charged",
             "credits_refunded", "max_concurrent_tasks", "downloads", "downloads_with_api_key",
             "faults_injected", "lost_responses", "requests", "rejected_rate_limit",
             "rejected_concurrency", "rejected_credit", "rejected_parameters",
             "tasks_expired"), 0)
        self._finished: list[tuple[float, str]] = []  # (forget at, job id), a heap
        self.on_expire: list = []  # callables(task), told when a task is forgotten

    # -- checks shared by both endpoints ----------------------------------
    def key_error(self, key: str | None) -> int | None:
        if not key:
            return INVALID_KEY
        if key in self.config.disabled_keys:
            return KEY_DISABLED
        if key in self.config.unenabled_keys:
            return KEY_NOT_ENABLED
        if self.config.api_keys and key not in self.config.api_keys:
            return INVALID_KEY
        return None

    def rate_error(self, key: str, now: float) -> int | None:
        if self.config.rate_limit is None:
            return None
        bucket = self.buckets.setdefault(key, TokenBucket(self.config.rate_limit, now))
        if bucket.take(now):
            return None
        self.counters["rejected_rate_limit"] += 1
        return RATE_LIMITED

    def admit(self, key: str | None, now: float) -> int | None:
        """The code that refuses a request before it does anything, or None."""
        self.counters["requests"] += 1
        self.settle(now)
        return self.key_error(key) or self.rate_error(key or "", now)

    # -- the task lifecycle ------------------------------------------------
    def create(self, key: str, body: dict, now: float) -> tuple[int, dict | None]:
        self.settle(now)
        voice = _voice_of(body)
        if voice is None:
            self.counters["rejected_parameters"] += 1
            return PARAMETER_ERROR, None
        limit = self.config.concurrency
        if limit is not None and self.waiting.get(key, 0) >= limit:
            self.counters["rejected_concurrency"] += 1
            return CONCURRENCY_LIMITED, None
        cost = credits_for(body["text"])
        balance = self.balances.setdefault(key, self.config.credits)
        if balance < cost:
            self.counters["rejected_credit"] += 1
            return NO_CREDIT, None
        task = Task(now + self.config.latency, uuid.uuid4().hex, key,
                    cost, body["text"], voice, self.rng.random() < self.config.fail_rate)
        self.balances[key] = balance - cost
        self.tasks[task.id] = task
        heapq.heappush(self._unsettled, task)
        self.waiting[key] = self.waiting.get(key, 0) + 1
        self.counters["tasks_created"] += 1
        self.counters["credits_charged"] += cost
        self.counters["max_concurrent_tasks"] = max(self.counters["max_concurrent_tasks"],
                                                    self.waiting[key])
        return OK, {"job_id": task.id}

    def lookup(self, key: str, body: dict) -> tuple[int, Task | None]:
        job_id = body.get("global_id")
        if not isinstance(job_id, str) or not job_id:
            return PARAMETER_ERROR, None
        task = self.tasks.get(job_id)
        # Another key's task is "not found" too: the guide's FAQ says so.
        if task is None or task.key != key:
            return NOT_FOUND, None
        return OK, task

    def settle(self, now: float) -> None:
        while self._unsettled and self._unsettled[0].ready_at <= now:
            task = heapq.heappop(self._unsettled)
            task.settled = True
            self.waiting[task.key] -= 1
            heapq.heappush(self._finished, (task.ready_at + self.config.task_ttl, task.id))
            if task.fails:
                # Reserved at create, refunded on failure: right under either
                # reading of the vendor's billing FAQ.
                self.balances[task.key] += task.cost
                self.counters["credits_charged"] -= task.cost
                self.counters["credits_refunded"] += task.cost
                self.counters["tasks_failed"] += 1
            else:
                self.counters["tasks_succeeded"] += 1
        self._expire(now)

    def _expire(self, now: float) -> None:
        """Forget tasks that ended more than task_ttl ago: the id then reads as unknown."""
        while self._finished and self._finished[0][0] <= now:
            _, job_id = heapq.heappop(self._finished)
            task = self.tasks.pop(job_id, None)
            if task is None:
                continue
            self.counters["tasks_expired"] += 1
            for tell in self.on_expire:
                tell(task)

    def stats(self, now: float) -> dict:
        self.settle(now)
        balance = sum(self.balances.values()) if self.balances else self.config.credits
        return {**self.counters, "balance": balance,
                "tasks_waiting": sum(self.waiting.values()), "tasks_kept": len(self.tasks)}


def _voice_of(body: dict) -> Voice | None:
    """The create body's voice settings, or None when a field is missing, mistyped or
    out of the guide's range (speed 0.5-2, emotion 0-8, a voice id, a listed language)."""
    fields = [body.get(k) for k in ("voice_id", "emotion", "speed")]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in fields):
        return None
    try:
        numbers: list[float] = [float(v) for v in fields]  # type: ignore[arg-type]
    except OverflowError:  # an integer past float's range: out of range anyway
        return None
    voice_id, emotion, speed = numbers
    if not all(math.isfinite(v) for v in numbers):
        return None
    if voice_id != int(voice_id) or voice_id < 1 or emotion != int(emotion):
        return None
    if int(emotion) not in EMOTION_NAMES or not SPEED_MIN <= speed <= SPEED_MAX:
        return None
    text, language = body.get("text"), body.get("language")
    if not isinstance(text, str) or not text.strip() or language not in LANGUAGES:
        return None
    return Voice(int(voice_id), int(emotion), float(speed), language)


# ---------------------------------------------------------------- audio


# ffmpeg writing MP3 to a pipe cannot go back to fill in the LAME header's
# encoder delay, so a decoder keeps LAME's lead-in (576 encoder + 529 decoder
# samples): the served speech starts this many samples after the WAV's
# (measured: tests/test_emulator.py checks it by cross-correlation).
MP3_LEAD_SAMPLES = 1105


def encode_mp3(wav: bytes) -> bytes:
    """MP3 as a real service would send, made by our pinned ffmpeg."""
    from pipeline.audio import run_ffmpeg

    return run_ffmpeg(["-f", "wav", "-i", "pipe:0", "-codec:a", "libmp3lame", "-b:a", "64k",
                       "-f", "mp3", "pipe:1"], stdin=wav)


def tone_wav(seconds: float, rate: int = 16000) -> bytes:
    """A quiet 400 Hz tone: cheap audio for load tests (one period, repeated)."""
    period = rate // 400
    cycle = b"".join(int(8000 * math.sin(2 * math.pi * i / period)).to_bytes(2, "little", signed=True)
                     for i in range(period))
    frames = int(seconds * rate)
    samples = (cycle * (frames // period + 1))[: frames * 2]
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples)
    return out.getvalue()


@dataclass(frozen=True)
class MadeAudio:
    """A task's output, and the truth about it that tests may ask for."""

    mp3: bytes
    marks: tuple[tuple[int, int], ...]  # (character offset, ms in the served audio)
    duration_ms: int  # of the served audio, as ffmpeg decodes it


class AudioMaker:
    """Output audio for a task, made once per distinct input and kept while a task uses it."""

    def __init__(self, kind: str, workers: int | None = None):
        self.kind = kind
        self.pool = ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1),
                                       thread_name_prefix="emulator-audio")
        self._made: dict[tuple, asyncio.Future] = {}
        self._users: dict[tuple, int] = {}

    def input_of(self, text: str, voice: Voice) -> tuple:
        if self.kind == "tone":
            # A tone as long as speech of the text, in half seconds: few encodings.
            return ("tone", max(1, min(120, round(len(text) / 7.5))) / 2)
        return ("speech", text, voice)

    @staticmethod
    def _make(what: tuple) -> MadeAudio:
        if what[0] == "tone":
            return MadeAudio(encode_mp3(tone_wav(what[1])), (), round(what[1] * 1000))
        from pipeline.audio import decode
        from pipeline.tts.local import LocalBackend

        speech = LocalBackend().synthesize(what[1], what[2])
        with wave.open(io.BytesIO(speech.data)) as w:
            rate = w.getframerate()
        mp3 = encode_mp3(speech.data)
        lead = round(MP3_LEAD_SAMPLES * 1000 / rate)
        marks = tuple((offset, ms + lead) for offset, ms in speech.marks)
        return MadeAudio(mp3, marks, len(decode(mp3, "mp3", rate)))

    def start(self, what: tuple) -> asyncio.Future:
        future = self._made.get(what)
        if future is None or (future.done() and future.exception() is not None):
            loop = asyncio.get_running_loop()
            future = asyncio.ensure_future(loop.run_in_executor(self.pool, self._make, what))
            self._made[what] = future
        self._users[what] = self._users.get(what, 0) + 1
        return future

    def release(self, what: tuple) -> None:
        """A task that used `what` is gone; the audio goes when no task uses it."""
        left = self._users.get(what, 0) - 1
        if left > 0:
            self._users[what] = left
            return
        self._users.pop(what, None)
        self._made.pop(what, None)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


# ---------------------------------------------------------------- HTTP


class Emulator:
    """The HTTP face of EmulatorState, with fault injection.

    clock: monotonic seconds. Tests pass a clock they move by hand, so that
    "still waiting" and "the rate bucket is empty" hold however slowly a
    loaded machine runs them.
    """

    def __init__(self, config: EmulatorConfig, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.clock = clock
        self.rng = random.Random(config.seed)
        self.state = EmulatorState(config, self.rng)
        self.audio = AudioMaker(config.audio_kind)
        self.outputs: dict[str, tuple[tuple, asyncio.Future]] = {}
        self.state.on_expire.append(self._forget)

    def _forget(self, task: Task) -> None:
        kept = self.outputs.pop(task.id, None)
        if kept is not None:
            self.audio.release(kept[0])

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(CREATE_PATH, self.create)
        app.router.add_post(GET_PATH, self.get)
        app.router.add_get(OUTPUT_PATH + "{job_id}", self.download)
        app.router.add_get(STATS_PATH, self.stats)
        app.router.add_get(TASKS_PATH + "{job_id}/boundaries", self.boundaries)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, _app) -> None:
        self.audio.close()

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def _api_fault(self, may_drop: bool) -> str | None:
        """A transport fault that strikes before the request takes effect.

        A create is never dropped: a client cannot tell a dropped create from
        one whose answer was lost after it was paid (--lost-response-rate), so
        that is not a fault it can safely retry. A create gets HTTP 500 from
        the same draws, so a seed's sequence does not depend on the endpoint.
        """
        if not self._roll(self.config.fault_rate):
            return None
        self.state.counters["faults_injected"] += 1
        fault = self.rng.choice(("http500", "drop"))
        return fault if may_drop else "http500"

    async def _answer(self, request: web.Request, handler,
                      may_drop: bool = True) -> web.StreamResponse:
        fault = self._api_fault(may_drop)
        if fault == "drop":
            return _drop(request)
        if fault == "http500":
            return web.Response(status=500, text="Internal Server Error")
        key = request.headers.get("api-key")
        refused = self.state.admit(key, self.clock())
        if refused:
            return _reply(refused)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _reply(PARAMETER_ERROR)
        return await handler(request, key, body)

    async def create(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, self._create, may_drop=False)

    async def _create(self, request: web.Request, key: str, body: dict) -> web.StreamResponse:
        code, data = self.state.create(key, body, self.clock())
        if code == OK and data is not None:
            task = self.state.tasks[data["job_id"]]
            if not task.fails:
                what = self.audio.input_of(task.text, task.voice)
                self.outputs[task.id] = (what, self.audio.start(what))
            if self._roll(self.config.lost_response_rate):
                # It took effect (and was paid for) but the client never hears so.
                self.state.counters["lost_responses"] += 1
                return _drop(request)
        return _reply(code, data)

    async def get(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, self._get)

    async def _get(self, request: web.Request, key: str, body: dict) -> web.StreamResponse:
        code, task = self.state.lookup(key, body)
        if task is None:
            return _reply(code)
        status = task.status(self.clock())
        output = f"{request.scheme}://{request.host}{OUTPUT_PATH}{task.id}" \
            if status == "success" else ""
        return _reply(OK, {"status": status, "output": output})

    async def download(self, request: web.Request) -> web.StreamResponse:
        counters = self.state.counters
        counters["downloads"] += 1
        if "api-key" in request.headers:
            counters["downloads_with_api_key"] += 1
        job_id = request.match_info["job_id"]
        self.state.settle(self.clock())
        task = self.state.tasks.get(job_id)
        if task is None or task.status(self.clock()) != "success":
            return web.Response(status=404, text="Not Found")
        fault = self._roll(self.config.fault_rate) and self.rng.choice(("http500", "drop",
                                                                          "truncate"))
        if fault:
            counters["faults_injected"] += 1
        if fault == "drop":
            return _drop(request)
        if fault == "http500":
            return web.Response(status=500, text="Internal Server Error")
        made = await self.outputs[job_id][1]
        return await _send(request, made.mp3, truncate=fault == "truncate")

    async def boundaries(self, request: web.Request) -> web.StreamResponse:
        """Where each sentence of a task's audio starts and ends, as made (not as guessed).

        Speech: eSpeak's own sentence marks (tts.base.Audio.marks). Tone: no
        sentences, so no marks. Unknown, expired, waiting or failed: 404.
        """
        job_id = request.match_info["job_id"]
        self.state.settle(self.clock())
        task = self.state.tasks.get(job_id)
        if task is None or task.status(self.clock()) != "success":
            return web.json_response({"error": "no finished task with that id"}, status=404)
        made = await self.outputs[job_id][1]
        starts = [ms for _, ms in made.marks]
        return web.json_response({
            "job_id": job_id, "audio": self.config.audio_kind, "text": task.text,
            "duration_ms": made.duration_ms,
            "marks": [list(mark) for mark in made.marks],
            "boundaries_ms": starts[1:],
            "sentences": [{"offset": offset, "text": task.text[offset:end_offset].strip(),
                           "start_ms": start, "end_ms": end}
                          for (offset, start), end_offset, end in zip(
                              made.marks, [o for o, _ in made.marks[1:]] + [len(task.text)],
                              starts[1:] + [made.duration_ms])],
        })

    async def stats(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response(self.state.stats(self.clock()))


def _reply(code: int, data: dict | None = None) -> web.Response:
    # The guide shows body codes only; we answer HTTP 200 with the code in the body.
    return web.json_response({"code": code, "data": data or {}, "message": MESSAGES[code]})


def _drop(request: web.Request) -> web.Response:
    """Close the connection without an answer; the client sees it dropped."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)


async def _send(request: web.Request, data: bytes, truncate: bool) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "audio/mpeg"})
    response.content_length = len(data)
    await response.prepare(request)
    if truncate:
        # Half the promised bytes, then hang up: a client must notice.
        await response.write(data[: len(data) // 2])
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write(data)
    await response.write_eof()
    return response


# ---------------------------------------------------------------- running it


async def start_site(emulator: Emulator, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Start serving; return the runner (to clean up) and the base URL."""
    runner = web.AppRunner(emulator.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound = runner.addresses[0]
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    return runner, f"http://{shown}:{bound[1]}"


def config_from_options(api_keys: Iterable[str] = (), **options) -> EmulatorConfig:
    return EmulatorConfig(api_keys=tuple(api_keys), **options)


def serve(host: str = "127.0.0.1", port: int = 8765, api_keys: Iterable[str] = (),
          credits: int = 1_000_000, latency: float = 1.0, rate_limit: float | None = None,
          concurrency: int | None = None, fail_rate: float = 0.0, fault_rate: float = 0.0,
          lost_response_rate: float = 0.0, seed: int | None = None,
          audio_kind: str = "speech", disabled_keys: Iterable[str] = (),
          unenabled_keys: Iterable[str] = (), task_ttl: float = 3600.0) -> None:
    """Run the emulator until Ctrl-C, after printing the URL it listens on."""
    config = config_from_options(api_keys, credits=credits, latency=latency,
                                 rate_limit=rate_limit, concurrency=concurrency,
                                 fail_rate=fail_rate, fault_rate=fault_rate,
                                 lost_response_rate=lost_response_rate, seed=seed,
                                 audio_kind=audio_kind, disabled_keys=tuple(disabled_keys),
                                 unenabled_keys=tuple(unenabled_keys), task_ttl=task_ttl)

    async def run() -> None:
        runner, url = await start_site(Emulator(config), host, port)
        # The one line a script waits for (and CI sets AUDIOCLEANER_BASE_URL from).
        print(f"Audio Cleaner emulator listening on {url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


class EmulatorThread:
    """The emulator on a free loopback port, in a background thread of this process.

    with EmulatorThread(EmulatorConfig(latency=0.1)) as emu:
        os.environ["AUDIOCLEANER_BASE_URL"] = emu.url
    """

    def __init__(self, config: EmulatorConfig | None = None, host: str = "127.0.0.1",
                 clock: Callable[[], float] = time.monotonic):
        self.config = config or EmulatorConfig()
        self.emulator = Emulator(self.config, clock)
        self.host = host
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="emulator", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            self._runner, self.url = await start_site(self.emulator, self.host, 0)
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self._runner.cleanup()

    def start(self) -> EmulatorThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stats(self) -> dict:
        """GET /_emulator/stats's answer, read on the server's own loop (no HTTP)."""

        async def read() -> dict:
            return self.emulator.state.stats(self.emulator.clock())

        return asyncio.run_coroutine_threadsafe(read(), self._loop).result(10)

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
