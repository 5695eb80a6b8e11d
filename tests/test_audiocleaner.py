"""The Audio Cleaner client: against the emulator over loopback HTTP, and
with httpx.MockTransport only for answers the emulator never gives."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import urllib.parse
from collections import Counter

import httpx
import pytest

from pipeline.book import Voice
from pipeline.errors import (
    EXIT_BUDGET,
    EXIT_INPUT,
    EXIT_RUNTIME,
    BudgetError,
    InputError,
    ServiceError,
)
from pipeline.tts import get_backend
from pipeline.tts.audiocleaner import (
    CREATE_PATH,
    GET_PATH,
    AudioCleanerBackend,
    AuthError,
    ConcurrencyLimitError,
    CreditCapError,
    CreditError,
    HostileOutputError,
    MemoryJournal,
    MissingKeyError,
    OutputError,
    PollDeadlineError,
    PollPolicy,
    RateLimitError,
    RetryPolicy,
    SegmentsUndoneError,
    ServerError,
    TaskFailedError,
    TransportError,
    UnexpectedResponseError,
    error_for_code,
    retry_delay,
)
from pipeline.tts.base import SynthesisRequest
from pipeline.tts.emulator import tone_wav
from pipeline.tts.http import Bounds, scrubber_for
from pipeline.tts.policy import SERVICE_DEADLINE, ServiceLimits, service_deadline
from tests.emulator_helpers import KEY, create, emulator

FAST_RETRY = RetryPolicy(base=0.01, cap=0.05)
FAST_POLL = PollPolicy(first=0.02)


def requests_for(n: int, length: int = 40) -> list[SynthesisRequest]:
    return [SynthesisRequest(f"key{i}", f"Segment {i}. " + "a" * max(0, length - 12),
                             Voice(2072), f"chapter 1 'One' (one.md, line {i + 1})")
            for i in range(n)]


def backend(url: str, **options) -> AudioCleanerBackend:
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("poll", FAST_POLL)
    return AudioCleanerBackend(KEY, url, **options)


def run(client: AudioCleanerBackend, requests, jobs: int = 4) -> dict:
    got = {}
    client.synthesize_all(requests, jobs, lambda r, a: got.setdefault(r.key, a))
    return got


class RecordingJournal(MemoryJournal):
    def __init__(self):
        super().__init__()
        self.events: list[tuple[str, str]] = []

    def set_pending(self, key, info):
        self.events.append(("set", key))
        super().set_pending(key, info)

    def drop_pending(self, key):
        self.events.append(("drop", key))
        super().drop_pending(key)


# ------------------------------------------------------------------ against the emulator


@pytest.mark.slow
def test_each_request_is_made_once_downloaded_checked_and_paid_by_the_guide():
    reqs = requests_for(5, length=150)
    with emulator(latency=0.05) as emu:
        client = backend(emu.url)
        got = run(client, reqs)
        stats = emu.stats()
    assert set(got) == {r.key for r in reqs}
    assert all(a.format == "mp3" and a.credits == 2 and len(a.data) > 1000 for a in got.values())
    assert stats["tasks_created"] == 5 and stats["credits_charged"] == 10
    assert stats["downloads_with_api_key"] == 0
    assert client.stats()["tasks_created"] == 5
    assert client.identity() == f"audiocleaner:{emu.url.rstrip('/')}"  # its own URL, not the env


@pytest.mark.slow
def test_a_task_is_journaled_before_its_first_poll_and_dropped_once_stored(monkeypatch):
    journal = RecordingJournal()
    order: list[tuple[str, str]] = []
    polled_unjournaled = []
    real_send = httpx.AsyncClient.send

    async def spying_send(self, request, **kw):
        if request.url.path == GET_PATH:
            job = json.loads(request.content)["global_id"]
            known = {info["job_id"] for info in journal._entries.values()}
            if job not in known:
                polled_unjournaled.append(job)
        return await real_send(self, request, **kw)

    monkeypatch.setattr(httpx.AsyncClient, "send", spying_send)
    reqs = requests_for(4)
    with emulator(latency=0.05) as emu:
        client = backend(emu.url, journal=journal)
        client.synthesize_all(reqs, 2, lambda r, a: order.append(("stored", r.key)))
    assert polled_unjournaled == []
    for r in reqs:
        events = [e for e in journal.events if e[1] == r.key]
        assert events == [("set", r.key), ("drop", r.key)]
    assert len(order) == 4 and journal.pending_keys() == set()


@pytest.mark.slow
def test_a_journaled_task_is_polled_not_paid_for_again():
    journal = MemoryJournal()
    reqs = requests_for(3)
    with emulator(latency=0.05) as emu:
        job = create(emu.url, reqs[0].text)["data"]["job_id"]
        journal.set_pending(reqs[0].key, {"job_id": job, "base_url": emu.url})
        client = backend(emu.url, journal=journal)
        got = run(client, reqs)
        stats = emu.stats()
    assert len(got) == 3 and stats["tasks_created"] == 3  # 1 before, 2 by the client
    assert client.stats()["tasks_resumed"] == 1 and client.stats()["tasks_created"] == 2
    assert journal.pending_keys() == set()


@pytest.mark.slow
def test_a_journal_entry_for_another_service_is_not_resumed():
    journal = MemoryJournal()
    reqs = requests_for(1)
    journal.set_pending(reqs[0].key, {"job_id": "abc", "base_url": "https://elsewhere.example"})
    with emulator(latency=0.02) as emu:
        client = backend(emu.url, journal=journal)
        run(client, reqs)
    assert client.stats()["tasks_resumed"] == 0 and client.stats()["tasks_created"] == 1


@pytest.mark.slow
def test_a_journaled_task_the_service_forgot_is_created_anew():
    journal = MemoryJournal()
    reqs = requests_for(1)
    with emulator(latency=0.02) as emu:
        journal.set_pending(reqs[0].key, {"job_id": "f" * 32, "base_url": emu.url})
        client = backend(emu.url, journal=journal)
        got = run(client, reqs)
    assert len(got) == 1 and client.stats()["tasks_created"] == 1


SUSPENDED, DORMANT = "key-7c1e-suspended", "key-93ab-dormant"


@pytest.mark.parametrize("key, code", [("key-5d2f-unknown", 101002), (SUSPENDED, 101005),
                                       (DORMANT, 101006)])
@pytest.mark.slow
def test_auth_errors_stop_at_once_without_retrying(key, code):
    with emulator(api_keys=(KEY, SUSPENDED, DORMANT), disabled_keys=(SUSPENDED,),
                  unenabled_keys=(DORMANT,)) as emu:
        client = AudioCleanerBackend(key, emu.url, retry=FAST_RETRY, poll=FAST_POLL)
        with pytest.raises(AuthError) as caught:
            run(client, requests_for(1), jobs=1)
        stats = emu.stats()
    assert caught.value.code == code and stats["requests"] == 1
    assert key not in str(caught.value)


@pytest.mark.slow
def test_no_credit_stops_the_build_saying_what_the_rest_needs():
    reqs = requests_for(5)  # 1 credit each
    with emulator(latency=0.02, credits=3) as emu:
        client = backend(emu.url)
        got = {}
        with pytest.raises(CreditError) as caught:
            client.synthesize_all(reqs, 1, lambda r, a: got.setdefault(r.key, a))
    error = caught.value
    assert isinstance(error, BudgetError) and error.exit_code == EXIT_BUDGET
    assert len(got) == 3
    assert "needs 2 credit(s) for 2 segment(s)" in str(error) and error.code == 100100


@pytest.mark.slow
def test_the_window_shrinks_to_the_service_concurrency_limit():
    reqs = requests_for(12)
    with emulator(latency=0.1, concurrency=2) as emu:
        client = backend(emu.url)
        got = run(client, reqs, jobs=8)
        stats = emu.stats()
    assert len(got) == 12 and stats["tasks_created"] == 12
    assert stats["max_concurrent_tasks"] == 2
    assert stats["rejected_concurrency"] >= 1 and client.stats()["throttled"] >= 1
    # 101004 is answered by waiting for a slot, not by hammering the service:
    assert stats["rejected_concurrency"] <= 12


@pytest.mark.slow
def test_rate_limit_answers_are_retried():
    reqs = requests_for(3)
    with emulator(latency=0.02, rate_limit=3) as emu:
        client = backend(emu.url)
        got = run(client, reqs, jobs=3)
        stats = emu.stats()
    assert len(got) == 3 and stats["tasks_created"] == 3
    assert stats["rejected_rate_limit"] >= 1 and client.stats()["throttled"] >= 1


@pytest.mark.slow
def test_a_task_that_keeps_failing_fails_the_build_naming_its_segment():
    reqs = requests_for(1)
    with emulator(latency=0.02, fail_rate=1.0) as emu:
        client = backend(emu.url, task_retries=2)
        with pytest.raises(TaskFailedError) as caught:
            run(client, reqs)
        stats = emu.stats()
    assert "chapter 1 'One' (one.md, line 1)" in str(caught.value)
    assert stats["tasks_created"] == 3 and stats["credits_charged"] == 0


@pytest.mark.slow
def test_failures_and_faults_still_make_each_segment_exactly_once():
    # 40 tasks: 20% failures surely strike (0.8^40 < 0.01%) in any order of draws.
    reqs = requests_for(40)
    with emulator(latency=0.03, fail_rate=0.2, fault_rate=0.1, seed=5) as emu:
        client = backend(emu.url)
        got = run(client, reqs, jobs=6)
        stats = emu.stats()
    assert len(got) == 40
    assert stats["tasks_succeeded"] == 40 and stats["credits_charged"] == 40
    assert stats["tasks_failed"] >= 1 and stats["faults_injected"] >= 1
    assert client.stats()["retries"] >= 1 and client.stats()["tasks_failed_retried"] >= 1


@pytest.mark.slow
def test_retries_of_creates_that_may_have_taken_effect_are_counted():
    reqs = requests_for(6)
    # Seed 0 loses 3 answers, never two of one segment (seed 2 did: that segment is now
    # left undone, see test_a_service_losing_every_create_answer_...).
    with emulator(latency=0.02, lost_response_rate=0.4, seed=0) as emu:
        client = backend(emu.url)
        got = run(client, reqs, jobs=1)  # one at a time: the seed then fixes which answers are lost
        stats = emu.stats()
    assert len(got) == 6 and stats["lost_responses"] >= 1
    assert client.stats()["create_retries_that_may_have_taken_effect"] == stats["lost_responses"]
    assert stats["tasks_created"] == 6 + stats["lost_responses"]  # the case no client can fix


@pytest.mark.slow
def test_the_poll_deadline_names_the_task_and_keeps_it_journaled():
    journal = MemoryJournal()
    reqs = requests_for(1)
    with emulator(latency=10.0) as emu:
        client = backend(emu.url, journal=journal, poll=PollPolicy(first=0.02, deadline=0.3))
        with pytest.raises(PollDeadlineError) as caught:
            run(client, reqs)
    job = journal.pending(reqs[0].key)["job_id"]
    assert job in str(caught.value) and caught.value.job_id == job


@pytest.mark.slow
def test_the_key_never_reaches_logs_or_errors(caplog):
    caplog.set_level(logging.DEBUG)
    with emulator(latency=0.02, fail_rate=0.3, fault_rate=0.2, seed=9) as emu:
        run(backend(emu.url), requests_for(8))
    with emulator(api_keys=("other",)) as emu, pytest.raises(AuthError) as caught:
        run(backend(emu.url), requests_for(1))
    assert "retrying" in caplog.text or "failed" in caplog.text  # the run did log
    assert KEY not in caplog.text and KEY not in str(caught.value)
    assert KEY not in repr(backend("http://127.0.0.1:1"))


def test_the_key_comes_from_the_environment_only(monkeypatch):
    with pytest.raises(MissingKeyError) as caught:
        get_backend("audiocleaner", genders={1: 2}, journal=MemoryJournal())
    assert caught.value.exit_code == EXIT_INPUT and "AUDIOCLEANER_API_KEY" in str(caught.value)
    monkeypatch.setenv("AUDIOCLEANER_API_KEY", KEY)
    monkeypatch.setenv("AUDIOCLEANER_BASE_URL", "http://127.0.0.1:9/")
    client = get_backend("audiocleaner", genders={1: 2}, journal=MemoryJournal())
    assert client.base_url == "http://127.0.0.1:9"
    assert client.identity() == "audiocleaner:http://127.0.0.1:9"


@pytest.mark.slow
def test_an_unreachable_service_is_a_transport_error():
    client = backend("http://127.0.0.1:9")
    with pytest.raises(TransportError) as caught:
        run(client, requests_for(1))
    assert not caught.value.maybe_took_effect  # refused: surely not created
    assert client.stats()["create_retries_that_may_have_taken_effect"] == 0


# ------------------------------------------------------------------ what the emulator never says

WAV = tone_wav(0.5)


class FakeService:
    """A scripted service: create answers in order, then polls, then the file."""

    def __init__(self, creates=None, polls=None, files=None):
        self.creates = list(creates or [_ok({"job_id": "j1"})])
        self.polls = list(polls or [_ok({"status": "success", "output": "https://cdn.test/f"})])
        self.files = list(files or [httpx.Response(200, content=WAV)])
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        script = {CREATE_PATH: self.creates, GET_PATH: self.polls}.get(request.url.path,
                                                                      self.files)
        return script.pop(0) if len(script) > 1 else script[0]

    def count(self, path: str) -> int:
        return sum(1 for r in self.seen if r.url.path == path)


def _ok(data: dict) -> httpx.Response:
    return httpx.Response(200, json={"code": 100000, "data": data, "message": "Request Success"})


def _code(code: int, message: str = "whatever") -> httpx.Response:
    return httpx.Response(200, json={"code": code, "data": {}, "message": message})


def fake(service: FakeService, **options) -> AudioCleanerBackend:
    return backend("https://api.test", transport=httpx.MockTransport(service), **options)


def test_output_host_gets_no_key_and_format_comes_from_bytes():
    service = FakeService(polls=[_ok({"status": "success", "output": "https://cdn.test/x.mp3"})])
    got = run(fake(service), requests_for(1))
    assert got["key0"].format == "wav"  # the URL said mp3; the bytes say wav
    for request in service.seen:
        assert ("api-key" in request.headers) == (request.url.host == "api.test")


def test_the_api_client_does_not_follow_redirects_with_the_key():
    service = FakeService(creates=[httpx.Response(302, headers={"location": "https://evil.test/"})])
    with pytest.raises(UnexpectedResponseError) as caught:
        run(fake(service), requests_for(1))
    assert caught.value.http_status == 302
    assert all(r.url.host == "api.test" for r in service.seen)


def test_a_non_json_answer_keeps_status_and_body():
    service = FakeService(creates=[httpx.Response(403, text="<html>Forbidden</html>")])
    with pytest.raises(UnexpectedResponseError) as caught:
        run(fake(service), requests_for(1))
    assert caught.value.http_status == 403 and "Forbidden" in str(caught.value)
    assert service.count(CREATE_PATH) == 1


@pytest.mark.slow
def test_http_5xx_is_retried_then_reported():
    service = FakeService(creates=[httpx.Response(503, text="busy")])
    with pytest.raises(ServerError) as caught:
        run(fake(service), requests_for(1))
    assert caught.value.http_status == 503
    assert service.count(CREATE_PATH) == FAST_RETRY.max_retries + 1


def test_an_unknown_code_keeps_the_raw_code_and_message_and_is_not_retried():
    service = FakeService(creates=[_code(123456, "Something new")])
    with pytest.raises(UnexpectedResponseError) as caught:
        run(fake(service), requests_for(1))
    assert caught.value.code == 123456 and "Something new" in str(caught.value)
    assert service.count(CREATE_PATH) == 1


def test_retry_after_is_honoured_on_429():
    service = FakeService(creates=[httpx.Response(429, headers={"retry-after": "0"}),
                                   _ok({"job_id": "j1"})])
    got = run(fake(service), requests_for(1))
    assert len(got) == 1 and service.count(CREATE_PATH) == 2


def test_an_unknown_status_is_neither_success_nor_endless():
    service = FakeService(polls=[_ok({"status": "mystery", "output": "https://cdn.test/f"})])
    with pytest.raises(UnexpectedResponseError) as caught:
        run(fake(service, poll=PollPolicy(first=0.01, unknown_status_limit=3)), requests_for(1))
    assert "mystery" in str(caught.value) and caught.value.job_id == "j1"
    assert service.count(GET_PATH) == 4 and service.count("/f") == 0


def test_success_without_an_output_is_not_success():
    service = FakeService(polls=[_ok({"status": "success", "output": ""})])
    with pytest.raises(UnexpectedResponseError):
        run(fake(service, poll=PollPolicy(first=0.01, unknown_status_limit=2)), requests_for(1))
    assert service.count("/f") == 0


def test_status_error_counts_as_a_failed_task():
    service = FakeService(polls=[_ok({"status": "error", "output": ""}),
                                 _ok({"status": "success", "output": "https://cdn.test/f"})])
    got = run(fake(service), requests_for(1))
    assert len(got) == 1 and service.count(CREATE_PATH) == 2


@pytest.mark.slow
def test_output_that_is_not_audio_is_refused():
    service = FakeService(files=[httpx.Response(200, text="<html>expired</html>")])
    with pytest.raises(OutputError) as caught:
        run(fake(service), requests_for(1))
    assert caught.value.job_id == "j1"


def test_a_key_echoed_by_the_service_is_scrubbed():
    service = FakeService(creates=[_code(101002, f"Invalid API key {KEY}")])
    with pytest.raises(AuthError) as caught:
        run(fake(service), requests_for(1))
    assert KEY not in str(caught.value) and KEY not in (caught.value.raw_message or "")


# ------------------------------------------------------------------ the retry policy


def _error(code: int, retry_after=None):
    return error_for_code(code, "m", 200, retry_after)


def test_retry_policy_decides_what_is_retryable():
    policy = RetryPolicy()
    for code in (100100, 101002, 101005, 101006, 101008, 100002, 999):
        assert retry_delay(policy, _error(code), 0) is None
    assert isinstance(_error(101003), RateLimitError)
    assert isinstance(_error(101004), ConcurrencyLimitError)
    assert retry_delay(policy, _error(101003), 0) is not None
    assert retry_delay(policy, ServerError("x"), policy.max_retries) is None
    assert retry_delay(policy, ValueError("not ours"), 0) is None
    assert isinstance(_error(101002), ServiceError)


def test_backoff_doubles_with_jitter_up_to_a_cap_and_honours_retry_after():
    policy = RetryPolicy(base=0.5, cap=8.0)
    for attempt, full in [(0, 0.5), (1, 1.0), (3, 4.0), (4, 8.0), (6, 8.0)]:
        delays = [retry_delay(policy, _error(101003), attempt) for _ in range(50)]
        assert all(0.75 * full <= d <= full for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert retry_delay(policy, _error(101003, retry_after=3.0), 0) == 3.0
    assert retry_delay(policy, _error(101003, retry_after=999.0), 0) == 120.0


def test_a_fresh_task_the_service_never_finds_fails_naming_it():
    service = FakeService(polls=[_code(101008, "Task not found")])
    with pytest.raises(UnexpectedResponseError) as caught:
        run(fake(service, poll=PollPolicy(first=0.01, unknown_status_limit=2)), requests_for(1))
    assert caught.value.job_id == "j1" and "not found" in str(caught.value)
    assert service.count(CREATE_PATH) == 1  # never paid for twice


def test_needs_retry_is_retried_and_parameter_errors_are_not():
    retried = FakeService(creates=[_code(100099), _ok({"job_id": "j1"})])
    assert len(run(fake(retried), requests_for(1))) == 1
    refused = FakeService(creates=[_code(100002, "Parameter error")])
    with pytest.raises(ServiceError) as caught:
        run(fake(refused), requests_for(1))
    assert caught.value.code == 100002 and refused.count(CREATE_PATH) == 1


def test_retry_after_may_be_an_http_date():
    from pipeline.tts.audiocleaner import _retry_after

    assert _retry_after(httpx.Response(429, headers={"retry-after": "2"})) == 2.0
    past = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert _retry_after(httpx.Response(429, headers={"retry-after": past})) == 0.0
    assert _retry_after(httpx.Response(429, headers={"retry-after": "soon"})) is None


# ------------------------------------------------------------------ paying once, within the cap


@pytest.mark.slow
def test_creates_that_may_have_been_paid_count_against_max_credits():
    reqs = requests_for(12)  # 1 credit each: the plan fits the cap exactly
    # Seed 0: 3 answers lost, none twice for one segment (as with seed 2 before each
    # segment's lost creates were limited to one retry).
    with emulator(latency=0.02, lost_response_rate=0.4, seed=0) as emu:
        client = backend(emu.url, max_credits=12)
        with pytest.raises(CreditCapError) as caught:
            run(client, reqs, jobs=1)
        stats = emu.stats()
    assert stats["lost_responses"] >= 1  # it was tested
    assert stats["credits_charged"] <= 12  # stopped before the cap, not after
    assert client.stats()["credits_maybe_charged"] == stats["lost_responses"]
    assert caught.value.exit_code == EXIT_BUDGET and "--max-credits 12" in str(caught.value)


@pytest.mark.slow
def test_a_service_losing_every_create_answer_gets_each_segment_at_most_twice_then_none():
    reqs = requests_for(6)
    with emulator(latency=0.02, lost_response_rate=1.0, audio_kind="tone") as emu:
        client = backend(emu.url)
        with pytest.raises(SegmentsUndoneError) as caught:
            run(client, reqs, jobs=2)
        stats = emu.stats()
        sent = Counter(task.text for task in emu.emulator.state.tasks.values())
    # The two segments in flight lost their answers, each was sent once more at most, and
    # the second loss stopped every create: the other four were never sent.
    assert set(sent) <= {reqs[0].text, reqs[1].text} and max(sent.values()) == 2
    assert stats["lost_responses"] == stats["tasks_created"] == sum(sent.values())
    mine = client.stats()
    assert mine["credits_maybe_charged"] == stats["credits_charged"]  # each counted once
    assert mine["segments_maybe_charged"] == len(sent)
    undone = dict(caught.value.undone)
    assert set(undone) == {r.label for r in reqs} and caught.value.exit_code == EXIT_RUNTIME
    assert [undone[r.label] for r in reqs[2:]] == \
        ["not started: Audio Cleaner is losing create answers"] * 4
    assert undone[reqs[0].label] == "its create answer was lost twice" or \
        undone[reqs[1].label] == "its create answer was lost twice"
    assert f"up to {stats['credits_charged']} credit(s) may have been charged" in \
        str(caught.value)


@pytest.mark.slow
def test_a_lost_create_is_not_sent_again_past_max_credits_and_only_its_segment_waits():
    with emulator(latency=0.02, lost_response_rate=1.0, audio_kind="tone") as emu:
        client = backend(emu.url, max_credits=1)
        with pytest.raises(SegmentsUndoneError) as caught:  # not CreditCapError: exit 1
            run(client, requests_for(1))
        stats = emu.stats()
    assert stats["tasks_created"] == 1 and stats["credits_charged"] == 1  # within the cap
    assert "sending it again could pass --max-credits 1" in str(caught.value)
    assert client.stats()["credits_maybe_charged"] == 1


@pytest.mark.slow
def test_past_the_service_deadline_no_create_starts_and_tasks_already_created_are_stored():
    reqs = requests_for(6)
    got: dict = {}
    # The deadline passes when the first create is answered: an event, not a time. With
    # jobs=2 both first creates are sent before any answer can arrive; none may follow.
    limits = ServiceLimits(1.0, clock=lambda: 10.0 if client.counters["tasks_created"] else 0.0)
    with emulator(latency=0.3, audio_kind="tone") as emu:
        client = backend(emu.url, limits=limits)
        with pytest.raises(SegmentsUndoneError) as caught:
            client.synthesize_all(reqs, 2, lambda r, a: got.setdefault(r.key, a))
        stats = emu.stats()
    assert stats["tasks_created"] == 2 and set(got) == {reqs[0].key, reqs[1].key}
    assert client.stats()["polls"] >= 2  # polled after the deadline, as paid tasks are
    assert caught.value.undone == [(r.label, "not started: the service deadline passed")
                                   for r in reqs[2:]]
    assert "the service deadline of 1s passed" in str(caught.value)
    assert caught.value.exit_code == EXIT_RUNTIME


def test_the_service_deadline_comes_from_the_option_else_the_environment(monkeypatch):
    monkeypatch.delenv("AUDIOBOOK_SERVICE_DEADLINE", raising=False)
    assert service_deadline() == SERVICE_DEADLINE == 3 * 3600
    monkeypatch.setenv("AUDIOBOOK_SERVICE_DEADLINE", "60")
    assert service_deadline() == 60 and service_deadline(5) == 5
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv("AUDIOBOOK_SERVICE_DEADLINE", bad)
        with pytest.raises(InputError) as caught:
            service_deadline()
        assert caught.value.exit_code == EXIT_INPUT
        assert "AUDIOBOOK_SERVICE_DEADLINE" in str(caught.value)


def test_max_credits_reaches_the_backend_from_the_registry(monkeypatch):
    monkeypatch.setenv("AUDIOCLEANER_API_KEY", KEY)
    client = get_backend("audiocleaner", genders={}, journal=MemoryJournal(), max_credits=7)
    assert client.max_credits == 7


class SharedJournal(MemoryJournal):
    """Two clients' shared cache: the lease, the journal, and which audio is stored."""

    def __init__(self):
        super().__init__()
        self.stored: set[str] = set()

    def __contains__(self, key):
        return key in self.stored


