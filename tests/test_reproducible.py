"""Two clean builds from one cache are byte-identical; a third build writes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_package import make_sample

from pipeline.build import build
from pipeline.config import load_config
from tests.conftest import run_cli

OUTPUT = "output: {{dir: {}, formats: [mp3, m4b], bitrate: 192k, sample_rate: 44100, loudness: acx}}"


def tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def mtimes(directory: Path) -> dict[str, int]:
    paths = [directory, *directory.rglob("*")]
    return {str(p): p.stat().st_mtime_ns for p in paths}


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro")
    cache = root / "cache"
    configs = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDIOBOOK_CACHE_DIR", str(cache))
        for name in ("first", "second"):
            config = make_sample(root, output=OUTPUT.format(name))
            config = config.rename(root / f"{name}.yml")
            build(load_config(config), jobs=2)
            configs.append(config)
    return root, cache, configs


@pytest.mark.slow
def test_two_clean_builds_from_one_cache_are_byte_identical(two_builds):
    root, _, _ = two_builds
    first, second = tree(root / "first"), tree(root / "second")
    assert sorted(first) == sorted(second)
    assert any(name.endswith(".m4b") for name in first)
    different = [name for name in first if first[name] != second[name]]
    assert different == []


@pytest.mark.slow
def test_a_build_with_nothing_changed_writes_nothing(two_builds):
    root, cache, configs = two_builds
    before = mtimes(root / "first")
    proc = run_cli("-c", str(configs[0]), "build", "--json", cwd=root,
                   env={"AUDIOBOOK_CACHE_DIR": str(cache)})
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["segments_synthesized"] == 0
    assert summary["chapters_written"] == 0
    assert summary["chapters_unchanged"] == 3
    assert summary["book_written"] is False
    assert mtimes(root / "first") == before
    assert not [p for p in os.listdir(root / "first") if ".tmp-" in p or p.startswith(".cover")]
