"""Files outside the output folder are never written or removed (attack review F1-F3, F16, F17, F21).

Each test plants what an untrusted book repository could ship (links,
forged manifests, temp-name links) next to a real build, and hashes a
"victim" folder outside the book before and after.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import imageio_ffmpeg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import files, package
from pipeline.build import build
from pipeline.config import load_config
from pipeline.errors import AudiobookError, InputError
from pipeline.sources.rules import image_kind
from tests.conftest import run_cli

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
BOOK = "title: {title}\nauthor: {author}\nlanguage: {language}\n" \
       "output: {{dir: {out}, formats: [mp3, m4b], loudness: none}}\nchapters:\n{chapters}"


def write_book(root: Path, title: str = "Innocent", out: str = "build", chapters: int = 1,
               author: str = "A", language: str = "en") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = ""
    for n in range(1, chapters + 1):
        (root / f"{n:02d}.md").write_text(f"# Part {n}\n\nAn innocent chapter.\n", encoding="utf-8")
        lines += f"  - source: {n:02d}.md\n"
    (root / "audiobook.yml").write_text(BOOK.format(title=title, author=author, language=language,
                                                    out=out, chapters=lines), encoding="utf-8")
    return root / "audiobook.yml"


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under folder (links not followed): name -> content hash or link target."""
    found = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            found[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[rel] = "dir"
    return found


@pytest.fixture
def victim(tmp_path):
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "important.txt").write_text("precious\n")
    (folder / "song.mp3").write_bytes(b"ID3 not ours")
    (folder / "manifest.json").write_text('{"mine": true}\n')
    return folder


def dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


# ------------------------------------------------------------------ F1


@pytest.mark.slow
def test_f1_a_forged_manifest_cannot_delete_through_a_linked_subfolder(tmp_path, victim):
    config = write_book(tmp_path / "evil")
    cfg = load_config(config)
    out = cfg.output.dir
    out.mkdir()
    (out / "evil").symlink_to(victim)
    sha = hashlib.sha256((victim / "important.txt").read_bytes()).hexdigest()
    # The strongest forgery: our own owner token and the file's true hash.
    (out / "manifest.json").write_text(json.dumps({
        "generator": "audiobook-pipeline 0.1.0", "owner": package.owner_token(cfg), "title": "Innocent",
        "chapters": [{"index": 9, "file": "evil/important.txt", "sha256": sha, "bytes": 9}]}))
    before = snapshot(victim)
    build(cfg, jobs=1)
    assert snapshot(victim) == before


@pytest.mark.slow
def test_an_output_dir_that_is_a_link_inside_the_project_is_refused(tmp_path, victim):
    config = write_book(tmp_path / "evil")
    (tmp_path / "evil" / "build").symlink_to(victim)
    before = snapshot(victim)
    proc = run_cli("-c", str(config), "build", "-q", cwd=tmp_path / "evil")
    assert proc.returncode == 2, proc.stderr
    assert "output.dir" in proc.stderr and "is a link" in proc.stderr
    assert snapshot(victim) == before


# ------------------------------------------------------------------ F2


@pytest.mark.slow
def test_f2_planted_temp_name_links_are_never_written_through(tmp_path, victim):
    cfg = load_config(write_book(tmp_path / "evil"))
    out = cfg.output.dir
    out.mkdir()
    pid = os.getpid()  # this build runs in this process: the old temp names used its pid
    for name in ("manifest.json", "01-part-1.mp3", "playlist.m3u", "innocent.m4b"):
        (out / f".{name}.tmp-{pid}").symlink_to(victim / "important.txt")
        (out / f".{name}.tmp-{pid}.ffmeta").symlink_to(victim / "important.txt")
    (out / f".stitch-{pid}-x.raw").symlink_to(victim / "song.mp3")
    before = snapshot(victim)
    build(cfg, jobs=1)
    assert snapshot(victim) == before
    assert not (out / "manifest.json").is_symlink()
    assert json.loads((out / "manifest.json").read_text())["title"] == "Innocent"


def test_temp_paths_are_fresh_files_never_an_existing_name(tmp_path):
    a = files.temp_path(tmp_path, "x.mp3", ".mp3")
    b = files.temp_path(tmp_path, "x.mp3", ".mp3")
    assert a != b and a.is_file() and not a.is_symlink()
    assert a.name.startswith(f".x.mp3.tmp-{os.getpid()}-")


