"""The emulator over real loopback HTTP: each documented code, the task
lifecycle, billing, limits, faults, and its command line."""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import pytest

from pipeline.audio import check_audio
from pipeline.tts.base import detect_format
from pipeline.tts.emulator import (
    CREATE_PATH,
    GET_PATH,
    OUTPUT_PATH,
    EmulatorConfig,
    EmulatorState,
)
from tests.emulator_helpers import (
    KEY,
    ManualClock,
    create,
    emulator,
    emulator_process,
    get,
    http,
    post,
    wait_for,
)

TEXT_250 = "x" * 250  # 3 credits


def test_task_waits_then_succeeds_with_an_output_it_serves():
    clock = ManualClock()
    with emulator(latency=0.25, clock=clock) as emu:
        made = create(emu.url, "Hello from the emulator.")
        assert made["code"] == 100000 and made["message"] == "Request Success"
        job = made["data"]["job_id"]
        clock.advance(0.125)
        assert get(emu.url, job)["data"] == {"status": "waiting", "output": ""}
        clock.advance(0.125)
        answer = get(emu.url, job)["data"]
        assert answer["status"] == "success"
        assert OUTPUT_PATH in answer["output"] and "/audio/api/" not in answer["output"]
        audio = http.get(answer["output"])  # no key needed
        assert audio.status_code == 200 and detect_format(audio.content) == "mp3"
        assert check_audio(audio.content, "mp3") > 0.5  # real speech, not a click
        stats = emu.stats()
    assert stats["tasks_created"] == 1 and stats["tasks_succeeded"] == 1
    assert stats["credits_charged"] == 1 and stats["balance"] == 1_000_000 - 1
    assert stats["downloads_with_api_key"] == 0


def test_downloads_that_carry_the_key_are_counted():
    with emulator(latency=0.0, audio_kind="tone") as emu:
        job = create(emu.url)["data"]["job_id"]
        output = get(emu.url, job)["data"]["output"]
        http.get(output, headers={"api-key": KEY})
        http.get(output)
        stats = emu.stats()
    assert stats["downloads"] == 2 and stats["downloads_with_api_key"] == 1


@pytest.mark.parametrize("key, code", [(None, 101002), ("", 101002), ("stranger", 101002),
                                       ("suspended", 101005), ("dormant", 101006)])
def test_key_check(key, code):
    with emulator(api_keys=(KEY, "suspended", "dormant"), disabled_keys=("suspended",),
                  unenabled_keys=("dormant",)) as emu:
        assert create(emu.url, key=key)["code"] == code
        assert get(emu.url, "whatever", key=key)["code"] == code
        assert create(emu.url)["code"] == 100000
        assert emu.stats()["tasks_created"] == 1


def test_any_non_empty_key_is_accepted_by_default():
    with emulator() as emu:
        assert create(emu.url, key="anything")["code"] == 100000
        assert create(emu.url, key="")["code"] == 101002


def test_rate_limit_per_key():
    clock = ManualClock()
    with emulator(rate_limit=2, audio_kind="tone", clock=clock) as emu:
        codes = [create(emu.url)["code"] for _ in range(3)]
        assert codes == [100000, 100000, 101003]
        assert get(emu.url, "x")["code"] == 101003  # polls count too
        assert create(emu.url, key="other-key")["code"] == 100000  # per key
        clock.advance(0.5)
        assert create(emu.url)["code"] == 100000  # the bucket refills: 2 a second
        assert create(emu.url)["code"] == 101003  # by one token in half a second


def test_concurrency_limit_counts_waiting_tasks_per_key():
    clock = ManualClock()
    with emulator(latency=0.25, concurrency=2, audio_kind="tone", clock=clock) as emu:
        assert [create(emu.url)["code"] for _ in range(3)] == [100000, 100000, 101004]
        assert create(emu.url, key="other-key")["code"] == 100000
        clock.advance(0.125)
        assert create(emu.url)["code"] == 101004  # both still waiting
        clock.advance(0.125)
        assert create(emu.url)["code"] == 100000  # finished tasks free their slots
        stats = emu.stats()
    assert stats["max_concurrent_tasks"] == 2 and stats["tasks_created"] == 4


