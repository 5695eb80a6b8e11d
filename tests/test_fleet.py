"""A fleet of runners sharing one S3 prefix, end to end: real `audiobook` subprocesses, each
with its own empty local cache, the emulator over loopback HTTP, a real moto_server.

What the fleet promises (docs/cache.md): the plan is paid once across runners, a runner
killed with -9 costs nothing twice when its lease carries its job id, and a remote that
stops mid-build turns the tier off with one warning line while the build completes locally.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.cache import CachedAudio, SegmentCache, entry_bytes
from pipeline.prune import plan_remote_prune, prune_remote
from pipeline.remote_cache import RemoteCache, parse_location
from tests.conftest import REPO
from tests.emulator_helpers import (
    book_config,
    build_json,
    cli,
    emulator,
    plan_totals,
    remote_env,
    wait_for,
)
from tests.helpers import FLEET_CONFIG as CONFIG
from tests.helpers import FLEET_ONE as ONE
from tests.moto_helpers import aws_env, moto_server, new_bucket, object_names

pytestmark = pytest.mark.slow  # every test here runs real builds or a real S3 server


# ---------------------------------------------------------------- helpers

def _samples(where: Path) -> Path:
    """A copy of the repository's sample book (audiobook.yml and samples/)."""
    where.mkdir(parents=True)
    shutil.copy(REPO / "audiobook.yml", where / "audiobook.yml")
    shutil.copytree(REPO / "samples", where / "samples")
    return where


def _book(where: Path, **shape) -> Path:
    config, files = book_config(**shape)
    for rel, text in {**files, "audiobook.yml": config}.items():
        (where / rel).parent.mkdir(parents=True, exist_ok=True)
        (where / rel).write_text(text, encoding="utf-8")
    return where


def _runner(tmp_path: Path, name: str, base: dict[str, str]) -> dict[str, str]:
    """The environment of one runner: its own empty local cache, the shared rest."""
    return {**base, "AUDIOBOOK_CACHE_DIR": str(tmp_path / f"cache-{name}")}


def _outputs(folder: Path) -> dict[str, bytes]:
    """Every chapter MP3 and the M4B, by name."""
    found = {p.name: p.read_bytes() for p in sorted((folder / "build").iterdir())
             if p.suffix in (".mp3", ".m4b")}
    assert found, f"no outputs in {folder / 'build'}"
    return found


def _build_process(folder: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline", "build", "--json", *extra],
                            cwd=folder, env={**os.environ, **env}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _remote_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "remote cache" in line]


# ---------------------------------------------------------------- a. read-through

def test_a_second_runner_pays_nothing_and_writes_the_same_bytes(s3, tmp_path):
    emulated = ("--backend", "audiocleaner")
    with emulator(latency=0.1, audio_kind="tone") as emu:
        base = remote_env(emu.url)
        a, b = _samples(tmp_path / "a"), _samples(tmp_path / "b")
        plan = plan_totals(a, _runner(tmp_path, "a", base), *emulated)
        first = build_json(a, _runner(tmp_path, "a", base), *emulated)
        after_a = emu.stats()
        # B needs no API key: every segment is in the bucket (docs/ci.md's final job).
        no_key = {k: v for k, v in base.items() if k != "AUDIOCLEANER_API_KEY"}
        second = build_json(b, _runner(tmp_path, "b", no_key), *emulated, "--max-credits", "0")
        after_b = emu.stats()
    assert plan["credits_to_spend"] == plan["credits"] > 0
    assert after_a["credits_charged"] == plan["credits_to_spend"] == first["credits_spent"]
    assert after_a["tasks_created"] == plan["segments"]
    assert after_b["tasks_created"] == after_a["tasks_created"]  # B asked the service nothing
    assert after_b["credits_charged"] == after_a["credits_charged"]
    assert second["credits_spent"] == 0 and second["segments_synthesized"] == 0
    assert second["segments_cached"] == plan["segments"]
    assert _outputs(a) == _outputs(b)  # every MP3 and the M4B, byte for byte
    assert any(name.endswith(".m4b") for name in _outputs(b))


# ---------------------------------------------------------------- b. started together

def test_two_runners_started_together_pay_the_plan_once_between_them(s3, tmp_path):
    emulated = ("--backend", "audiocleaner")
    with emulator(latency=0.5, audio_kind="tone") as emu:
        base = remote_env(emu.url)
        folders = [_samples(tmp_path / name) for name in ("a", "b")]
        plan = plan_totals(folders[0], _runner(tmp_path, "plan", base), *emulated)
        procs = [_build_process(folder, _runner(tmp_path, folder.name, base), *emulated)
                 for folder in folders]
        answers = [proc.communicate(timeout=300) for proc in procs]
        stats = emu.stats()
    assert [proc.returncode for proc in procs] == [0, 0], [err for _, err in answers]
    reports = [json.loads(out) for out, _ in answers]
    assert stats["tasks_created"] == plan["segments"]
    assert stats["credits_charged"] == plan["credits_to_spend"]
    assert sum(r["credits_spent"] for r in reports) == plan["credits_to_spend"]
    for r in reports:  # each segment: made by one runner, joined or found by the other
        assert (r["tasks_created"] + r["tasks_shared"] + r["segments_made_elsewhere"]
                + r["segments_cached"]) == plan["segments"], r
    assert _outputs(folders[0]) == _outputs(folders[1])