def test_a_manifest_link_is_replaced_not_written_through(tmp_path, victim):
    target = tmp_path / "out.json"
    target.symlink_to(victim / "important.txt")
    files.write_atomic(target, b"{}\n")
    assert (victim / "important.txt").read_text() == "precious\n"
    assert not target.is_symlink() and target.read_bytes() == b"{}\n"


# ------------------------------------------------------------------ F3


@pytest.mark.slow
def test_f3_a_manifest_some_other_program_wrote_is_refused_and_kept(tmp_path):
    config = write_book(tmp_path / "f", out="music")
    music = tmp_path / "f" / "music"
    music.mkdir()
    (music / "song.mp3").write_text("song")
    (music / "manifest.json").write_text('{"chapters":[{"index":7,"file":"song.mp3"}]}')
    before = snapshot(music)
    proc = run_cli("-c", str(config), "build", "-q", cwd=tmp_path / "f")
    assert proc.returncode == 2, proc.stderr
    assert "manifest.json was not written by audiobook-pipeline" in proc.stderr
    assert "internal error" not in proc.stderr
    assert snapshot(music) == before


@pytest.mark.slow
def test_f3_two_books_in_one_output_dir_the_second_is_refused_naming_both(tmp_path):
    build(load_config(write_book(tmp_path / "A", title="Book A", out="../audio")), jobs=1)
    audio_dir = tmp_path / "audio"
    before = snapshot(audio_dir)
    config_b = write_book(tmp_path / "B", title="Book B", out="../audio")
    (tmp_path / "B" / "01.md").write_text("# Part 1\n\nA chapter of its own.\n", encoding="utf-8")
    cache = Path(os.environ["AUDIOBOOK_CACHE_DIR"])
    made = sorted(cache.rglob("*.seg"))
    proc = run_cli("-c", str(config_b), "build", "-q", cwd=tmp_path / "B")
    assert proc.returncode == 2, proc.stderr
    assert "'Book A'" in proc.stderr and "'Book B'" in proc.stderr
    assert snapshot(audio_dir) == before
    assert sorted(cache.rglob("*.seg")) == made  # refused before anything was made


@pytest.mark.slow
@pytest.mark.parametrize("other, named", [({"author": "B. Other"}, "by B. Other"),
                                          ({"language": "fr"}, "(fr)")])
def test_the_same_title_by_another_author_or_in_another_language_is_another_book(
        tmp_path, other, named):
    build(load_config(write_book(tmp_path / "A", title="Book", out="../audio")), jobs=1)
    audio_dir = tmp_path / "audio"
    before = snapshot(audio_dir)
    config_b = write_book(tmp_path / "B", title="Book", out="../audio", **other)
    proc = run_cli("-c", str(config_b), "build", "-q", cwd=tmp_path / "B")
    assert proc.returncode == 2, proc.stderr
    assert "holds the output of 'Book' by A (en), not of 'Book'" in proc.stderr
    assert named in proc.stderr and "delete that folder" in proc.stderr
    assert snapshot(audio_dir) == before


def as_the_previous_version_wrote_it(manifest: Path, config: Path) -> None:
    """Rewrite a manifest as manifest_format 2 did: owner = hash of the config's folder and title."""
    data = json.loads(manifest.read_text(encoding="utf-8"))
    folder = config.resolve().parent
    data.update(manifest_format=2, owner=hashlib.sha256(
        f"audiobook-pipeline\0{folder}\0{data['title']}".encode()).hexdigest()[:32])
    data.pop("language", None)  # format 2 kept none
    manifest.write_text(json.dumps(data, indent=2), encoding="utf-8")