def test_credits_are_reserved_at_create_and_short_balance_is_100100():
    with emulator(credits=5, latency=0.1) as emu:
        assert create(emu.url, TEXT_250)["code"] == 100000
        short = create(emu.url, TEXT_250)
        assert short["code"] == 100100 and short["message"] == "Insufficient credit balance"
        assert create(emu.url, "x" * 200)["code"] == 100000  # exactly the 2 left
        stats = emu.stats()
    assert stats["balance"] == 0 and stats["credits_charged"] == 5 and stats["tasks_created"] == 2


def test_a_failed_task_is_refunded():
    clock = ManualClock()
    with emulator(credits=10, latency=0.25, fail_rate=1.0, clock=clock) as emu:
        job = create(emu.url, TEXT_250)["data"]["job_id"]
        assert emu.stats()["balance"] == 7  # reserved while it waits
        clock.advance(0.25)
        assert get(emu.url, job)["data"] == {"status": "failed", "output": ""}
        stats = emu.stats()
        assert http.get(f"{emu.url}{OUTPUT_PATH}{job}").status_code == 404
    assert stats["balance"] == 10 and stats["credits_charged"] == 0
    assert stats["tasks_failed"] == 1 and stats["tasks_succeeded"] == 0


def test_unknown_and_foreign_ids_are_not_found():
    with emulator() as emu:
        job = create(emu.url, key="owner")["data"]["job_id"]
        assert get(emu.url, job, key="owner")["code"] == 100000
        assert get(emu.url, job, key="someone-else")["code"] == 101008
        assert get(emu.url, "0" * 32)["code"] == 101008
        answer = get(emu.url, "nope")
        assert answer["message"] == "Task not found"


@pytest.mark.parametrize("body", [{}, {"text": "hi"}, {"voice_id": "2072", "emotion": 0,
                                                      "speed": 1, "language": "en", "text": "hi"},
                                  {"voice_id": 1, "emotion": 0, "speed": 1, "language": "en",
                                   "text": "   "}])
def test_bad_parameters_are_refused_without_charge(body):
    with emulator() as emu:
        assert post(emu.url, CREATE_PATH, body)["code"] == 100002
        assert post(emu.url, GET_PATH, {})["code"] == 100002
        assert emu.stats()["tasks_created"] == 0


def _attempt(emu_url: str, path: str = CREATE_PATH) -> tuple[str, dict | None]:
    """What one create (or poll) does under fault injection: ok (with the answer), http500
    or drop."""
    body = {"voice_id": 1, "emotion": 0, "speed": 1, "language": "en", "text": "hi"} \
        if path == CREATE_PATH else {"global_id": "0" * 32}
    try:
        response = http.post(emu_url + path, json=body, headers={"api-key": KEY})
    except httpx.TransportError:  # a dropped keep-alive connection may read as a reset
        return "drop", None
    return ("http500", None) if response.status_code == 500 else ("ok", response.json())


def _outcome(emu_url: str) -> str:
    return _attempt(emu_url)[0]


def test_api_faults_strike_before_the_request_takes_effect():
    with emulator(fault_rate=1.0, seed=3) as emu:
        creates = {_outcome(emu.url) for _ in range(30)}
        polls = {_attempt(emu.url, GET_PATH)[0] for _ in range(30)}
        stats = emu.stats()
    # A dropped create is --lost-response-rate's case: no client could tell it from a paid
    # create whose answer was lost, so it is not a fault a client can safely retry.
    assert creates == {"http500"} and polls == {"http500", "drop"}
    assert stats["tasks_created"] == 0 and stats["credits_charged"] == 0
    assert stats["faults_injected"] == 60


def test_downloads_can_be_truncated_dropped_or_fail():
    seen = set()
    with emulator(latency=0.0, fault_rate=0.5, seed=11, audio_kind="tone") as emu:
        answer = None
        while answer is None:
            answer = _attempt(emu.url)[1]
        job = answer["data"]["job_id"]
        url = f"{emu.url}{OUTPUT_PATH}{job}"
        for _ in range(60):
            try:
                response = http.get(url)
                seen.add("ok" if response.status_code == 200 else f"http{response.status_code}")
            except httpx.TransportError as exc:
                seen.add("truncated" if "complete message body" in str(exc) else "drop")
    assert seen == {"ok", "http500", "drop", "truncated"}


def test_lost_response_takes_effect_and_is_paid():
    with emulator(lost_response_rate=1.0, latency=0.05) as emu:
        assert _outcome(emu.url) == "drop"
        stats = emu.stats()
    assert stats["tasks_created"] == 1 and stats["credits_charged"] == 1
    assert stats["lost_responses"] == 1