@pytest.mark.slow
def test_two_builds_sharing_a_journal_pay_once_per_segment():
    journal = SharedJournal()
    reqs = requests_for(10)
    got: list[dict] = [{}, {}]
    errors: list[BaseException] = []
    with emulator(latency=0.3) as emu:
        clients = [backend(emu.url, journal=journal) for _ in range(2)]

        def build(i: int) -> None:
            def store(request, audio):
                journal.stored.add(request.key)
                got[i][request.key] = audio
            try:
                clients[i].synthesize_all(reqs, 4, store)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=build, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        stats = emu.stats()
    assert errors == []
    assert stats["tasks_created"] == 10 and stats["credits_charged"] == 10
    assert set(got[0]) | set(got[1]) == {r.key for r in reqs}
    assert sum(a.credits for g in got for a in g.values()) == 10  # nobody claims another's pay
    waited = sum(c.stats()["tasks_shared"] + c.stats()["segments_made_elsewhere"] for c in clients)
    assert waited >= 1


@pytest.mark.slow
def test_a_resume_only_request_polls_its_journaled_task_and_never_creates():
    journal = MemoryJournal()
    with emulator(latency=0.05) as emu:
        job = create(emu.url, "Hello there, resumed.")["data"]["job_id"]
        journal.set_pending("k1", {"job_id": job, "base_url": emu.url, "credits": 1})
        reqs = [SynthesisRequest("k1", "", Voice(2072), "chapter 1, line 1"),
                SynthesisRequest("k2", "", Voice(2072), "chapter 1, line 3")]
        client = backend(emu.url, journal=journal)
        got = run(client, reqs)
        stats = emu.stats()
    assert set(got) == {"k1"} and got["k1"].credits == 1
    assert stats["tasks_created"] == 1  # the test's own; the client made none
    assert client.stats()["resume_only_skipped"] == 1 and journal.pending_keys() == set()


