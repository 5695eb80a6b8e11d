"""The sample book's outputs: M4B chapters and tags, MP3 tags, playlist, ACX.

One sample build per module (about 10 s), so every test that reads it is
marked slow (the quick loop never builds it); every check reads real files. The
ACX check measures the MP3s itself (ffmpeg to PCM, then plain Python), so it
does not trust the level meter it is checking.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import zipfile
from array import array
from pathlib import Path

import pytest
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, MP4Cover

from pipeline import audio, check, loudness, package
from pipeline.build import build
from pipeline.config import load_config
from pipeline.errors import InputError
from pipeline.sources.rules import image_kind
from tests.helpers import FFMPEG, REPO, dbfs, make_sample, pcm_of
from tests.readers import epubcheck, ffprobe_chapters


def cover_png(path: Path) -> Path:
    subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i", "color=c=navy:s=32x32",
                    "-frames:v", "1", "-c:v", "png", "-f", "image2", "-y", str(path)], check=True)
    return path


def noisy_cover_png(path: Path) -> Path:
    """A 3000x3000 PNG of 4.5 MB that is noise to PNG and JPEG alike (seeded: the same every
    run): as a JPEG at good quality it is 4.2 MB, so only a smaller and then coarser one fits."""
    subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i",
                    "color=c=gray:s=1050x1050,format=rgb24,noise=alls=100:allf=u,"
                    "scale=3000:3000:flags=neighbor", "-frames:v", "1", "-c:v", "png",
                    "-f", "image2", "-y", str(path)], check=True)
    return path


def epub_cover(path: Path) -> tuple[str, bytes]:
    """The read-along EPUB's cover image: (media type, bytes), found through its OPF."""
    import re

    with zipfile.ZipFile(path) as z:
        opf = z.read("EPUB/content.opf").decode()
        item = re.search(r'<item [^>]*properties="cover-image"[^>]*/>', opf)
        assert item, opf
        href = re.search(r'href="([^"]+)"', item.group(0)).group(1)
        kind = re.search(r'media-type="([^"]+)"', item.group(0)).group(1)
        return kind, z.read(f"EPUB/{href}")