@pytest.mark.slow
def test_seed_repeats_the_same_failures():
    def outcomes(seed: int) -> list[str]:
        with emulator(latency=0.0, fail_rate=0.5, seed=seed, audio_kind="tone") as emu:
            jobs = [create(emu.url)["data"]["job_id"] for _ in range(16)]
            return [get(emu.url, j)["data"]["status"] for j in jobs]

    first, again, other = outcomes(7), outcomes(7), outcomes(8)
    assert first == again and set(first) == {"success", "failed"}
    assert first != other


def test_state_settles_by_time_alone():
    state = EmulatorState(EmulatorConfig(latency=1.0, concurrency=1, fail_rate=1.0, credits=3),
                          random.Random(1))
    body = {"voice_id": 1, "emotion": 0, "speed": 1, "language": "en", "text": "hi"}
    assert state.create("k", body, now=0.0)[0] == 100000
    assert state.create("k", body, now=0.5)[0] == 101004
    assert state.stats(now=0.99)["balance"] == 2
    assert state.create("k", body, now=1.0)[0] == 100000
    assert state.stats(now=1.0)["tasks_failed"] == 1


@pytest.mark.slow
def test_holds_hundreds_of_concurrent_polls():
    """500 polls in flight at once, each answered. How fast: benchmarks/bench_bounds.py."""
    # aiohttp's client for the load: httpx's pool is itself slow past ~100 connections.
    import aiohttp

    with emulator(latency=30.0, audio_kind="tone", clock=ManualClock()) as emu:
        jobs = [create(emu.url, key=f"key-{i % 7}")["data"]["job_id"] for i in range(49)]

        async def poll_all() -> list[int]:
            connector = aiohttp.TCPConnector(limit=500)
            async with aiohttp.ClientSession(connector=connector) as session:
                async def one(i: int) -> int:
                    async with session.post(emu.url + GET_PATH, json={"global_id": jobs[i % 49]},
                                            headers={"api-key": f"key-{i % 49 % 7}"}) as answer:
                        return (await answer.json())["code"]
                return await asyncio.gather(*(one(i) for i in range(500)))

        codes = asyncio.run(poll_all())
        assert emu.stats()["tasks_waiting"] == 49
    assert codes == [100000] * 500


@pytest.mark.slow
def test_command_line_prints_its_url_and_serves():
    with emulator_process("--latency", "0.05", "--api-key", KEY, "--audio", "tone",
                          "--concurrency", "3", "--seed", "1") as (_proc, url):
        assert url.startswith("http://127.0.0.1:")
        assert create(url, key="wrong")["code"] == 101002
        job = create(url)["data"]["job_id"]
        output = wait_for(lambda: get(url, job)["data"]["output"], timeout=60)
        assert detect_format(http.get(output).content) == "mp3"
        stats = http.get(url + "/_emulator/stats").json()
    for field in ("tasks_created", "tasks_succeeded", "tasks_failed", "credits_charged",
                  "balance", "max_concurrent_tasks", "downloads_with_api_key"):
        assert field in stats
    assert stats["tasks_created"] == 1 and stats["tasks_succeeded"] == 1


# ---------------------------------------------------------------- F19: fidelity and memory

GOOD = {"voice_id": 2072, "emotion": 0, "speed": 1, "language": "en", "text": "hi"}


@pytest.mark.parametrize("change", [
    {"speed": float("nan")}, {"speed": float("inf")}, {"speed": 1e308}, {"speed": -5},
    {"speed": 0.49}, {"speed": 2.01}, {"emotion": 99}, {"emotion": -1}, {"emotion": 1.5},
    {"voice_id": -1}, {"voice_id": 0}, {"voice_id": 2072.5}, {"language": "xx"},
    {"language": "EN"}, {"voice_id": 10 ** 400},
])
def test_out_of_range_parameters_are_100002_and_cost_nothing(change):
    with emulator(latency=0.0, audio_kind="tone") as emu:
        # Raw JSON: NaN and Infinity are what a careless client's json.dumps sends.
        answer = http.post(emu.url + CREATE_PATH, content=json.dumps({**GOOD, **change}),
                           headers={"api-key": KEY, "Content-Type": "application/json"}).json()
        stats = emu.stats()
    assert answer["code"] == 100002, answer
    assert stats["tasks_created"] == 0 and stats["credits_charged"] == 0
    assert stats["balance"] == 1_000_000