# ---------------------------------------------------------------- c. kill -9

def _all_leases_carry_jobs(client, bucket: str, emu, segments: int) -> bool:
    """Mid-build, a full batch waiting, and every task created is on record in the bucket:
    its audio stored, or its job id in its lease (no create is in the air)."""
    stats = emu.stats()
    if not (3 <= stats["tasks_created"] < segments and stats["tasks_waiting"] == 3):
        return False
    stored = {name.rsplit("/", 1)[1][:-4] for name in object_names(client, bucket, "fleet/segments/")}
    with_job = set()
    for name in object_names(client, bucket, "fleet/leases/"):
        try:
            info = json.loads(client.get_object(Bucket=bucket, Key=name)["Body"].read())
        except client.exceptions.NoSuchKey:
            continue  # released meanwhile
        if not info.get("job_id"):
            return False
        with_job.add(name.rsplit("/", 1)[1][:-5])
    return len(stored | with_job) == stats["tasks_created"] and bool(with_job - stored)


def test_a_runner_killed_holding_leases_costs_nothing_twice(s3, tmp_path):
    client, bucket = s3
    folder_a, folder_b = _book(tmp_path / "a", chapters=2, per_chapter=6), \
        _book(tmp_path / "b", chapters=2, per_chapter=6)
    # jobs == the service's limit: between a batch of creates and the next, no
    # create is in the air for a whole latency, and that is when we kill.
    with emulator(latency=1.0, concurrency=3, audio_kind="tone") as emu:
        base = remote_env(emu.url)
        plan = plan_totals(folder_a, _runner(tmp_path, "a", base))
        proc = _build_process(folder_a, _runner(tmp_path, "a", base), "--jobs", "3")
        try:
            wait_for(lambda: _all_leases_carry_jobs(client, bucket, emu, plan["segments"]),
                     timeout=90, step=0.05)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.communicate(timeout=30)
        killed_at = emu.stats()
        report = build_json(folder_b, _runner(tmp_path, "b", base), "--jobs", "3")
        stats = emu.stats()
    assert proc.returncode == -signal.SIGKILL
    assert 0 < killed_at["tasks_created"] < plan["segments"]
    assert stats["tasks_created"] == plan["segments"]  # nothing paid twice
    assert stats["credits_charged"] == plan["credits_to_spend"]
    # B found A's leases, A gone: it took them over and polled A's tasks.
    assert report["leases_taken_over"] >= 1
    assert report["tasks_adopted"] >= 1
    assert report["leases_taken_over_without_job"] == 0 and report["credits_maybe_charged"] == 0
    assert report["leases_lost"] == 0


# ---------------------------------------------------------------- d. the remote stops

def test_the_remote_stopping_mid_build_turns_the_tier_off_and_the_build_completes(tmp_path):
    folder = _book(tmp_path / "book", chapters=1, per_chapter=10)
    with moto_server() as (moto, url), emulator(latency=0.5, audio_kind="tone") as emu:
        bucket = new_bucket(url)
        env = {**aws_env(url), **remote_env(emu.url), "AUDIOBOOK_CACHE_DIR": str(tmp_path / "c"),
               "AUDIOBOOK_REMOTE_CACHE": f"s3://{bucket}/fleet"}
        plan = plan_totals(folder, env)
        import boto3

        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
        proc = _build_process(folder, env, "--jobs", "2")
        try:
            # The tier is in use: leases on the remote, tasks paid, the build not done.
            wait_for(lambda: 2 <= emu.stats()["tasks_created"] < plan["segments"] - 2
                     and object_names(client, bucket, "fleet/leases/"), timeout=90, step=0.05)
            moto.terminate()
            moto.wait(10)
            out, err = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
        report = json.loads(out) if proc.returncode == 0 else {}
        verify = cli("cache", "verify", cwd=folder, env=env)
        again = cli("build", "--json", cwd=folder, env=env)
        stats = emu.stats()
    assert proc.returncode == 0, err
    said = _remote_warnings(err)
    assert len(said) == 1 and "going on with the local cache only" in said[0], err
    assert report["segments_synthesized"] == plan["segments"]
    assert verify.returncode == 0 and "all good" in verify.stdout, verify.stdout + verify.stderr
    assert again.returncode == 0, again.stderr
    assert len(_remote_warnings(again.stderr)) <= 1, again.stderr  # one line, if it looks
    assert json.loads(again.stdout)["credits_spent"] == 0
    assert stats["tasks_created"] == plan["segments"]  # the leases it held cost nothing twice
    assert stats["credits_charged"] == plan["credits_to_spend"]


