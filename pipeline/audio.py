"""Audio: where ffmpeg is, decoding, trimming, stitching, encoding.

Every segment is decoded to one PCM format (16-bit mono at the output rate)
before anything is joined: encoded files are never concatenated as bytes.
A chapter is stitched by streaming PCM chunks into a temporary raw file, so
memory holds one segment at a time and time is linear in the chapter length
(pydub's `+=` in a loop is quadratic).
"""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

with warnings.catch_warnings():
    # pydub looks for ffmpeg on PATH at import and warns; we never use its lookup.
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment
    from pydub.silence import detect_leading_silence

from pipeline.errors import AudiobookError

SAMPLE_WIDTH = 2  # 16-bit: pydub misreads float WAVs, keep intermediates int16
CHANNELS = 1  # ACX recommends mono; all our voices are mono
TRIM_THRESHOLD_DBFS = -50.0
EDGE_FADE_MS = 5
ROOM_TONE_DBFS = -72.0


class AudioToolError(AudiobookError):
    pass


@lru_cache(maxsize=1)
def ffmpeg_path() -> str:
    """AUDIOBOOK_FFMPEG, else the pinned imageio-ffmpeg build, else PATH."""
    override = os.environ.get("AUDIOBOOK_FFMPEG")
    if override:
        if not Path(override).exists():
            raise AudioToolError(f"AUDIOBOOK_FFMPEG={override}: no such file")
        return override
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001 - any failure means: look on PATH
        found = shutil.which("ffmpeg")
        if found:
            return found
    raise AudioToolError("no ffmpeg: reinstall audiobook-pipeline (imageio-ffmpeg) "
                         "or set AUDIOBOOK_FFMPEG to an ffmpeg binary")


@lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    out = run_ffmpeg(["-version"]).decode(errors="replace")
    return out.splitlines()[0] if out else "unknown"


def run_ffmpeg(args: Sequence[str], stdin: bytes | None = None) -> bytes:
    """Run ffmpeg; return stdout; raise with its last error lines on failure."""
    cmd = [ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", *args]
    proc = subprocess.run(cmd, input=stdin, capture_output=True,
                          stdin=None if stdin is not None else subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise AudioToolError("ffmpeg failed: " + (" / ".join(tail) or f"exit {proc.returncode}"))
    return proc.stdout


def decode(data: bytes, fmt: str, rate: int) -> AudioSegment:
    """Any audio the backends return, as 16-bit mono PCM at rate."""
    if fmt == "wav":
        try:
            seg = AudioSegment.from_wav(io.BytesIO(data))
        except Exception:  # noqa: BLE001 - a WAV pydub cannot read: let ffmpeg try
            seg = None
        if seg is not None and seg.sample_width == SAMPLE_WIDTH:
            return seg.set_channels(CHANNELS).set_frame_rate(rate)
    raw = run_ffmpeg(["-i", "pipe:0", "-vn", "-f", "s16le", "-acodec", "pcm_s16le",
                      "-ac", str(CHANNELS), "-ar", str(rate), "pipe:1"], stdin=data)
    return AudioSegment(data=raw, sample_width=SAMPLE_WIDTH, frame_rate=rate, channels=CHANNELS)


def check_audio(data: bytes, fmt: str) -> float:
    """Seconds of audio in data; raise if it does not decode or is empty."""
    seg = decode(data, fmt, 16000)
    if seg.frame_count() < 160:
        raise AudioToolError("audio is empty")
    return seg.frame_count() / 16000


def trim(seg: AudioSegment) -> AudioSegment:
    """Cut leading and trailing silence so configured pauses are exact."""
    start = detect_leading_silence(seg, TRIM_THRESHOLD_DBFS, chunk_size=5)
    end = detect_leading_silence(seg.reverse(), TRIM_THRESHOLD_DBFS, chunk_size=5)
    if start + end >= len(seg):
        return seg[:0]
    body = seg[start:len(seg) - end]
    return body.fade_in(EDGE_FADE_MS).fade_out(EDGE_FADE_MS)


@lru_cache(maxsize=4)
def _room_tone_second(rate: int) -> bytes:
    """One second of quiet, deterministic noise: ACX flags digital silence."""
    rng = random.Random(20261125)
    amplitude = 32768 * 10 ** (ROOM_TONE_DBFS / 20) * 3 ** 0.5  # uniform noise: rms = a / sqrt(3)
    peak = max(1, int(round(amplitude)))
    samples = [rng.randint(-peak, peak) for _ in range(rate)]
    return b"".join(s.to_bytes(2, "little", signed=True) for s in samples)


def room_tone(ms: int, rate: int) -> bytes:
    frames = rate * ms // 1000
    second = _room_tone_second(rate)
    whole, rest = divmod(frames, rate)
    return second * whole + second[: rest * SAMPLE_WIDTH]


@dataclass(frozen=True)
class Stitched:
    path: Path  # raw s16le mono PCM
    frames: int
    rate: int

    @property
    def duration_ms(self) -> int:
        return self.frames * 1000 // self.rate


def stitch(parts: Iterable[AudioSegment | int], rate: int, directory: Path) -> Stitched:
    """Join audio and pauses (ints, in ms of room tone) into a raw PCM file."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".stitch-", suffix=".raw", dir=directory)
    frames = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                chunk = room_tone(part, rate) if isinstance(part, int) else part.raw_data
                out.write(chunk)
                frames += len(chunk) // SAMPLE_WIDTH
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Stitched(Path(name), frames, rate)


def atomic_target(path: Path) -> Path:
    """A temp name beside path; rename it into place with os.replace."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def encode_mp3(pcm: Stitched, out: Path, bitrate: str, tags: dict[str, str],
               filters: str | None = None) -> None:
    """CBR MP3 with ID3v2 tags, written atomically and bit-exactly."""
    tmp = atomic_target(out)
    args = ["-f", "s16le", "-ar", str(pcm.rate), "-ac", str(CHANNELS), "-i", str(pcm.path)]
    if filters:
        args += ["-af", filters]
    args += ["-map_metadata", "-1", "-c:a", "libmp3lame", "-b:a", bitrate,
             "-ar", str(pcm.rate), "-ac", str(CHANNELS), "-id3v2_version", "3"]
    for key, value in tags.items():
        if value:
            args += ["-metadata", f"{key}={value}"]
    args += ["-fflags", "+bitexact", "-flags:a", "+bitexact", "-f", "mp3", "-y", str(tmp)]
    try:
        run_ffmpeg(args)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> bool:
    """Write bytes atomically; skip (and return False) when already identical."""
    if path.exists() and path.read_bytes() == data:
        return False
    tmp = atomic_target(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def encode_file(pcm: Stitched, out: Path, bitrate: str) -> None:
    """Encode by the file's suffix: .mp3, .wav or .m4a; atomically."""
    suffix = out.suffix.lower()
    if suffix == ".mp3":
        encode_mp3(pcm, out, bitrate, {})
        return
    codec = {".wav": ["-c:a", "pcm_s16le", "-f", "wav"],
             ".m4a": ["-c:a", "aac", "-b:a", bitrate, "-f", "mp4"]}[suffix]
    tmp = atomic_target(out)
    try:
        run_ffmpeg(["-f", "s16le", "-ar", str(pcm.rate), "-ac", str(CHANNELS), "-i", str(pcm.path),
                    "-map_metadata", "-1", *codec, "-fflags", "+bitexact", "-flags:a", "+bitexact",
                    "-y", str(tmp)])
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
