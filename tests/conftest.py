"""Shared fixtures. Every test gets its own cache; the user's is never touched."""

from __future__ import annotations

import os
import shutil
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import settings

# In CI the property tests draw the same examples every run (a red CI must mean
# a regression, not a new draw); locally they explore a fresh sample each run.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Point AUDIOBOOK_CACHE_DIR at a fresh folder, and keep secrets out."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("AUDIOBOOK_CACHE_DIR", str(cache))
    monkeypatch.delenv("AUDIOCLEANER_API_KEY", raising=False)
    monkeypatch.delenv("AUDIOCLEANER_BASE_URL", raising=False)
    return cache


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A factory for a project folder: write(files) -> config path; cwd is the folder."""
    monkeypatch.chdir(tmp_path)

    def write(config: str, files: dict[str, str | bytes] | None = None) -> Path:
        for name, content in (files or {}).items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(textwrap.dedent(content), encoding="utf-8")
        cfg = tmp_path / "audiobook.yml"
        cfg.write_text(textwrap.dedent(config), encoding="utf-8")
        return cfg

    return write


def wait_for(predicate, timeout: float = 20.0, step: float = 0.02):
    """Poll predicate until it returns something truthy (returned); fail after timeout.

    The one way tests wait for an event they cannot be told of: the timeout is
    a hang guard, generous for a loaded machine, never a figure under test.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    """Run the real console entry point in a subprocess (as a user would)."""
    import subprocess
    import sys

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=600)


def copy_samples(root: Path) -> Path:
    """The repository's sample book (audiobook.yml and samples/) copied into root, as a clone has it."""
    shutil.copytree(REPO / "samples", root / "samples", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "audiobook.yml", root / "audiobook.yml")
    return root / "audiobook.yml"


@pytest.fixture(scope="session")
def built_sample(tmp_path_factory) -> Path:
    """The sample book built once per test run by the real command line: its folder.

    Its cache is the config's own (.audiobook-cache inside the folder), so the
    folder holds everything a checkout with a restored build/ and cache holds.
    Shared: read it, or shutil.copytree it before changing anything.
    """
    root = tmp_path_factory.mktemp("built") / "sample"
    root.mkdir()
    copy_samples(root)
    done = run_cli("build", "-q", cwd=root, env={"AUDIOBOOK_CACHE_DIR": ""})
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture(scope="session")
def moto_url():
    """One real moto_server (S3 over HTTP on loopback) for the session; each test its own bucket."""
    from tests.moto_helpers import MOTO, moto_server

    if not MOTO.exists():
        pytest.skip("moto_server is not installed")
    with moto_server() as (_, url):
        yield url


@pytest.fixture
def s3(moto_url, monkeypatch):
    """A fresh bucket; the AWS chain in this process and its children points at it.

    AUDIOBOOK_REMOTE_CACHE is s3://BUCKET/fleet. Yields (boto3 client, bucket).
    """
    import boto3

    from tests.moto_helpers import aws_env, new_bucket

    for name, value in aws_env(moto_url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = new_bucket(moto_url)
    monkeypatch.setenv("AUDIOBOOK_REMOTE_CACHE", f"s3://{bucket}/fleet")
    return boto3.client("s3"), bucket