# ---------------------------------------------------------------- prune and clear --remote



def _foreign(remote: RemoteCache, key: str, credits: int, backend: str) -> None:
    """An entry some other config of the fleet made, straight into the bucket."""
    remote.put(key, entry_bytes(key, CachedAudio(b"RIFF" + bytes(200), "wav", credits, backend)))


def test_prune_remote_drops_only_old_unused_entries_and_paid_ones_only_when_asked(s3, project):
    client, bucket = s3
    folder = project(CONFIG, {"one.md": ONE}).parent
    built = cli("build", "--json", cwd=folder, env={})
    assert built.returncode == 0, built.stderr
    used = json.loads(built.stdout)["segments_synthesized"]
    remote = RemoteCache(parse_location(os.environ["AUDIOBOOK_REMOTE_CACHE"], "env"))
    free, paid, joined = "f" * 64, "e" * 64, "d" * 64
    _foreign(remote, free, 0, "local:espeak-ng-1")
    _foreign(remote, paid, 4, "audiocleaner:https://audiocleaner.ai")
    _foreign(remote, joined, 0, "audiocleaner:https://audiocleaner.ai")  # a joined task's copy
    every = object_names(client, bucket, "fleet/segments/")
    assert len(every) == used + 3
    # Without --remote the bucket is not touched; with it, everything is too recent to judge.
    assert cli("cache", "prune", "--include-paid", "--yes", cwd=folder, env={}).returncode == 0
    assert object_names(client, bucket, "fleet/segments/") == every
    done = cli("cache", "prune", "--remote", cwd=folder, env={})
    assert done.returncode == 0, done.stderr
    assert f"kept {used} in use, 3 too recent" in done.stdout, done.stdout
    assert object_names(client, bucket, "fleet/segments/") == every
    # Later than a lease's ttl: the free unused entry goes, the paid ones stay unless asked.
    keep = set(SegmentCache(Path(os.environ["AUDIOBOOK_CACHE_DIR"])).local_keys())
    later = time.time() + 10**5
    report, doomed = plan_remote_prune(remote, keep, now=later)
    assert report.kept_paid == 2 and report.in_use == used
    assert prune_remote(remote, report, doomed).dropped == 1
    assert f"fleet/segments/{free}.seg" not in object_names(client, bucket, "fleet/segments/")
    report, doomed = plan_remote_prune(remote, keep, include_paid=True, now=later)
    assert prune_remote(remote, report, doomed).dropped == 2 and report.dropped_credits == 5
    assert len(object_names(client, bucket, "fleet/segments/")) == used


def test_clear_remote_asks_naming_the_count_and_the_place_then_empties_the_prefix(s3, project):
    client, bucket = s3
    folder = project(CONFIG, {"one.md": ONE}).parent
    assert cli("build", cwd=folder, env={}).returncode == 0
    remote = RemoteCache(parse_location(os.environ["AUDIOBOOK_REMOTE_CACHE"], "env"))
    client.put_object(Bucket=bucket, Key=f"fleet/leases/{'c' * 64}.json", Body=b"{}")
    segments = object_names(client, bucket, "fleet/segments/")
    client.put_object(Bucket=bucket, Key="elsewhere/keep.txt", Body=b"not ours")
    local_only = cli("cache", "clear", "--yes", cwd=folder, env={})
    assert local_only.returncode == 0 and object_names(client, bucket, "fleet/") != []
    assert cli("build", cwd=folder, env={}).returncode == 0  # read-through refills the local tier
    refused = subprocess.run([sys.executable, "-m", "pipeline", "cache", "clear", "--remote"],
                             cwd=folder, input="y\nn\n", capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 1 and "aborted" in refused.stderr, refused.stderr
    count = len(segments) + 1
    assert (f"delete all {count} object(s) under {remote.where} ({len(segments)} segment(s), "
            "1 lease(s))") in refused.stdout, refused.stdout
    assert len(object_names(client, bucket, "fleet/")) == count
    done = cli("cache", "clear", "--remote", "--yes", cwd=folder, env={})
    assert done.returncode == 0 and f"deleted {count} object(s)" in done.stdout, done.stderr
    assert object_names(client, bucket, "fleet/") == []
    assert object_names(client, bucket, "elsewhere/") == ["elsewhere/keep.txt"]


def test_remote_maintenance_without_a_remote_is_one_clear_line(project, monkeypatch):
    monkeypatch.delenv("AUDIOBOOK_REMOTE_CACHE", raising=False)
    folder = project(CONFIG, {"one.md": ONE}).parent
    for command in (("cache", "clear", "--remote", "--yes"), ("cache", "prune", "--remote")):
        done = cli(*command, cwd=folder, env={})
        assert done.returncode == 1, done.stderr
        assert "no remote cache is set" in done.stderr and "Traceback" not in done.stderr
