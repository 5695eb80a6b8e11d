"""The build end to end on the offline backend: incremental, frugal, exact to the plan."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import audio
from pipeline.build import build, synthesize
from pipeline.cache import open_cache
from pipeline.config import load_config
from pipeline.errors import BudgetError
from pipeline.plan import make_plan
from tests.conftest import run_cli, wait_for

CONFIG = """\
title: Test Book
author: Tester
narrator: {voice: 2072}
output: {formats: [mp3], loudness: none}
cast:
  holmes: {voice: 2080, emotion: calm}
chapters:
  - source: one.md
  - source: two.md
"""

ONE = """\
# The First

The lamp was lit at dusk. It burned until the morning came over the hill.

Nobody climbed the stair that night. The wind did all the talking.
"""

TWO = """\
# The Second

<!-- voice: holmes -->

"Elementary," said the voice from the corner. "The tide tells you everything."

<!-- narrator -->

And that was the end of it.
"""


def long_chapter(paragraphs: int, seed: int = 1) -> str:
    import random

    rng = random.Random(seed)
    words = ["tide", "lamp", "keeper", "harbour", "rope", "gull", "ledger", "stair", "salt",
             "window", "storm", "ferry", "anchor", "quiet", "morning", "north", "signal"]
    out = ["# A Long Chapter", ""]
    for p in range(paragraphs):
        sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 22))).capitalize() + "."
                     for _ in range(rng.randint(1, 7))]
        out += [f"Paragraph {p}. " + " ".join(sentences), ""]
    return "\n".join(out)


def plan_json(cfg) -> dict:
    with open_cache(cfg) as cache:
        return make_plan(cfg, cache).as_json()


def synthesize_all_of(cfg) -> None:
    """Fill the cache as a build would, without encoding (the encoder is tested elsewhere)."""
    with open_cache(cfg) as cache:
        synthesize(make_plan(cfg, cache), cache)


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


@pytest.mark.slow
def test_build_writes_real_speech_and_a_second_build_does_nothing(project):
    cfg_path = project(CONFIG, {"one.md": ONE, "two.md": TWO})
    cfg = load_config(cfg_path)
    first = build(cfg)
    assert first.segments_synthesized > 0 and first.chapters_written == 2
    out = cfg.output.dir
    names = sorted(p.name for p in out.glob("*.mp3"))
    assert names == ["01-the-first.mp3", "02-the-second.mp3"]
    for name in names:
        pcm = audio.decode((out / name).read_bytes(), "mp3", 16000)
        assert pcm.duration_seconds > 3
        assert pcm.dBFS > -40  # speech, not silence
    manifest = json.loads((out / "manifest.json").read_text())
    assert [c["title"] for c in manifest["chapters"]] == ["The First", "The Second"]
    assert all(c["duration_ms"] > 3000 and c["segments"] for c in manifest["chapters"])

    before = mtimes(out)
    time.sleep(0.01)
    second = build(load_config(cfg_path))
    assert (second.segments_synthesized, second.chapters_written) == (0, 0)
    assert second.chapters_unchanged == 2
    assert mtimes(out) == before


NO_OP_PROBE = """\
import subprocess, sys
started = []
real_init = subprocess.Popen.__init__

def counting(self, args, *rest, **options):
    started.append(args)
    real_init(self, args, *rest, **options)

subprocess.Popen.__init__ = counting
from pipeline.cli import main
code = main(["build", "-q"])
making = ("pipeline.spoken", "num2words", "pipeline.timing", "pipeline.readalong", "pysbd",
          "markdown_it", "pipeline.sources.markdown", "pipeline.tts.audiocleaner", "imageio_ffmpeg",
          "resvg_py")
