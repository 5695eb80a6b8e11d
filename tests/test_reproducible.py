"""Two clean builds from one cache are byte-identical; a third build writes nothing.

The output folder belongs to the book, not to its path: a copied or moved
book folder builds into its own build/ with the same bytes, and the samples
built in two folders with two caches give the same files, manifest included.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from pipeline.build import build
from pipeline.config import load_config
from tests.conftest import copy_samples, run_cli
from tests.helpers import make_sample

OUTPUT = "output: {{dir: {}, formats: [mp3, m4b], bitrate: 192k, sample_rate: 44100, loudness: acx}}"


def tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def differing(first: dict[str, bytes], second: dict[str, bytes]) -> list[str]:
    """Names missing from either tree or whose bytes differ."""
    return sorted(name for name in first.keys() | second.keys()
                  if first.get(name) != second.get(name))


def holding(files: dict[str, bytes], text: str) -> list[str]:
    """Names of the files whose bytes contain text (a path, say)."""
    return [name for name, data in files.items() if text.encode() in data]


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


@pytest.mark.slow
def test_a_copied_book_folder_is_still_its_book_and_writes_the_same_bytes(built_sample, tmp_path):
    """cp -r of a built book, build/ and cache inside, to another path and folder name.

    The previous owner token hashed the config's folder: this build was
    refused with exit 2 ("holds the output of 'X', not of 'X'").
    """
    moved = tmp_path / "another checkout" / "gannet-point-copy"
    shutil.copytree(built_sample, moved, symlinks=True, copy_function=shutil.copy)  # cp -r
    done = run_cli("build", "--json", cwd=moved, env={"AUDIOBOOK_CACHE_DIR": ""})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["segments_synthesized"] == 0
    made, original = tree(moved / "build"), tree(built_sample / "build")
    assert {"manifest.json", "playlist.m3u", "the-keeper-of-gannet-point.m4b"} <= set(made)
    assert len([n for n in made if n.endswith(".mp3")]) == 3
    assert differing(made, original) == []
    assert holding(made, str(moved)) == [] and holding(made, str(built_sample)) == []


@pytest.mark.slow
def test_the_samples_built_in_two_folders_with_two_caches_are_byte_identical(built_sample,
                                                                            tmp_path):
    """Two runners, two checkout paths, two empty caches: the same files, manifest.json too."""
    other = tmp_path / "runner-2" / "work" / "book"
    other.mkdir(parents=True)
    copy_samples(other)
    done = run_cli("build", "--json", cwd=other, env={"AUDIOBOOK_CACHE_DIR": ""})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["segments_cached"] == 0  # its own cache, made from nothing
    made, first = tree(other / "build"), tree(built_sample / "build")
    assert "manifest.json" in made and any(n.endswith(".m4b") for n in made)
    assert differing(made, first) == []
    assert holding(made, str(other)) == [] and holding(first, str(built_sample)) == []