def test_the_edges_of_the_ranges_are_accepted():
    with emulator(latency=0.0, audio_kind="tone") as emu:
        for change in ({"speed": 0.5}, {"speed": 2}, {"emotion": 8}, {"voice_id": 1},
                       {"language": "zh_yue"}, {"language": "all"}):
            assert post(emu.url, CREATE_PATH, {**GOOD, **change})["code"] == 100000, change


def test_finished_tasks_and_their_outputs_are_forgotten_after_the_ttl():
    clock = ManualClock()
    with emulator(latency=0.0, task_ttl=1.5, audio_kind="tone", clock=clock) as emu:
        first = create(emu.url, "Distinct text number one.")["data"]["job_id"]
        output = get(emu.url, first)["data"]["output"]
        assert http.get(output).status_code == 200
        for i in range(19):
            create(emu.url, f"Distinct text number {i} and more.")
        clock.advance(1.25)
        assert emu.stats()["tasks_kept"] == 20
        clock.advance(0.25)
        assert emu.stats()["tasks_kept"] == 0
        assert get(emu.url, first)["code"] == 101008  # as any unknown id
        assert http.get(output).status_code == 404
        assert emu.stats()["tasks_expired"] == 20
        # Nothing else holds on to the audio either: memory stays bounded.
        assert emu.emulator.outputs == {} and emu.emulator.audio._made == {}


def test_a_task_is_kept_while_waiting_and_for_the_ttl_after_it_ends():
    state = EmulatorState(EmulatorConfig(latency=1.0, task_ttl=10.0), random.Random(1))
    job = state.create("k", GOOD, now=0.0)[1]["job_id"]
    assert state.lookup("k", {"global_id": job})[0] == 100000
    state.settle(10.99)
    assert state.lookup("k", {"global_id": job})[0] == 100000
    state.settle(11.0)
    assert state.lookup("k", {"global_id": job})[0] == 101008


@pytest.mark.slow
def test_command_line_task_ttl_forgets_finished_tasks():
    with emulator_process("--latency", "0", "--audio", "tone", "--task-ttl", "0.2") as (_, url):
        job = create(url)["data"]["job_id"]
        assert get(url, job)["data"]["status"] == "success"
        wait_for(lambda: get(url, job)["code"] == 101008, timeout=60)  # 0.2 s after it ended


# ---------------------------------------------------------------- sentence boundaries


@pytest.mark.slow
def test_boundaries_are_the_true_sentence_starts_of_the_speech_served():
    import array

    from pipeline.audio import decode
    from pipeline.book import Voice
    from pipeline.tts.emulator import MP3_LEAD_SAMPLES, TASKS_PATH
    from pipeline.tts.local import LocalBackend

    text = "Oh, that! I thought of the salt. There was never any mystery."
    with emulator(latency=0.0) as emu:
        job = create(emu.url, text)["data"]["job_id"]
        assert http.get(emu.url + TASKS_PATH + "nope/boundaries").status_code == 404
        truth = http.get(emu.url + TASKS_PATH + job + "/boundaries").json()
        mp3 = http.get(get(emu.url, job)["data"]["output"]).content
    spoken = LocalBackend().synthesize(text, Voice(2072))
    rate = 22050
    lead_ms = round(MP3_LEAD_SAMPLES * 1000 / rate)
    assert truth["marks"] == [[offset, ms + lead_ms] for offset, ms in spoken.marks]
    assert [m[0] for m in truth["marks"]] == [0, 10, 33]
    assert truth["boundaries_ms"] == [ms + lead_ms for _, ms in spoken.marks][1:]
    assert [s["text"] for s in truth["sentences"]] == ["Oh, that!", "I thought of the salt.",
                                                        "There was never any mystery."]
    served = decode(mp3, "mp3", rate)
    assert truth["sentences"][-1]["end_ms"] == truth["duration_ms"] == len(served)  # len(): ms
    # The served audio really is the speech moved by the lead: find the lag.
    wav = array.array("h", decode(spoken.data, "wav", rate).raw_data)
    out = array.array("h", served.raw_data)

    def likeness(lag: int) -> int:
        return sum(wav[i] * out[i + lag] for i in range(20000, 40000, 7))

    assert max(range(0, 2000), key=likeness) == MP3_LEAD_SAMPLES