print(code, started, sorted(m for m in making if m in sys.modules))
"""


@pytest.mark.slow
def test_a_no_op_build_starts_no_process_and_loads_no_code_for_making_audio(project):
    # What keeps a no-op build of a long book fast (benchmarks/bench_noop.py):
    # no ffmpeg probe, no re-reading or re-packing, no modules for making audio,
    # no rasterizing of the SVG cover.
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="450">' \
          '<rect width="300" height="450" fill="navy"/></svg>'
    folder = project(CONFIG.replace("formats: [mp3]", "formats: [mp3, m4b, vtt]")
                     + "cover: cover.svg\n",
                     {"one.md": ONE, "two.md": TWO, "cover.svg": svg}).parent
    assert run_cli("build", "-q", cwd=folder).returncode == 0
    probe = subprocess.run([sys.executable, "-c", NO_OP_PROBE], cwd=folder, capture_output=True,
                           text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "0 [] []"


@pytest.mark.slow
def test_plan_says_exactly_what_build_does(project):
    cfg_path = project(CONFIG, {"one.md": ONE, "two.md": TWO})
    cfg = load_config(cfg_path)
    plan = plan_json(cfg)
    result = build(cfg)
    keys = {s["key"] for c in plan["chapters"] for s in c["segments"]}
    assert result.segments_synthesized == len(keys) == plan["totals"]["segments"]
    manifest = json.loads((cfg.output.dir / "manifest.json").read_text())
    assert [s["key"] for c in manifest["chapters"] for s in c["segments"]] == \
        [s["key"] for c in plan["chapters"] for s in c["segments"]]
    after = plan_json(cfg)
    assert after["totals"]["credits_to_spend"] == 0
    assert after["totals"]["cached_segments"] == after["totals"]["segments"]


def test_inline_switches_move_paragraphs_between_voices(project):
    cfg = load_config(project(CONFIG, {"one.md": ONE, "two.md": TWO}))
    chapter = plan_json(cfg)["chapters"][1]
    by_text = {s["text"]: (s["voice"], s["emotion"]) for s in chapter["segments"]}
    holmes = [t for t in by_text if "Elementary" in t]
    narrator = [t for t in by_text if "end of it" in t]
    assert holmes and narrator
    assert by_text[holmes[0]] == (2080, 8)
    assert by_text[narrator[0]] == (2072, 0)
    # No segment carries both voices' text.
    assert not any("Elementary" in t and "end of it" in t for t in by_text)


@pytest.mark.slow
def test_one_sentence_edit_repays_only_around_it_and_other_chapters_keep_their_segments(project):
    text = long_chapter(160)
    cfg_path = project(CONFIG, {"one.md": text, "two.md": TWO})
    cfg = load_config(cfg_path)
    synthesize_all_of(cfg)
    before = plan_json(cfg)
    assert before["chapters"][0]["characters"] > 12000

    edited = text.replace("Paragraph 80. ", "Paragraph 80. The keeper changed one sentence here. ")
    Path("one.md").write_text(edited, encoding="utf-8")
    after = plan_json(load_config(cfg_path))
    assert 0 < after["totals"]["credits_to_spend"] <= 20
    assert after["chapters"][1]["segments"] == before["chapters"][1]["segments"]
    synthesize_all_of(load_config(cfg_path))

    inserted = edited.replace("Paragraph 120. ", "A brand new paragraph sits here. It is short.\n\nParagraph 120. ")
    Path("one.md").write_text(inserted, encoding="utf-8")
    again = plan_json(load_config(cfg_path))
    assert 0 < again["totals"]["credits_to_spend"] <= 20


def test_lexicon_rewrites_the_text_sent(project):
    cfg = load_config(project(CONFIG.replace("cast:", 'lexicon: {"Dr.": "Doctor", "sql": "sequel"}\ncast:'),
                              {"one.md": "# Hi\n\nDr. Lee wrote SQL and Sql all day.\n", "two.md": TWO}))
    texts = [s["text"] for s in plan_json(cfg)["chapters"][0]["segments"]]
    assert any("Doctor Lee wrote sequel and Sequel all day." in t for t in texts)


@pytest.mark.slow
def test_chapter_selection_builds_only_those(project):
    cfg = load_config(project(CONFIG, {"one.md": ONE, "two.md": TWO}))
    result = build(cfg, ["2"])
    assert result.chapters_written == 1
    assert [p.name for p in cfg.output.dir.glob("*.mp3")] == ["02-the-second.mp3"]
    result = build(cfg, ["the-first"])
    assert result.chapters_written == 1 and result.chapters_unchanged == 0
    manifest = json.loads((cfg.output.dir / "manifest.json").read_text())
    assert [c["index"] for c in manifest["chapters"]] == [1, 2]


@pytest.mark.slow
def test_cli_exit_codes_for_budget_offline_and_bad_chapter(project, tmp_path):
    project(CONFIG, {"one.md": ONE, "two.md": TWO})
    offline = run_cli("build", "--offline", cwd=tmp_path)
    assert offline.returncode == 4, offline.stderr
    assert "not in the cache" in offline.stderr and "Traceback" not in offline.stderr
    budget = run_cli("build", "--max-credits", "1", cwd=tmp_path)
    assert budget.returncode == 3, budget.stderr
    assert "--max-credits" in budget.stderr
    bad = run_cli("build", "9", cwd=tmp_path)
    assert bad.returncode == 2 and "'9' is not a chapter" in bad.stderr
    ok = run_cli("build", "--json", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout)
    assert summary["chapters_written"] == 2 and summary["credits_spent"] == 0
    again = run_cli("build", "--offline", "--json", cwd=tmp_path)
    assert again.returncode == 0
    assert json.loads(again.stdout)["segments_synthesized"] == 0


@pytest.mark.slow
def test_plan_json_has_the_contract_shape(project, tmp_path):
    project(CONFIG, {"one.md": ONE, "two.md": TWO})
    result = run_cli("plan", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert {"title", "backend", "chapters", "totals"} <= set(plan)
    seg = plan["chapters"][0]["segments"][0]
    assert {"key", "characters", "credits", "cached", "voice", "emotion", "speed", "language",
            "text"} <= set(seg)
    assert seg["characters"] == len(seg["text"]) and seg["credits"] == -(-len(seg["text"]) // 100)
    assert len(seg["key"]) == 64
    totals = plan["totals"]
    assert totals["credits"] == sum(c["credits"] for c in plan["chapters"])
    assert totals["credits_to_spend"] == totals["credits"]


@pytest.mark.slow
def test_two_builds_at_once_share_one_cache_safely(project, tmp_path):
    project(CONFIG.replace("output: {", "output: {dir: out-a, "), {"one.md": long_chapter(25), "two.md": TWO})
    (tmp_path / "b.yml").write_text((tmp_path / "audiobook.yml").read_text().replace("out-a", "out-b"))
    env = {**os.environ}
    procs = [subprocess.Popen([sys.executable, "-m", "pipeline", "-c", cfg, "build", "--json"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for cfg in ("audiobook.yml", "b.yml")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    for name in ("01-a-long-chapter.mp3", "02-the-second.mp3"):
        assert (tmp_path / "out-a" / name).read_bytes() == (tmp_path / "out-b" / name).read_bytes()
    third = run_cli("build", "--json", cwd=tmp_path)
    assert json.loads(third.stdout)["segments_synthesized"] == 0


@pytest.mark.slow
def test_a_killed_build_resumes_without_losing_audio(project, tmp_path):
    project(CONFIG, {"one.md": long_chapter(150, seed=9), "two.md": TWO})
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "build", "--jobs", "1"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cfg = load_config(tmp_path / "audiobook.yml")
    def three_stored() -> bool:
        with open_cache(cfg) as cache:
            return len(cache.keys()) >= 3

    wait_for(three_stored, timeout=120)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open_cache(cfg) as cache:
        plan = make_plan(cfg, cache)
    done_before = plan.totals()["cached_segments"]
    assert done_before >= 3
    # What the killed build paid for is kept; the next run makes only the rest.
    with open_cache(cfg) as cache:
        result = synthesize(make_plan(cfg, cache), cache)
        again = make_plan(cfg, cache).totals()
    assert result.segments_cached >= done_before
    assert result.segments_synthesized == plan.totals()["segments"] - done_before
    assert again["cached_segments"] == again["segments"]
    assert not list(cfg.output.dir.glob("*.mp3"))  # killed mid-synthesis: no half output


@pytest.mark.slow
@pytest.mark.parametrize("args", [("cache", "stats", "--json")])
def test_cache_commands(project, tmp_path, args):
    project(CONFIG, {"one.md": ONE, "two.md": TWO})
    assert run_cli("build", cwd=tmp_path).returncode == 0
    stats = json.loads(run_cli(*args, cwd=tmp_path).stdout)
    assert stats["segments"] > 0
    Path("two.md").write_text("# The Second\n\nA different text now.\n", encoding="utf-8")
    pruned = run_cli("cache", "prune", "--yes", cwd=tmp_path)
    assert pruned.returncode == 0 and "dropped" in pruned.stdout
    after = json.loads(run_cli(*args, cwd=tmp_path).stdout)
    assert 0 < after["segments"] < stats["segments"]
    refused = run_cli("cache", "clear", cwd=tmp_path)
    assert refused.returncode != 0
    cleared = run_cli("cache", "clear", "--yes", cwd=tmp_path)
    assert cleared.returncode == 0
    assert json.loads(run_cli(*args, cwd=tmp_path).stdout)["segments"] == 0


@pytest.mark.slow
def test_a_build_clears_temporary_files_that_a_killed_build_left(project):
    cfg = load_config(project(CONFIG, {"one.md": ONE, "two.md": TWO}))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    out = cfg.output.dir
    out.mkdir(parents=True)
    stale = [out / f".stitch-{gone.pid}-x1y2.raw", out / f".01-the-first.mp3.tmp-{gone.pid}"]
    live = out / f".stitch-{os.getpid()}-busy.raw"  # a build still running keeps its files
    for path in (*stale, live):
        path.write_bytes(b"\0" * 64)
    build(cfg)
    assert not any(p.exists() for p in stale)
    assert live.exists()


class _LoseOneSegment:
    """A Progress that drops one cached segment as encoding starts, as a
    concurrent `cache prune` (or a damaged entry the store deleted) would."""

    def __init__(self, cfg, key: str):
        self.cfg, self.key, self.dropped = cfg, key, False

    def start(self, label: str, total: int) -> None:
        if label.startswith("encoding") and not self.dropped:
            with open_cache(self.cfg) as other:
                other.delete(self.key)
            self.dropped = True

    def advance(self, n: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass


@pytest.mark.slow
def test_a_segment_lost_before_rendering_is_made_again_and_the_output_equals_a_clean_build(
        project, caplog):
    cfg = load_config(project(CONFIG, {"one.md": ONE, "two.md": TWO}))
    build(cfg)
    clean = _chapters_made(cfg)
    key = plan_json(cfg)["chapters"][1]["segments"][0]["key"]
    lose = _LoseOneSegment(cfg, key)
    with caplog.at_level("WARNING", logger="pipeline"):
        result = build(load_config(cfg.path), force=True, progress=lose)
    assert lose.dropped
    assert result.segments_synthesized == 1 and result.chapters_written == 2
    assert "1 segment(s) were missing or damaged" in caplog.text
    assert "free on the offline backend" in caplog.text
    # eSpeak NG is not bit-exact from one call to the next in a process, so
    # "equal" is: the same files from the same segment keys, the same length.
    assert _chapters_made(cfg) == clean


def _chapters_made(cfg) -> list[tuple]:
    manifest = json.loads((cfg.output.dir / "manifest.json").read_text())
    return [(c["file"], c["output_key"], c["frames"], [s["key"] for s in c["segments"]])
            for c in manifest["chapters"]]


@pytest.mark.slow
def test_a_lost_segment_is_not_made_again_past_max_credits(project):
    cfg = load_config(project(CONFIG, {"one.md": ONE, "two.md": TWO}))
    build(cfg)
    key = plan_json(cfg)["chapters"][0]["segments"][0]["key"]
    with pytest.raises(BudgetError):
        build(load_config(cfg.path), force=True, max_credits=0, progress=_LoseOneSegment(cfg, key))


@pytest.mark.slow
def test_every_build_records_its_config_for_prune(project, monkeypatch):
    from pipeline.cache import SegmentCache

    seen = []
    monkeypatch.setattr(SegmentCache, "record_use",
                        lambda self, path, backend, identity: seen.append((path, backend, identity)),
                        raising=False)
    cfg = load_config(project(CONFIG, {"one.md": ONE, "two.md": TWO}))
    build(cfg, chapters=["1"])
    assert seen and seen[0][0] == str(cfg.path.resolve()) and seen[0][1] == "local"


@pytest.mark.slow
def test_a_partial_build_says_why_there_is_no_m4b(project, tmp_path):
    project(CONFIG.replace("formats: [mp3]", "formats: [mp3, m4b]"), {"one.md": ONE, "two.md": TWO})
    result = run_cli("build", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no M4B written" in result.stderr and "(1)" in result.stderr
    assert not list(tmp_path.glob("build/*.m4b"))


@pytest.mark.slow
def test_opening_and_closing_credits_are_their_own_tracks_and_m4b_chapters(project):
    path = project(CONFIG.replace("formats: [mp3]", "formats: [mp3, m4b]").replace(
        "author: Tester", "author: Tester\nnarrator_name: Nell Reader"), {"one.md": ONE, "two.md": TWO})
    plain = path.read_text()
    path.write_text(plain + "credits: {opening: true, closing: true}\n")
    cfg = load_config(path)
    with open_cache(cfg) as cache:
        plan = make_plan(cfg, cache)
    assert [cp.index for cp in plan.chapters] == [0, 1, 2, 3]
    opening = " ".join(s.text for s in plan.chapters[0].segments)
    assert "Test Book" in opening and "Tester" in opening and "Nell Reader" in opening
    assert all(s.voice.voice == 2072 for s in plan.chapters[0].segments + plan.chapters[3].segments)
    build(cfg)
    names = sorted(p.name for p in cfg.output.dir.glob("*.mp3"))
    assert names == ["00-opening-credits.mp3", "01-the-first.mp3", "02-the-second.mp3",
                     "03-closing-credits.mp3"]
    manifest = json.loads((cfg.output.dir / "manifest.json").read_text())
    assert [c["title"] for c in manifest["book"]["chapters"]] == [
        "Opening Credits", "The First", "The Second", "Closing Credits"]
    # A chapter chosen by number is still the chapter `plan` numbers so.
    with open_cache(cfg) as cache:
        only = make_plan(cfg, cache, chapters=["2"])
    assert [only.chapters[i].title for i in only.selected] == ["The Second"]
    # Credits off again: their files and manifest entries go.
    path.write_text(plain)
    cfg = load_config(path)
    build(cfg)
    assert sorted(p.name for p in cfg.output.dir.glob("*.mp3")) == names[1:3]
    manifest = json.loads((cfg.output.dir / "manifest.json").read_text())
    assert [c["index"] for c in manifest["chapters"]] == [1, 2]


@pytest.mark.slow
def test_a_paid_task_whose_text_was_edited_away_is_downloaded_and_kept(project, monkeypatch):
    """A build killed after creating a task, then the text edited: the next build
    polls the journalled task (no new create) and keeps its audio."""
    from emulator_helpers import book_config, create, emulator, remote_env

    from pipeline.tts.audiocleaner import base_url

    config, files = book_config(chapters=1, per_chapter=2)
    cfg = load_config(project(config, files))
    orphan = "f" * 64  # the key of text no longer in the book
    with emulator(latency=0.05, audio_kind="tone") as emu:
        for name, value in remote_env(emu.url).items():
            monkeypatch.setenv(name, value)
        job = create(emu.url, "A sentence the author has since deleted.")["data"]["job_id"]
        with open_cache(cfg) as cache:
            cache.set_pending(orphan, {"job_id": job, "base_url": base_url(),
                                       "created_at": time.time(), "credits": 1})
        before = emu.stats()["tasks_created"]
        result = build(cfg)
        created = emu.stats()["tasks_created"] - before
    with open_cache(cfg) as cache:
        plan_keys = {s.key for cp in make_plan(cfg, cache).chapters for s in cp.segments}
        assert orphan in cache and orphan not in cache.pending_keys()
    assert created == len(plan_keys)  # the orphan cost no new task
    assert result.synthesis.orphans_kept == 1 and result.as_json()["orphan_tasks_kept"] == 1
    assert result.segments_synthesized == len(plan_keys)
