"""`audiobook build` against the emulator, as a user runs it: a real
subprocess, real HTTP on loopback, the real cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.cache import SegmentCache
from tests.emulator_helpers import (
    KEY,
    book_config,
    build_json,
    cli,
    create,
    emulator,
    plan_totals,
    remote_env,
    wait_for,
)

pytestmark = pytest.mark.slow  # every test here runs real builds


def _project(project, **shape) -> Path:
    config, files = book_config(**shape)
    return project(config, files).parent


def test_build_spends_the_plan_within_the_limit_and_a_second_build_creates_nothing(project):
    folder = _project(project, chapters=2, per_chapter=4)
    with emulator(latency=0.1, concurrency=2, audio_kind="speech") as emu:
        env = remote_env(emu.url)
        plan = plan_totals(folder, env)
        first = build_json(folder, env, "--jobs", "6")
        after_first = emu.stats()
        second = build_json(folder, env, "--jobs", "6")
        after_second = emu.stats()
    assert plan["segments"] >= 8 and plan["credits_to_spend"] == plan["credits"]
    assert after_first["tasks_created"] == plan["segments"]
    assert after_first["credits_charged"] == plan["credits_to_spend"]
    assert after_first["max_concurrent_tasks"] == 2
    assert after_first["downloads_with_api_key"] == 0
    assert first["credits_spent"] == plan["credits_to_spend"]
    assert first["tasks_created"] == plan["segments"] and first["chapters_written"] == 2
    assert after_second["tasks_created"] == after_first["tasks_created"]
    assert after_second["requests"] == after_first["requests"]
    assert second["segments_synthesized"] == 0 and second["segments_cached"] == plan["segments"]


def test_task_failures_and_transport_faults_still_charge_exactly_the_plan(project):
    # Enough segments that 20% failures surely strike (0.8^30 < 0.1%) whatever
    # order concurrent creates draw the seeded dice in.
    folder = _project(project, chapters=1, per_chapter=30)
    with emulator(latency=0.05, fail_rate=0.2, fault_rate=0.1, seed=4, audio_kind="tone") as emu:
        env = remote_env(emu.url)
        plan = plan_totals(folder, env)
        result = build_json(folder, env, "--jobs", "4")
        stats = emu.stats()
    assert stats["tasks_failed"] >= 1 and stats["faults_injected"] >= 1  # it was tested
    assert stats["tasks_succeeded"] == plan["segments"]
    assert stats["credits_charged"] == plan["credits_to_spend"]
    assert result["segments_synthesized"] == plan["segments"]


def test_past_the_service_deadline_a_build_fetches_what_was_paid_for_and_starts_nothing(project):
    folder = _project(project, chapters=1, per_chapter=4)
    with emulator(latency=0.3, audio_kind="tone") as emu:
        env = remote_env(emu.url)
        planned = json.loads(cli("plan", "--json", cwd=folder, env=env).stdout)
        segments = [s for chapter in planned["chapters"] for s in chapter["segments"]]
        # Two tasks paid for by a build killed before it fetched them, journaled as it would.
        store = SegmentCache(Path(os.environ["AUDIOBOOK_CACHE_DIR"]))
        try:
            for segment in segments[:2]:
                job = create(emu.url, segment["text"])["data"]["job_id"]
                store.set_pending(segment["key"], {"job_id": job, "base_url": emu.url.rstrip("/"),
                                                   "created_at": time.time(), "credits": 1})
        finally:
            store.close()
        # The option wins over the environment; 0: no create may start at all.
        done = cli("build", "--json", "--service-deadline", "0", cwd=folder,
                   env={**env, "AUDIOBOOK_SERVICE_DEADLINE": "10800"})
        at_deadline = emu.stats()
        still = cli("build", "--json", "--service-deadline", "0", cwd=folder, env=env)
        again = build_json(folder, env)
        stats = emu.stats()
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "the service deadline of 0s passed" in done.stderr
    assert at_deadline["tasks_created"] == 2  # the two made before; the build started none
    summary = json.loads(done.stdout)
    assert summary["tasks_resumed"] == 2 and summary["segments_synthesized"] == 2
    assert summary["segments_cached"] == 0 and summary["credits_maybe_charged"] == 0
    # What was fetched is in the cache: a build past the deadline again names only the rest.
    assert still.returncode == 1
    after = json.loads(still.stdout)
    assert after["segments_cached"] == 2 and after["segments_synthesized"] == 0
    assert len(after["segments_left_undone"]) == len(segments) - 2
    assert {u["why"] for u in summary["segments_left_undone"]} == \
        {"not started: the service deadline passed"}
    assert len(summary["segments_left_undone"]) == len(segments) - 2
    # And the next build without a deadline pays only for the rest.
    assert again["segments_cached"] == 2 and again["tasks_created"] == len(segments) - 2
    assert stats["tasks_created"] == len(segments)


def test_lost_answers_and_faults_charge_the_plan_plus_exactly_what_was_reported(project):
    # Issue #33's acceptance: with lost answers and faults the book is still made, and the
    # service charges no more than the plan plus the credits reported as maybe charged. A
    # segment whose two create answers are both lost is left to the next build, so the
    # builds are repeated until one completes; concurrent draws make that count vary.
    folder = _project(project, chapters=2, per_chapter=7)
    reported, runs = 0, []
    with emulator(latency=0.05, fault_rate=0.2, lost_response_rate=0.3, seed=5,
                  audio_kind="tone") as emu:
        env = remote_env(emu.url)
        plan = plan_totals(folder, env)
        while not runs or (runs[-1] == 1 and len(runs) < 8):
            done = cli("build", "--json", "--jobs", "16", cwd=folder, env=env)
            assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
            summary = json.loads(done.stdout)
            reported += summary["credits_maybe_charged"]
            assert done.returncode == 0 or "left undone" in done.stderr
            runs.append(done.returncode)
        stats = emu.stats()
    assert runs[-1] == 0, runs
    assert stats["lost_responses"] >= 1 and stats["faults_injected"] >= 1  # it was tested
    assert reported == stats["lost_responses"]  # each lost answer reported, once
    assert stats["credits_charged"] == plan["credits"] + reported


def test_killed_halfway_the_next_build_polls_what_was_paid_for(project):
    folder = _project(project, chapters=2, per_chapter=5)
    # jobs == the service's limit: between a batch of creates and the next, no
    # create is in the air for a whole latency, and that is when we kill.
    with emulator(latency=0.6, concurrency=3, audio_kind="tone") as emu:
        env = remote_env(emu.url)
        plan = plan_totals(folder, env)
        cache_dir = Path(os.environ["AUDIOBOOK_CACHE_DIR"])
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "build", "--jobs", "3"],
                                cwd=folder, env={**os.environ, **env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: _mid_batch(emu, cache_dir, plan["segments"]), timeout=60)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(30)
        killed_at = emu.stats()
        resumed = build_json(folder, env, "--jobs", "3")
        stats = emu.stats()
    assert proc.returncode == -signal.SIGKILL
    assert 0 < killed_at["tasks_created"] < plan["segments"]
    assert resumed["tasks_resumed"] >= 1  # the kill left paid tasks journaled
    assert stats["tasks_created"] == plan["segments"]
    assert stats["credits_charged"] == plan["credits_to_spend"]


def _mid_batch(emu, cache_dir: Path, segments: int) -> bool:
    """Halfway, with a full batch waiting and every created task journaled."""
    stats = emu.stats()
    if not (segments // 3 <= stats["tasks_created"] < segments and stats["tasks_waiting"] == 3):
        return False
    store = SegmentCache(cache_dir)
    try:
        return len(store.keys() | store.pending_keys()) == stats["tasks_created"]
    finally:
        store.close()


def test_the_key_is_never_written_to_output_logs_cache_or_manifest(project):
    folder = _project(project, chapters=1, per_chapter=4)
    with emulator(latency=0.05, fail_rate=0.3, fault_rate=0.2, seed=6, audio_kind="tone") as emu:
        env = remote_env(emu.url)
        done = cli("-v", "build", "--json", cwd=folder, env=env)
        assert done.returncode == 0, done.stderr
    with emulator(api_keys=("the-right-key",)) as emu:
        refused = cli("-v", "build", "--force", "--backend", "audiocleaner", cwd=folder,
                      env=remote_env(emu.url))
    assert refused.returncode == 1 and "101002" in refused.stderr
    assert "created task" in done.stderr  # -v really logged the traffic
    assert KEY not in done.stdout + done.stderr + refused.stdout + refused.stderr
    cache_dir = Path(os.environ["AUDIOBOOK_CACHE_DIR"])
    for path in [*cache_dir.rglob("*"), *(folder / "build").rglob("*")]:
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert (folder / "build" / "manifest.json").exists()


def test_a_missing_key_is_a_usage_error(project):
    folder = _project(project, chapters=1, per_chapter=1)
    done = cli("build", cwd=folder, env={"AUDIOCLEANER_BASE_URL": "http://127.0.0.1:9"})
    assert done.returncode == 2
    assert "AUDIOCLEANER_API_KEY" in done.stderr and "Traceback" not in done.stderr


def test_a_rejected_key_stops_the_build_with_one_clear_line(project):
    folder = _project(project, chapters=1, per_chapter=2)
    with emulator(api_keys=("the-right-key",)) as emu:
        done = cli("build", cwd=folder, env=remote_env(emu.url))
        stats = emu.stats()
    assert done.returncode == 1 and "101002" in done.stderr and "AUDIOCLEANER_API_KEY" in done.stderr
    assert "Traceback" not in done.stderr and stats["tasks_created"] == 0


def test_running_out_of_credit_exits_3_saying_what_the_rest_needs(project):
    folder = _project(project, chapters=1, per_chapter=5)
    with emulator(latency=0.02, credits=3, audio_kind="tone") as emu:
        env = remote_env(emu.url)
        plan = plan_totals(folder, env)
        done = cli("build", "--jobs", "1", cwd=folder, env=env)
        after = plan_totals(folder, env)
    assert done.returncode == 3
    assert f"needs {plan['credits_to_spend'] - 3} credit(s)" in done.stderr
    assert after["credits_to_spend"] == plan["credits_to_spend"] - 3  # what was made is kept


@pytest.mark.skipif(not hasattr(SegmentCache, "lease"),
                    reason="needs the segment store's lease (store branch)")
def test_two_builds_started_together_on_one_cache_pay_the_plan_once(project, tmp_path):
    # Two copies of one book (their own output folders) on the one shared
    # AUDIOBOOK_CACHE_DIR: the same segment keys, so the same segments to pay for.
    config, files = book_config(chapters=1, per_chapter=8)
    folders = []
    for name in ("a", "b"):
        folder = tmp_path / name
        for rel, text in {**files, "audiobook.yml": config}.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text, encoding="utf-8")
        folders.append(folder)
    with emulator(latency=0.3, audio_kind="tone") as emu:
        env = remote_env(emu.url)
        plan = plan_totals(folders[0], env)
        procs = [subprocess.Popen([sys.executable, "-m", "pipeline", "build", "--jobs", "4"],
                                  cwd=folder, env={**os.environ, **env}, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for folder in folders]
        outputs = [proc.communicate(timeout=240) for proc in procs]
        stats = emu.stats()
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert stats["tasks_created"] == plan["segments"]
    assert stats["credits_charged"] == plan["credits_to_spend"]