# ------------------------------------------------------------------ bounds (see also test_hostile.py)


def test_a_download_over_its_cap_is_refused_once_without_retry():
    service = FakeService(files=[httpx.Response(200, content=b"ID3" + bytes(12 << 20))])
    with pytest.raises(HostileOutputError) as caught:
        run(fake(service), requests_for(1))  # 40 characters: an 11.6 MB cap
    assert "cap" in str(caught.value) and caught.value.job_id == "j1"
    assert service.count("/f") == 1


def test_an_answer_slower_than_the_deadline_times_out_and_may_have_paid():
    tries = {"started": 0, "answered": 0}

    async def never(request: httpx.Request) -> httpx.Response:
        tries["started"] += 1
        await asyncio.sleep(120)  # only the deadline ends this (the test's hang guard: 300 s)
        tries["answered"] += 1
        return _ok({"job_id": "j1"})

    client = backend("https://api.test", transport=httpx.MockTransport(never),
                     bounds=Bounds(deadline=0.1), retry=RetryPolicy(base=0.01))
    with pytest.raises(SegmentsUndoneError) as caught:
        run(client, requests_for(1))
    # Eight retries allowed, yet a create whose answer never came is sent twice at most.
    assert tries == {"started": 2, "answered": 0}  # both tries cut by the deadline
    assert "no complete answer within the 0.1s deadline" in str(caught.value)
    assert client.stats()["credits_maybe_charged"] == 2  # each try may have created a task
    assert client.stats()["create_retries_that_may_have_taken_effect"] == 2  # of 8 retries


def test_the_scrubber_removes_every_form_of_the_key():
    key = "k/y+z 'q\\1"
    scrub = scrubber_for(key)
    for form in (key, repr(key)[1:-1], urllib.parse.quote(key, safe=""),
                 urllib.parse.quote_plus(key), repr(key.encode())[2:-1]):
        assert scrub(f"echo <{form}>") == "echo <[api-key]>", form


def test_audio_far_longer_than_its_text_is_refused_and_not_stored():
    service = FakeService(files=[httpx.Response(200, content=tone_wav(75.0))])
    got: dict = {}
    client = fake(service)
    with pytest.raises(HostileOutputError) as caught:
        client.synthesize_all(requests_for(1), 1, lambda r, a: got.setdefault(r.key, a))
    assert "not your text" in str(caught.value) and got == {}
    assert service.count("/f") == 1  # the same file again would say the same