@pytest.mark.slow
def test_a_moved_folder_the_previous_version_built_is_still_this_books(tmp_path):
    """A format-2 manifest (path owner) that names this title and author: trusted, then upgraded."""
    config = write_book(tmp_path / "old", chapters=2)
    build(load_config(config), jobs=1)
    as_the_previous_version_wrote_it(tmp_path / "old/build/manifest.json", config)
    (tmp_path / "old").rename(tmp_path / "moved")
    (tmp_path / "moved/02.md").write_text("# Part Two\n\nRenamed.\n", encoding="utf-8")
    cfg = load_config(tmp_path / "moved/audiobook.yml")
    result = build(cfg, jobs=1)
    assert (result.chapters_written, result.chapters_unchanged) == (1, 1)  # trusted to skip work
    assert (cfg.output.dir / "02-part-two.mp3").exists()
    assert not (cfg.output.dir / "02-part-2.mp3").exists()  # and to remove its own stale files
    manifest = json.loads((cfg.output.dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["manifest_format"] == 3 and manifest["owner"] == package.owner_token(cfg)
    assert manifest["language"] == "en"


@pytest.mark.slow
def test_a_folder_the_previous_version_built_here_keeps_its_book_when_the_author_changes(tmp_path):
    """Format 2's own rule still holds where it was written: this folder and this title."""
    config = write_book(tmp_path / "b")
    build(load_config(config), jobs=1)
    as_the_previous_version_wrote_it(tmp_path / "b/build/manifest.json", config)
    cfg = load_config(write_book(tmp_path / "b", author="A. Corrected"))
    assert build(cfg, jobs=1).chapters_written == 1  # retagged, not refused
    manifest = json.loads((cfg.output.dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["owner"] == package.owner_token(cfg) and manifest["author"] == "A. Corrected"


@pytest.mark.slow
def test_a_folder_the_previous_version_built_for_another_book_is_refused(tmp_path):
    config = write_book(tmp_path / "a", title="Book A", out="../audio")
    build(load_config(config), jobs=1)
    as_the_previous_version_wrote_it(tmp_path / "audio/manifest.json", config)
    before = snapshot(tmp_path / "audio")
    config_b = write_book(tmp_path / "b", title="Book B", out="../audio")
    proc = run_cli("-c", str(config_b), "build", "-q", cwd=tmp_path / "b")
    assert proc.returncode == 2, proc.stderr
    assert "holds the output of 'Book A' by A, not of 'Book B' by A (en)" in proc.stderr
    assert snapshot(tmp_path / "audio") == before


def test_the_owner_token_is_the_books_identity_not_its_folder(tmp_path):
    here = load_config(write_book(tmp_path / "here"))
    assert package.owner_token(load_config(write_book(tmp_path / "else" / "where"))) \
        == package.owner_token(here)
    for change in ({"title": "Other"}, {"author": "B"}, {"language": "fr"}):
        other = load_config(write_book(tmp_path / "x", **change))
        assert package.owner_token(other) != package.owner_token(here), change


@pytest.mark.slow
def test_an_untitled_book_in_a_renamed_folder_is_told_how_to_keep_its_title(tmp_path):
    root = tmp_path / "old-name"
    config = write_book(root)
    config.write_text(config.read_text().replace("title: Innocent\n", ""))
    build(load_config(config), jobs=1)
    root.rename(tmp_path / "new-name")
    proc = run_cli("build", "-q", cwd=tmp_path / "new-name")
    assert proc.returncode == 2, proc.stderr
    assert "holds the output of 'Old Name' by A (en), not of 'New Name' by A (en)" in proc.stderr
    assert "write title: 'Old Name' there" in proc.stderr


@pytest.mark.slow
def test_a_manifest_without_owner_token_is_replaced_but_deletes_nothing(tmp_path):
    cfg = load_config(write_book(tmp_path / "b"))
    out = cfg.output.dir
    out.mkdir()
    (out / "song.mp3").write_text("song")
    (out / "manifest.json").write_text(json.dumps(
        {"generator": "audiobook-pipeline 0.1.0", "chapters": [{"index": 7, "file": "song.mp3"}],
         "book": {"file": "song.mp3"}}))
    build(cfg, jobs=1)
    assert (out / "song.mp3").read_text() == "song"
    assert json.loads((out / "manifest.json").read_text())["owner"] == package.owner_token(cfg)


@pytest.mark.slow
def test_stale_files_of_our_own_go_but_a_changed_one_stays(tmp_path, caplog):
    config = write_book(tmp_path / "b", chapters=3)
    build(load_config(config), jobs=2)
    out = tmp_path / "b" / "build"
    assert (out / "03-part-3.mp3").exists() and (out / ".chapters/03-part-3.aac").exists()
    (out / "02-part-2.mp3").write_bytes(b"edited by the user")
    write_book(tmp_path / "b", chapters=1)
    build(load_config(config), jobs=2)
    assert not (out / "03-part-3.mp3").exists()  # ours, unchanged: removed
    assert not (out / ".chapters/03-part-3.aac").exists()
    assert (out / "02-part-2.mp3").read_bytes() == b"edited by the user"
    assert "not the file this book wrote" in caplog.text


# ------------------------------------------------------------------ F16


def test_f16_leftovers_of_dead_builds_go_live_ones_stay(tmp_path):
    gone = dead_pid()
    stale = [f".book.m4b.tmp-{gone}.ffmeta", f".cover-{gone}.png", f".cover.tmp-{gone}-ab12.png",
             f".ffmeta.tmp-{gone}-x9.txt", f".01-a.mp3.tmp-{gone}-k3.mp3", f".stitch-{gone}-q.raw",
             f".stitch.tmp-{gone}-q.raw"]
    live = [f".cover.tmp-{os.getpid()}-zz.png", ".hidden-user-file", "01-a.mp3"]
    for name in stale + live:
        (tmp_path / name).write_bytes(b"x")
    removed = files.remove_leftovers(tmp_path)
    assert sorted(p.name for p in removed) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(live)


# ------------------------------------------------------------------ F17


@pytest.mark.slow
@pytest.mark.parametrize("value", ["01.md", "/dev/null"])
def test_f17_output_dir_that_is_a_file_exits_2_naming_the_key(tmp_path, value):
    config = write_book(tmp_path / "o", out=value)
    proc = run_cli("-c", str(config), "build", "-q", cwd=tmp_path / "o")
    assert proc.returncode == 2, proc.stderr
    assert "output.dir" in proc.stderr and "internal error" not in proc.stderr


def test_f17_a_full_disk_is_named_with_its_path_not_internal_error():
    with pytest.raises(OSError) as caught:
        with open("/dev/full", "wb") as f:  # a real ENOSPC from the kernel
            f.write(b"x" * 8192)
            f.flush()
    assert caught.value.errno == errno.ENOSPC
    error = files.os_error(caught.value, Path("/book/build/01-a.mp3"))
    assert error.exit_code == 1
    assert str(error) == "cannot write /book/build/01-a.mp3: the disk is full; free some space " \
                         "and build again"


@pytest.mark.slow
def test_f17_a_cover_that_is_no_image_exits_2_naming_cover(tmp_path):
    config = write_book(tmp_path / "o")
    (tmp_path / "o" / "notimage.jpg").write_text("nope")
    config.write_text(config.read_text() + "cover: notimage.jpg\n")
    proc = run_cli("-c", str(config), "build", "-q", cwd=tmp_path / "o")
    assert proc.returncode == 2, proc.stderr
    assert "cover:" in proc.stderr and "not an image" in proc.stderr


# ------------------------------------------------------------------ F21


def image(path: Path, size: str, effect: str = "") -> bytes:
    source = f"color=c=navy:s={size}" + (f",{effect}" if effect else "")
    subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i", source,
                    "-frames:v", "1", "-c:v", "png", "-f", "image2", "-y", str(path)], check=True)
    return path.read_bytes()


def noise_png(width: int, height: int) -> bytes:
    """An incompressible PNG (random pixels, stored zlib blocks): big bytes, modest size."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    rows = b"".join(b"\0" + os.urandom(width * 3) for _ in range(height))
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 0))
            + chunk(b"IEND", b""))


@pytest.mark.slow
def test_f21_a_huge_cover_is_scaled_to_fit_the_caps(tmp_path):
    noisy = noise_png(1900, 1900)
    assert len(noisy) > 10 << 20
    data = package.fit_cover(noisy)
    assert image_kind(data) == "jpg" and len(data) <= package.COVER_MAX_BYTES
    wide = image(tmp_path / "wide.png", "4000x1000")
    data = package.fit_cover(wide)
    assert image_kind(data) == "jpg" and package.image_size(data) == (3000, 750)
    small = image(tmp_path / "small.png", "64x64")
    data = package.fit_cover(small)
    assert image_kind(data) == "jpg" and package.image_size(data) == (64, 64)


def test_an_svg_cover_is_rasterized_and_embedded_as_jpeg():
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="60">' \
          b'<rect width="40" height="60" fill="red"/></svg>'
    data = package.fit_cover(svg)
    assert image_kind(data) == "jpg" and package.image_size(data) == (40, 60)


def test_a_fitted_cover_is_remembered_and_a_damaged_one_made_again(tmp_path, monkeypatch):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="60">' \
          b'<rect width="40" height="60" fill="navy"/></svg>'
    folder = tmp_path / "covers"
    first = package.remembered_cover(svg, folder)
    assert first == package.fit_cover(svg) and image_kind(first) == "jpg"
    [kept] = folder.iterdir()
    real_fit = package.fit_cover
    monkeypatch.setattr(package, "fit_cover", lambda data: pytest.fail("rasterized again"))
    assert package.remembered_cover(svg, folder) == first  # read back, not made again
    kept.write_bytes(kept.read_bytes()[:-9])  # damaged: never embedded, made again
    monkeypatch.setattr(package, "fit_cover", real_fit)
    assert package.remembered_cover(svg, folder) == first
    assert [p.read_bytes() for p in folder.iterdir()] == [first]
    # A planted link (a project's cache folder may come from anywhere) is never read.
    kept.unlink()
    kept.symlink_to("/dev/zero")
    assert package.remembered_cover(svg, folder) == first
    small = package.fit_cover(image(tmp_path / "small.png", "64x64"))
    assert package.remembered_cover(small, folder) == small  # a JPEG that fits: nothing to remember
    assert len(list(folder.iterdir())) == 1


def test_a_broken_epub_svg_cover_is_a_warning_not_silence(tmp_path, caplog, monkeypatch):
    cfg = load_config(write_book(tmp_path / "e"))
    monkeypatch.setattr(package, "_epub_cover", lambda cfg: (b"<svg><unclosed", "svg"))
    assert package.book_cover(cfg) is None
    assert "the EPUB's cover could not be used" in caplog.text


# ------------------------------------------------------------------ property


PLANTS = st.lists(st.tuples(
    st.sampled_from(["manifest.json", ".chapters", "evil", "01-part-1.mp3", "innocent.m4b",
                     "playlist.m3u", f".manifest.json.tmp-{os.getpid()}", ".chapters/01-part-1.aac",
                     f".01-part-1.mp3.tmp-{os.getpid()}", "sub/deeper"]),
    st.sampled_from(["dir", "important.txt", "song.mp3", "manifest.json"])), max_size=4)
MANIFESTS = st.sampled_from(["none", "foreign", "untokened", "forged", "other-book"])


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(plants=PLANTS, manifest=MANIFESTS, title=st.sampled_from(["Innocent", "Other"]))
def test_no_build_changes_anything_outside_its_output_folder(tmp_path_factory, plants, manifest,
                                                             title):
    root = tmp_path_factory.mktemp("prop")
    victim = root / "victim"
    victim.mkdir()
    (victim / "important.txt").write_text("precious\n")
    (victim / "song.mp3").write_bytes(b"ID3 not ours")
    (victim / "manifest.json").write_text('{"generator": "audiobook-pipeline 0.1.0"}')
    cfg = load_config(write_book(root / "book", title=title))
    out = cfg.output.dir
    out.mkdir()
    for name, target in plants:
        link = out / name
        if link.exists() or link.is_symlink():
            continue
        try:
            link.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            continue  # an earlier plant put a link to a file where this one needs a folder
        link.symlink_to(victim if target == "dir" else victim / target)
    victim_files = ["evil/important.txt", "evil/song.mp3", "sub/deeper/important.txt"]
    listed = [{"index": n, "file": f, "sha256": hashlib.sha256(b"precious\n").hexdigest(),
               "bytes": 9} for n, f in enumerate(victim_files, start=2)]
    forged = {"generator": "audiobook-pipeline 0.1.0", "title": "Innocent", "chapters": listed,
              "book": {"file": "evil/song.mp3"}}
    if manifest == "foreign":
        forged = {"chapters": listed}
    if manifest == "forged":
        forged["owner"] = package.owner_token(cfg)
    if manifest == "other-book":
        forged["owner"], forged["title"] = "0" * 32, "Another"
    if manifest != "none" and not (out / "manifest.json").is_symlink():
        (out / "manifest.json").write_text(json.dumps(forged))
    before = snapshot(victim)
    try:
        build(cfg, jobs=1)
    except AudiobookError as exc:  # refusing is fine; a traceback or a changed victim is not
        assert isinstance(exc, (InputError, files.OutputWriteError)), exc
    assert snapshot(victim) == before