SAMPLE_OUTPUT = ("output: {dir: build, formats: [mp3, m4b, epub], bitrate: 192k, "
                 "sample_rate: 44100, loudness: acx}")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The samples with the read-along EPUB and a 4.5 MB PNG cover (the newcomer's case)."""
    root = tmp_path_factory.mktemp("sample")
    noisy_cover_png(root / "cover.png")
    config = make_sample(root, extra="cover: cover.png\n", output=SAMPLE_OUTPUT)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDIOBOOK_CACHE_DIR", str(root / "cache"))
        cfg = load_config(config)
        result = build(cfg, jobs=2)
    manifest = json.loads((cfg.output.dir / "manifest.json").read_text(encoding="utf-8"))
    return cfg, result, manifest


@pytest.mark.slow
def test_m4b_has_one_mark_per_manifest_chapter_with_its_title(sample):
    cfg, _, manifest = sample
    m4b = MP4(cfg.output.dir / "the-keeper-of-gannet-point.m4b")
    titles = [c["title"] for c in manifest["chapters"]]
    assert [c.title for c in m4b.chapters] == titles
    assert len(titles) == 3


def _chapters_as_players_read_them(book: Path, manifest: dict) -> None:
    """ffprobe (the QuickTime chapter track) and mutagen (Nero chpl) agree with the manifest."""
    marks = manifest["book"]["chapters"]
    probed = ffprobe_chapters(book)
    nero = MP4(book).chapters
    assert [t for t, _, _ in probed] == [m["title"] for m in marks] == [c.title for c in nero]
    for (_, start, end), mark, chapter in zip(probed, marks, nero):
        assert abs(start - mark["start_ms"] / 1000) <= 0.1, (mark, start)
        assert abs(end - mark["end_ms"] / 1000) <= 0.1, (mark, end)
        assert abs(start - chapter.start) <= 0.1


@pytest.mark.slow
def test_players_read_the_m4b_chapters_of_the_samples(sample):
    cfg, _, manifest = sample
    _chapters_as_players_read_them(cfg.output.dir / "the-keeper-of-gannet-point.m4b", manifest)


@pytest.mark.slow
@pytest.mark.parametrize("book", ["three-minute chapters", "twenty chapters"])
def test_players_read_the_m4b_chapters_of_long_and_many_chapter_books(tmp_path, monkeypatch,
                                                                      book):
    """Chapters starting past 152 s overflowed a 1/28,224,000 track (no chapter track at all)."""
    if book == "three-minute chapters":  # real prose: tests/data/jekyll/SOURCE.txt
        sources = sorted((REPO / "tests" / "data" / "jekyll").glob("*.md"))
        for path in sources:
            shutil.copy(path, tmp_path / path.name)
        names = [p.name for p in sources]
    else:
        names = [f"{n:02d}.md" for n in range(1, 21)]
        for n, name in enumerate(names, start=1):
            (tmp_path / name).write_text(f"# Part {n}\n\nThe keeper wrote line {n} in the log.\n",
                                         encoding="utf-8")
    (tmp_path / "audiobook.yml").write_text(
        "title: Players\noutput: {formats: [m4b], loudness: none}\nchapters:\n"
        + "".join(f"  - source: {name}\n" for name in names), encoding="utf-8")
    monkeypatch.setenv("AUDIOBOOK_CACHE_DIR", str(tmp_path / "cache"))
    cfg = load_config(tmp_path / "audiobook.yml")
    build(cfg, jobs=2)
    manifest = json.loads((cfg.output.dir / "manifest.json").read_text(encoding="utf-8"))
    if book == "three-minute chapters":
        assert manifest["book"]["chapters"][-1]["start_ms"] > 152_000 * 2
    _chapters_as_players_read_them(cfg.output.dir / manifest["book"]["file"], manifest)


def best_lag(reference: array, signal: array, at: int, search: int) -> int:
    """The shift of reference within signal near `at` that matches best (cross-correlation)."""
    best, best_score = 0, -math.inf
    for lag in range(-search, search + 1):
        start = at + lag
        window = signal[start:start + len(reference)]
        score = sum(a * b for a, b in zip(reference, window))
        if score > best_score:
            best, best_score = lag, score
    return best


@pytest.mark.slow
def test_m4b_marks_sit_on_each_chapters_real_audio_to_the_millisecond(sample):
    """Where each chapter's voice begins in the MP3, it begins in the m4b: mark + same offset.

    The m4b is AAC joined from per-chapter streams; a mark that forgot an
    encoder priming frame (1024 samples, 23 ms) would be off by far more than 1 ms.
    """
    cfg, _, manifest = sample
    book = cfg.output.dir / "the-keeper-of-gannet-point.m4b"
    m4b = MP4(book)
    joined = pcm_of(book)
    voice = 32768 * 10 ** (-30 / 20)
    for mark, entry in zip(m4b.chapters, manifest["chapters"]):
        chapter = pcm_of(cfg.output.dir / entry["file"])
        onset = next(i for i, x in enumerate(chapter) if abs(x) > voice)
        reference = chapter[onset - 256:onset + 768]
        expected = round(mark.start * 44100) + onset - 256
        assert abs(best_lag(reference, joined, expected, 200)) <= 44, entry["title"]
    total = sum(entry["aac"]["frames"] for entry in manifest["chapters"]) * 1024 - 1024
    assert len(joined) == total  # the edit list skips the first priming frame only


@pytest.mark.slow
def test_m4b_is_store_sized_mono_aac(sample):
    cfg, _, manifest = sample
    book = cfg.output.dir / "the-keeper-of-gannet-point.m4b"
    info = MP4(book).info
    assert info.channels == 1 and info.codec.startswith("mp4a")
    assert info.bitrate <= 96_000
    mp3s = sum((cfg.output.dir / c["file"]).stat().st_size for c in manifest["chapters"])
    assert book.stat().st_size <= mp3s / 2


@pytest.mark.slow
def test_m4b_carries_book_tags_cover_and_audiobook_kind(sample):
    cfg, _, _ = sample
    tags = MP4(cfg.output.dir / "the-keeper-of-gannet-point.m4b").tags
    assert tags["©nam"] == ["The Keeper of Gannet Point"]
    assert tags["©ART"] == ["The audiobook-pipeline authors"]
    assert tags["©alb"] == ["The Keeper of Gannet Point"]
    assert tags["©day"] == ["2026"]
    assert tags["stik"] == [2]
    assert tags["covr"][0].imageformat == MP4Cover.FORMAT_JPEG


@pytest.mark.slow
def test_chapter_mp3s_carry_title_artist_album_track_and_cover(sample):
    cfg, _, manifest = sample
    for n, entry in enumerate(manifest["chapters"], start=1):
        tags = MP3(cfg.output.dir / entry["file"]).tags
        assert str(tags["TIT2"]) == entry["title"]
        assert str(tags["TPE1"]) == "The audiobook-pipeline authors"
        assert str(tags["TALB"]) == "The Keeper of Gannet Point"
        assert str(tags["TRCK"]) == f"{n}/3"
        assert tags.getall("APIC")[0].mime == "image/jpeg"


@pytest.mark.slow
def test_a_4_mb_png_cover_is_one_jpeg_of_at_most_500_000_bytes_in_every_file(sample):
    cfg, _, manifest = sample
    png = (cfg.root / "cover.png").read_bytes()
    assert len(png) > 4_000_000 and image_kind(png) == "png"
    covers = [tags.getall("APIC")[0].data
              for tags in (MP3(cfg.output.dir / e["file"]).tags for e in manifest["chapters"])]
    covers.append(bytes(MP4(cfg.output.dir / manifest["book"]["file"]).tags["covr"][0]))
    kind, in_epub = epub_cover(cfg.output.dir / manifest["readalong"]["file"])
    assert kind == "image/jpeg"
    covers.append(in_epub)
    assert len(covers) == 5 and len(set(covers)) == 1, "one cover, the same bytes everywhere"
    jpeg = covers[0]
    assert image_kind(jpeg) == "jpg" and len(jpeg) <= 500_000
    # Smaller first (3000, 2400, 1800: 4.2, 2.4, 1.4 MB at good quality), then coarser at
    # 1400 pixels: this noise is 0.82 MB even as a 1400-pixel JPEG at the first quality.
    assert package.image_size(jpeg) == (1400, 1400)
    assert len(audio.cover_jpeg(png, 1400, 1400, package.COVER_QUALITIES[0])) > 500_000


@pytest.mark.slow
def test_the_samples_read_along_epub_is_at_most_1_3x_the_m4b_and_passes_epubcheck(sample):
    cfg, _, manifest = sample
    epub = cfg.output.dir / manifest["readalong"]["file"]
    m4b = cfg.output.dir / manifest["book"]["file"]
    assert epub.stat().st_size <= 1.3 * m4b.stat().st_size, (epub.stat().st_size,
                                                             m4b.stat().st_size)
    with zipfile.ZipFile(epub) as z:
        audio_files = sorted(n for n in z.namelist() if n.startswith("EPUB/audio/"))
    assert audio_files == [f"EPUB/audio/00{i}.m4a" for i in (1, 2, 3)]
    result = epubcheck(epub)
    assert "0 fatals / 0 errors / 0 warnings" in result.stdout + result.stderr, result.stdout


@pytest.mark.slow
def test_playlist_lists_the_chapters_in_order(sample):
    cfg, _, manifest = sample
    lines = (cfg.output.dir / "playlist.m3u").read_text(encoding="utf-8").splitlines()
    files = [line for line in lines if line and not line.startswith("#")]
    assert files == [c["file"] for c in manifest["chapters"]]
    assert files == sorted(files)


@pytest.mark.slow
def test_every_chapter_mp3_passes_an_independent_acx_check(sample):
    cfg, _, manifest = sample
    for entry in manifest["chapters"]:
        path = cfg.output.dir / entry["file"]
        info = MP3(path).info
        assert info.sample_rate == 44100
        assert info.bitrate >= 192000 and "CBR" in str(info.bitrate_mode)
        samples = pcm_of(path)
        n = len(samples)
        assert n / 44100 <= 120 * 60
        rms = math.sqrt(sum(s * s for s in samples) / n)
        assert -23 <= dbfs(rms) <= -18, path.name
        assert dbfs(max(abs(min(samples)), max(samples))) <= -3.0, path.name
        voice = 32768 * 10 ** (-40 / 20)
        first = next(i for i, s in enumerate(samples) if abs(s) > voice)
        last = next(i for i in range(n - 1, -1, -1) if abs(samples[i]) > voice)
        assert 0.5 <= first / 44100 <= 1.0, path.name
        assert 1.0 <= (n - last) / 44100 <= 5.0, path.name
        quietest = min(math.sqrt(sum(s * s for s in samples[i:i + 22050]) / 22050)
                       for i in range(0, n - 22050, 11025))
        assert -100 < dbfs(quietest) <= -60, "room tone, not digital silence"


@pytest.mark.slow
def test_audio_report_passes_the_sample_and_shows_a_row_per_file(sample):
    cfg, _, _ = sample
    report = check.audio_report(cfg)
    assert report.passed, report
    names = [r.name for r in report.files]
    assert names == [c["file"] for c in sample[2]["chapters"]] + ["the-keeper-of-gannet-point.m4b"]


@pytest.mark.slow
def test_check_audio_prints_a_row_per_file_and_passes_the_64k_m4b(sample):
    from conftest import run_cli

    cfg, _, _ = sample
    proc = run_cli("-c", str(cfg.path), "check", "--audio", cwd=cfg.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    assert rows["the-keeper-of-gannet-point.m4b"].endswith("ok")
    assert rows["01-the-lighthouse-keeper.mp3"].endswith("ok")
    assert "4/4 file(s) pass" in proc.stdout


@pytest.mark.slow
def test_m4b_only_keeps_chapter_aac_hidden_and_writes_no_playlist(tmp_path, monkeypatch):
    config = make_sample(tmp_path, output="output: {dir: build, formats: [m4b], bitrate: 192k, "
                                          "sample_rate: 44100, loudness: acx}")
    (tmp_path / "samples/chapters/02-the-harbour-office.md").unlink()
    (tmp_path / "samples/chapters/03-two-voices.md").unlink()
    text = config.read_text().split("  - source: samples/chapters/02")[0]
    config.write_text(text)
    cfg = load_config(config)
    build(cfg, jobs=2)
    visible = sorted(p.name for p in cfg.output.dir.iterdir() if not p.name.startswith("."))
    assert visible == ["manifest.json", "the-keeper-of-gannet-point.m4b"]
    assert len(MP4(cfg.output.dir / "the-keeper-of-gannet-point.m4b").chapters) == 1


@pytest.mark.slow
def test_a_chapter_longer_than_acx_allows_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr("pipeline.package.ACX_MAX_MINUTES", 0.1)  # 6 s stands in for 120 min
    (tmp_path / "short.md").write_text("# Short\n\nA short line.\n", encoding="utf-8")
    (tmp_path / "long.md").write_text("# The Long One\n\n" + "Words go on and on. " * 12 + "\n",
                                      encoding="utf-8")
    (tmp_path / "audiobook.yml").write_text(
        "title: T\nauthor: A\nchapters:\n  - source: short.md\n  - source: long.md\n",
        encoding="utf-8")
    cfg = load_config(tmp_path / "audiobook.yml")
    with pytest.raises(InputError) as caught:
        build(cfg, jobs=2)
    message = str(caught.value)
    assert "chapter 2 'The Long One'" in message and "ACX allows at most" in message
    manifest = json.loads((cfg.output.dir / "manifest.json").read_text(encoding="utf-8"))
    # The chapter that fits is kept; no m4b is made from half a book.
    assert [c["index"] for c in manifest["chapters"]] == [1]
    assert not (cfg.output.dir / "t.m4b").exists()


@pytest.mark.slow
def test_an_epub_book_without_cover_key_gets_the_epub_cover(tmp_path):
    from epub_factory import Doc, story_body, write_epub

    png = cover_png(tmp_path / "cover.png").read_bytes()
    body = story_body("Opening", ["Hello there.", "Goodbye."], 1)
    write_epub(tmp_path / "book.epub", [Doc("c1.xhtml", body, toc="Opening")], cover=png)
    (tmp_path / "audiobook.yml").write_text(
        "title: E\nauthor: A\noutput: {formats: [m4b]}\nchapters:\n  - source: book.epub\n",
        encoding="utf-8")
    cfg = load_config(tmp_path / "audiobook.yml")
    build(cfg, jobs=2)
    assert bytes(MP4(cfg.output.dir / "e.m4b").tags["covr"][0]) == package.fit_cover(png)


TWO_CHAPTERS = ("title: Two\nauthor: A\noutput: {formats: [mp3, m4b], loudness: none}\n"
                "chapters:\n  - source: one.md\n  - source: two.md\n")


def two_chapter_book(root: Path) -> Path:
    (root / "one.md").write_text("# One\n\nThe lamp was lit at dusk.\n", encoding="utf-8")
    (root / "two.md").write_text("# Two\n\nThe wind did all the talking.\n", encoding="utf-8")
    (root / "audiobook.yml").write_text(TWO_CHAPTERS, encoding="utf-8")
    return root / "audiobook.yml"


@pytest.mark.slow
def test_a_partial_build_says_it_wrote_no_m4b_and_why(tmp_path):
    from conftest import run_cli

    config = two_chapter_book(tmp_path)
    proc = run_cli("-c", str(config), "build", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no m4b written: this build made only 1 of 2 chapters" in proc.stderr
    assert not (tmp_path / "build" / "two.m4b").exists()


def planned(config: Path):
    from pipeline.build import synthesize
    from pipeline.cache import open_cache
    from pipeline.plan import make_plan

    cfg = load_config(config)
    cache = open_cache(cfg)
    plan = make_plan(cfg, cache)
    synthesize(plan, cache)
    return plan, cache


@pytest.mark.slow
def test_render_to_stitches_one_chapter_with_room_tone_into_any_format(tmp_path):
    plan, cache = planned(two_chapter_book(tmp_path))
    with cache:
        cp = plan.chapters[0]
        wav = package.render_to(plan, cp, cache, tmp_path / "say.wav")
        loud = package.render_to(plan, cp, cache, tmp_path / "say.m4a",
                                 loudness=loudness.Target("rms", -20.0, -1.0))
    samples = pcm_of(tmp_path / "say.wav")
    assert len(samples) == wav["frames"]
    head = samples[: 44100 * 600 // 1000]  # the chapter's head pause
    assert -90 < dbfs(math.sqrt(sum(s * s for s in head) / len(head))) < -60, "room tone"
    assert abs(loud["levels"]["rms_db"] - -20.0) < 1.0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_segment_missing_from_the_cache_is_raised_with_every_missing_key(tmp_path, monkeypatch):
    from pipeline.cache import open_cache
    from pipeline.errors import SegmentMissing

    plan, cache = planned(two_chapter_book(tmp_path))
    cache.close()
    monkeypatch.setenv("AUDIOBOOK_CACHE_DIR", str(tmp_path / "empty"))
    with open_cache(plan.cfg) as empty, pytest.raises(SegmentMissing) as caught:
        package.render_to(plan, plan.chapters[1], empty, tmp_path / "x.wav")
    assert caught.value.keys == [s.key for s in plan.chapters[1].segments]


# ------------------------------------------------------------------ covers


ONE_CHAPTER = ("title: Covered\nauthor: A\ncover: {cover}\noutput: {{formats: [mp3, m4b, epub], "
               "loudness: none{extra}}}\nchapters: [one.md]\n")


def covered_book(root: Path, cover: bytes, name: str = "cover.png", extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(cover)
    (root / "one.md").write_text("# One\n\nThe lamp was lit at dusk.\n", encoding="utf-8")
    (root / "audiobook.yml").write_text(ONE_CHAPTER.format(cover=name, extra=extra),
                                        encoding="utf-8")
    return root / "audiobook.yml"


def embedded_covers(out_dir: Path) -> list[bytes]:
    """The cover of the chapter MP3 (APIC), the M4B (covr) and the EPUB (its cover item)."""
    return [MP3(out_dir / "01-one.mp3").tags.getall("APIC")[0].data,
            bytes(MP4(out_dir / "covered.m4b").tags["covr"][0]),
            epub_cover(out_dir / "covered.epub")[1]]


@pytest.mark.slow
def test_two_builds_in_different_folders_fit_the_cover_to_the_same_bytes(tmp_path, monkeypatch):
    png = noisy_cover_png(tmp_path / "noisy.png").read_bytes()
    found = []
    for name in ("first", "second"):  # separate caches: the cover is fitted twice
        monkeypatch.setenv("AUDIOBOOK_CACHE_DIR", str(tmp_path / name / "cache"))
        cfg = load_config(covered_book(tmp_path / name, png))
        build(cfg, jobs=2)
        found += embedded_covers(cfg.output.dir)
    assert len(set(found)) == 1 and len(found[0]) <= 500_000 and image_kind(found[0]) == "jpg"


def test_a_fitted_cover_does_not_depend_on_the_cpus_simd(tmp_path):
    """ffmpeg picks SIMD code at run time; with the flags left to it, a JPEG made on an AVX2
    machine differed from one made in plain C (its fdct and scaler round differently)."""
    noisy = noisy_cover_png(tmp_path / "noisy.png").read_bytes()
    ours = audio.jpeg_args(700, 700, 5)
    assert "-cpuflags" in ours
    everything = ours[:ours.index("-cpuflags")] + ours[ours.index("-cpuflags") + 2:]
    made = audio.run_ffmpeg(ours, stdin=noisy)
    assert audio.run_ffmpeg(everything, stdin=noisy) == made  # this CPU's SIMD, all of it
    assert made == audio.cover_jpeg(noisy, 700, 700, 5)


def test_a_cover_is_made_smaller_then_coarser_until_it_fits():
    steps = package.cover_steps((3000, 3000))
    assert steps[:5] == [((3000, 3000), 3), ((2400, 2400), 3), ((1800, 1800), 3),
                         ((1400, 1400), 3), ((1400, 1400), 5)]
    assert steps[-1] == ((300, 300), 31)
    # Never scaled up, and a small image's steps are its qualities.
    assert package.cover_steps((800, 1200))[:2] == [((800, 1200), 3), ((800, 1200), 5)]
    assert package.cover_steps((4000, 1000))[0] == ((3000, 750), 3)


def test_a_jpeg_within_500_000_bytes_keeps_its_bytes_and_one_over_is_fitted(tmp_path):
    noisy = noisy_cover_png(tmp_path / "noisy.png").read_bytes()
    small = audio.cover_jpeg(noisy, 600, 600, 3)
    assert len(small) <= 500_000
    assert package.fit_cover(small) == small
    big = audio.cover_jpeg(noisy, 1500, 1500, 2)
    assert 500_000 < len(big) < 10 << 20  # the old rule kept JPEGs up to 10 MiB
    fitted = package.fit_cover(big)
    assert image_kind(fitted) == "jpg" and len(fitted) <= 500_000


def test_a_transparent_cover_is_laid_on_white_not_black(tmp_path):
    subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i", "color=c=red@0.0:s=65x41,format=rgba",
                    "-frames:v", "1", "-c:v", "png", "-f", "image2", "-y",
                    str(tmp_path / "clear.png")], check=True)
    clear = (tmp_path / "clear.png").read_bytes()
    assert clear[25] == 6  # PNG colour type 6: RGB and alpha
    jpeg = package.fit_cover(clear)
    assert image_kind(jpeg) == "jpg" and package.image_size(jpeg) == (65, 41)
    rgb = subprocess.run([FFMPEG, "-v", "error", "-i", "pipe:0", "-f", "rawvideo", "-pix_fmt",
                          "rgb24", "-"], input=jpeg, capture_output=True, check=True).stdout
    assert min(rgb) >= 250, "transparent parts must come out white"


def test_a_cover_the_old_rule_fitted_is_never_embedded(tmp_path):
    # Rule 1 kept covers up to 10 MiB as they were, and an SVG as PNG, in covers/.
    svg = (b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="60">'
           b'<rect width="40" height="60" fill="navy"/></svg>')
    folder = tmp_path / "covers"
    folder.mkdir()
    old = cover_png(tmp_path / "old.png").read_bytes()
    source = hashlib.sha256(b"1\0" + svg).hexdigest()[:32]
    (folder / f"{source}-{hashlib.sha256(old).hexdigest()[:32]}.png").write_bytes(old)
    fitted = package.remembered_cover(svg, folder)
    assert fitted != old and image_kind(fitted) == "jpg"
    assert fitted == package.fit_cover(svg)


@pytest.mark.slow
def test_cover_file_writes_the_cover_full_size_for_a_store_and_records_it(tmp_path, monkeypatch):
    png = noisy_cover_png(tmp_path / "noisy.png").read_bytes()
    config = covered_book(tmp_path / "book", png, extra=", cover_file: true")
    cfg = load_config(config)
    build(cfg, jobs=2)
    store = cfg.output.dir / "covered-cover.png"
    assert store.read_bytes() == png  # as given: full size, not the embedded JPEG
    record = json.loads((cfg.output.dir / "manifest.json").read_text())["cover_file"]
    assert record["file"] == "covered-cover.png" and record["bytes"] == len(png)
    assert record["sha256"] == hashlib.sha256(png).hexdigest()
    assert all(len(c) <= 500_000 for c in embedded_covers(cfg.output.dir))
    written = store.stat().st_mtime_ns
    assert build(load_config(config), jobs=2).output.chapters_written == 0
    assert store.stat().st_mtime_ns == written  # nothing changed: not written again
    # A JPEG cover is written as given too (over 500 kB: not the embedded one); the PNG
    # this book wrote is removed.
    jpeg = audio.cover_jpeg(png, 3000, 3000, 2)
    assert len(jpeg) > 500_000
    (tmp_path / "book" / "cover.jpg").write_bytes(jpeg)
    config.write_text(config.read_text().replace("cover: cover.png", "cover: cover.jpg"))
    build(load_config(config), jobs=2)
    assert not store.exists()
    assert (cfg.output.dir / "covered-cover.jpg").read_bytes() == jpeg
    # An SVG cover: a store takes PNG.
    svg = (b'<svg xmlns="http://www.w3.org/2000/svg" width="300" height="450">'
           b'<rect width="300" height="450" fill="navy"/></svg>')
    (tmp_path / "book" / "cover.svg").write_bytes(svg)
    config.write_text(config.read_text().replace("cover: cover.jpg", "cover: cover.svg"))
    build(load_config(config), jobs=2)
    assert not (cfg.output.dir / "covered-cover.jpg").exists()
    made = store.read_bytes()
    assert image_kind(made) == "png" and package.image_size(made) == (300, 450)
    # Asked no more: removed.
    config.write_text(config.read_text().replace(", cover_file: true", ""))
    build(load_config(config), jobs=2)
    assert not store.exists()
    assert "cover_file" not in json.loads((cfg.output.dir / "manifest.json").read_text())
