"""Audio: where ffmpeg is, decoding, trimming, stitching, loudness, encoding.

Every segment is decoded to one PCM format (16-bit mono at the output rate)
before anything is joined: encoded files are never concatenated as bytes.
A chapter is stitched by streaming PCM chunks into a temporary raw file, so
memory holds one segment at a time and time is linear in the chapter length
(pydub's `+=` in a loop is quadratic). Gain, the peak limiter, the room tone
and the encoder run in one ffmpeg process per chapter; Python only streams
bytes and measures levels block by block, so memory never holds a chapter.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import random
import re
import shutil
import subprocess
import tempfile
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

with warnings.catch_warnings():
    # pydub looks for ffmpeg on PATH at import and warns; we never use its lookup.
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment
    from pydub.silence import detect_leading_silence
with warnings.catch_warnings():
    # audioop is deprecated in 3.11-3.12 and comes from audioop-lts on 3.13+.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

from pipeline import files
from pipeline.errors import AudioToolError

SAMPLE_WIDTH = 2  # 16-bit: pydub misreads float WAVs, keep intermediates int16
CHANNELS = 1  # ACX recommends mono; all our voices are mono
TRIM_THRESHOLD_DBFS = -50.0
EDGE_FADE_MS = 5
ROOM_TONE_DBFS = -72.0
# The room tone under every finished chapter: ACX wants a floor at or below
# -60 dB and flags digital silence, so it is added after the gain, where its
# level no longer depends on how loud the voice was.
NOISE_FLOOR_DBFS = -70.0
NOISE_SEED = 20261125
BLOCK_MS = 10  # level meter resolution
FLOOR_WINDOW_MS = 500  # ACX: the quietest half second is the noise floor
SPEECH_DBFS = -50.0  # a block louder than this is voice, for head and tail tone
SILENCE_DB = -120.0  # what the meter reports for digital silence (JSON has no -inf)
CHUNK = 1 << 16


@lru_cache(maxsize=1)
def ffmpeg_path() -> str:
    """AUDIOBOOK_FFMPEG, else the pinned imageio-ffmpeg build, else PATH."""
    override = os.environ.get("AUDIOBOOK_FFMPEG")
    if override:
        if not Path(override).exists():
            raise AudioToolError(f"AUDIOBOOK_FFMPEG={override}: no such file")
        return override
    bundled = bundled_ffmpeg()
    if bundled:
        return bundled
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
def bundled_ffmpeg() -> str | None:
    """The binary the imageio-ffmpeg wheel ships, found without running it.

    imageio's own lookup imports the package and runs `ffmpeg -version` to
    validate the binary: time a no-op build does not need. A broken binary
    still fails, with its message, at the first real use.
    """
    import importlib.util

    try:
        spec = importlib.util.find_spec("imageio_ffmpeg")  # found, not imported
        folders = list(spec.submodule_search_locations or []) if spec else []
    except (ImportError, ValueError):
        return None
    # The wheel is built for one platform and holds one binary.
    found = [p for folder in folders for p in (Path(folder) / "binaries").glob("ffmpeg-*")
             if p.is_file() and os.access(p, os.X_OK)]
    return str(found[0]) if len(found) == 1 else None


@lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    """The encoder's identity for output keys: another ffmpeg may encode other bytes.

    The pinned wheel's binary is named by its file name and size, so a build
    whose outputs are current starts no process at all; any other ffmpeg
    reports its version line, and one named by AUDIOBOOK_FFMPEG is also known
    by its bytes (a rebuilt binary may print the same version line).
    """
    path = ffmpeg_path()
    if path == bundled_ffmpeg():
        return f"imageio-ffmpeg {Path(path).name} ({Path(path).stat().st_size} bytes)"
    out = run_ffmpeg(["-version"]).decode(errors="replace")
    line = out.splitlines()[0] if out else "unknown"
    if os.environ.get("AUDIOBOOK_FFMPEG"):
        line += f" (sha256 {files.sha256_file(path)})"
    return line


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


def stitch(parts: Iterable[AudioSegment | int], rate: int, directory: Path,
           tone: bool = True) -> Stitched:
    """Join audio and pauses (ints, in ms) into a raw PCM file.

    Pauses are room tone, or digital silence when tone is False because the
    encoder adds the room tone later (see `Treatment`).
    """
    name = files.temp_path(directory, "stitch", ".raw")
    frames = 0
    try:
        with open(name, "wb") as out:
            for part in parts:
                if isinstance(part, int):
                    chunk = room_tone(part, rate) if tone else bytes(rate * part // 1000 * SAMPLE_WIDTH)
                else:
                    chunk = part.raw_data
                out.write(chunk)
                frames += len(chunk) // SAMPLE_WIDTH
    except OSError as exc:
        name.unlink(missing_ok=True)
        raise files.os_error(exc, directory) from exc
    except BaseException:
        name.unlink(missing_ok=True)
        raise
    return Stitched(name, frames, rate)


def encode_file(pcm: Stitched, out: Path, bitrate: str, treatment: Treatment | None = None) -> Levels:
    """Encode by the file's suffix (.mp3, .wav or .m4a) atomically; the finished levels.

    Without a treatment the PCM is encoded as it is (its pauses should already
    be room tone); with one, gain, limiter and room tone are applied as for a chapter.
    """
    suffix = out.suffix.lower()
    codec = {".mp3": ["-c:a", "libmp3lame", "-b:a", bitrate, "-f", "mp3"],
             ".wav": ["-c:a", "pcm_s16le", "-f", "wav"],
             ".m4a": ["-c:a", "aac", "-b:a", bitrate, "-movflags", "+faststart", "-f", "mp4"]}[suffix]
    graph = (treatment or Treatment(floor_db=SILENCE_DB)).graph(pcm.rate, 1)
    with files.atomic_output(out) as tmp:
        return _encode(pcm, graph, [["-map", "[out0]", *codec, "-y", str(tmp)]])


# ------------------------------------------------------------------ levels


def db(value: float, full_scale: float = 32768.0) -> float:
    """dBFS of an amplitude in 16-bit units; digital silence is SILENCE_DB."""
    return max(SILENCE_DB, 20 * math.log10(value / full_scale)) if value > 0 else SILENCE_DB


@dataclass(frozen=True)
class Levels:
    """What ACX measures on a file: unweighted RMS, sample peak, noise floor, edges."""

    frames: int
    rate: int
    rms_db: float
    peak_db: float
    floor_db: float  # RMS of the quietest FLOOR_WINDOW_MS
    head_ms: int  # room tone before the first voiced block
    tail_ms: int  # room tone after the last voiced block

    @property
    def duration_ms(self) -> int:
        return self.frames * 1000 // self.rate

    def as_json(self) -> dict:
        return {"rms_db": round(self.rms_db, 2), "peak_db": round(self.peak_db, 2),
                "floor_db": round(self.floor_db, 2), "head_ms": self.head_ms,
                "tail_ms": self.tail_ms}


class LevelMeter:
    """Streams 16-bit mono PCM through in any chunk sizes; `levels()` at the end."""

    def __init__(self, rate: int):
        self.rate = rate
        self.block_bytes = rate * BLOCK_MS // 1000 * SAMPLE_WIDTH
        self.window_blocks = FLOOR_WINDOW_MS // BLOCK_MS
        self.voice = 32768 * 10 ** (SPEECH_DBFS / 20)
        self.pending = bytearray()
        self.frames = 0
        self.sum_squares = 0.0
        self.peak = 0
        self.blocks = 0
        self.first_voiced: int | None = None
        self.last_voiced = -1
        self.window: deque[float] = deque()
        self.window_sum = 0.0
        self.quietest: float | None = None

    def feed(self, data: bytes) -> None:
        self.pending += data
        size = self.block_bytes
        usable = len(self.pending) - len(self.pending) % size
        view = memoryview(self.pending)
        for start in range(0, usable, size):
            self._block(view[start:start + size])
        view.release()
        del self.pending[:usable]

    def _block(self, block) -> None:
        # Widening to 32 bits keeps audioop's integer RMS precise for quiet blocks.
        rms = audioop.rms(audioop.lin2lin(block, SAMPLE_WIDTH, 4), 4) / 65536
        n = len(block) // SAMPLE_WIDTH
        energy = rms * rms * n
        self.frames += n
        self.sum_squares += energy
        self.peak = max(self.peak, audioop.max(block, SAMPLE_WIDTH))
        if rms > self.voice:
            if self.first_voiced is None:
                self.first_voiced = self.blocks
            self.last_voiced = self.blocks
        self.blocks += 1
        self.window.append(energy)
        self.window_sum += energy
        if len(self.window) > self.window_blocks:
            self.window_sum -= self.window.popleft()
        if len(self.window) == self.window_blocks:
            low = max(self.window_sum, 0.0)
            self.quietest = low if self.quietest is None else min(self.quietest, low)

    def levels(self) -> Levels:
        if self.pending:
            self._block(bytes(self.pending[: len(self.pending) - len(self.pending) % SAMPLE_WIDTH]))
            self.pending.clear()
        frames = max(self.frames, 1)
        window_frames = self.window_blocks * self.block_bytes // SAMPLE_WIDTH
        quietest = self.quietest if self.quietest is not None else self.sum_squares
        floor_frames = window_frames if self.quietest is not None else frames
        duration = self.frames * 1000 // self.rate
        if self.first_voiced is None:
            head = tail = duration
        else:
            head = self.first_voiced * BLOCK_MS
            tail = max(0, duration - (self.last_voiced + 1) * BLOCK_MS)
        return Levels(self.frames, self.rate, db(math.sqrt(self.sum_squares / frames)),
                      db(self.peak), db(math.sqrt(quietest / floor_frames)), head, tail)


def raw_levels(path: Path, rate: int) -> Levels:
    """Levels of a raw s16le mono file, read in chunks."""
    meter = LevelMeter(rate)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            meter.feed(chunk)
    return meter.levels()


def file_levels(path: Path, rate: int) -> Levels:
    """Levels of any audio file, decoded by ffmpeg as a stream."""
    meter = LevelMeter(rate)
    for chunk in _stream_ffmpeg([*_decoder_args(path), "-f", "s16le", "-ac", str(CHANNELS),
                                 "-ar", str(rate), "pipe:1"]):
        meter.feed(chunk)
    return meter.levels()


def _decoder_args(path: Path) -> list[str]:
    # The fixed-point MP3 decoder gives the same samples on every CPU; the
    # float one picks SIMD code at run time.
    fixed = ["-c:a", "mp3"] if path.suffix.lower() == ".mp3" else []
    return [*fixed, "-i", str(path), "-map", "0:a:0"]


def _stream_ffmpeg(args: Sequence[str], log: str = "error",
                   messages: list[str] | None = None) -> Iterator[bytes]:
    """ffmpeg's stdout in chunks; stderr kept in a file so it can never block.

    With `messages`, ffmpeg's log text is appended to it at the end.
    """
    cmd = [ffmpeg_path(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", log, *args]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        stdout = proc.stdout
        assert stdout is not None  # stdout=PIPE
        try:
            while chunk := stdout.read(CHUNK):
                yield chunk
        finally:
            stdout.close()
            code = proc.wait()
        err.seek(0)
        text = err.read().decode(errors="replace")
        if code != 0:
            raise AudioToolError("ffmpeg failed: " + (" / ".join(text.strip().splitlines()[-3:])
                                                      or f"exit {code}"))
        if messages is not None:
            messages.append(text)


def integrated_loudness(path: Path, rate: int, raw: bool = True) -> float:
    """ITU-R BS.1770 integrated loudness (LUFS) of a raw s16le file or any audio file.

    ffmpeg's ebur128 gives the same measure as loudnorm's first pass at a
    fraction of the cost (loudnorm runs its 192 kHz dynamic mode to measure).
    """
    source = (["-f", "s16le", "-ar", str(rate), "-ac", str(CHANNELS), "-i", str(path)]
              if raw else _decoder_args(path))
    text = _ffmpeg_log([*source, "-af", "ebur128=framelog=quiet", "-f", "null", "-"])
    found = re.findall(r"I:\s+(-?[\d.]+|-inf)\s+LUFS", text)
    if not found:
        raise AudioToolError("ffmpeg ebur128 printed no integrated loudness")
    return float(found[-1]) if found[-1] != "-inf" else SILENCE_DB


def _ffmpeg_log(args: Sequence[str]) -> str:
    messages: list[str] = []
    for _ in _stream_ffmpeg(args, log="info", messages=messages):
        pass
    return "".join(messages)


# ------------------------------------------------------------------ finishing


@dataclass(frozen=True)
class Treatment:
    """What the encoder does to a stitched chapter: gain, a limiter, room tone."""

    gain_db: float = 0.0
    ceiling_db: float | None = None  # sample-peak limit; None means no limiter
    floor_db: float = NOISE_FLOOR_DBFS

    def graph(self, rate: int, outputs: int) -> str:
        """A filter graph from input 0 to [out0]..[outN-1] to encode and [tap] to measure."""
        chain = [f"volume={self.gain_db:.4f}dB:precision=double"]
        if self.ceiling_db is not None:
            # latency=1 keeps the lookahead from delaying (and lengthening) the
            # audio; level=0 stops alimiter from scaling the whole file up.
            chain.append(f"alimiter=limit={10 ** (self.ceiling_db / 20):.6f}"
                         ":attack=5:release=50:level=0:latency=1")
        labels = "".join(f"[out{i}]" for i in range(outputs))
        split = f"asplit={outputs + 1}{labels}[tap]"
        if self.floor_db <= SILENCE_DB:  # no room tone to add (it is in the PCM already)
            return f"[0:a]{','.join(chain)},{split}"
        amplitude = 10 ** (self.floor_db / 20) * math.sqrt(3)  # uniform noise: rms = a / sqrt 3
        return (f"[0:a]{','.join(chain)}[voice];"
                f"anoisesrc=r={rate}:a={amplitude:.8f}:c=white:seed={NOISE_SEED}[tone];"
                f"[voice][tone]amix=inputs=2:duration=first:normalize=0,{split}")


AAC_FRAME = 1024  # samples per AAC frame
AAC_PRIMING = 1024  # ffmpeg's AAC encoder delay: the first frame is warm-up, not audio


def encode_chapter(pcm: Stitched, treatment: Treatment, *, mp3: Path | None = None,
                   bitrate: str = "192k", tags: dict[str, str] | None = None,
                   cover: Path | None = None, aac: Path | None = None,
                   aac_bitrate: str = "64k") -> Levels:
    """Finish one chapter and encode it; return the finished levels.

    One ffmpeg run applies the treatment, writes a tagged CBR MP3 (if `mp3`)
    and a mono ADTS AAC stream for the M4B (if `aac`), and taps the finished
    PCM to us for measuring, so the chapter is never held in memory or read
    twice. Both files are written atomically.
    """
    targets = [p for p in (mp3, aac) if p is not None]
    with contextlib.ExitStack() as stack:
        tmps = {p: stack.enter_context(files.atomic_output(p)) for p in targets}
        outputs = []
        for n, path in enumerate(targets):
            tmp = tmps[path]
            if path == mp3:
                outputs.append(_mp3_output(f"[out{n}]", tmp, bitrate, tags or {}, cover, pcm.rate))
            else:
                # The "fast" coder: 40% of the default twoloop coder's CPU (1.9 s
                # against 4.7 s for 5 min of modulated pink noise; LAME: 2.7 s) at the
                # same size; twoloop's better quantization is worth less than a
                # book build that costs more than twice the MP3 floor.
                outputs.append(["-map", f"[out{n}]", "-c:a", "aac", "-aac_coder", "fast",
                                "-b:a", aac_bitrate, "-ac", str(CHANNELS), "-f", "adts",
                                "-y", str(tmp)])
        inputs = ["-i", str(cover)] if cover is not None and mp3 is not None else []
        return _encode(pcm, treatment.graph(pcm.rate, len(targets)), outputs, inputs)
    raise AssertionError("unreachable")  # ExitStack never swallows


def _mp3_output(label: str, tmp: Path, bitrate: str, tags: dict[str, str], cover: Path | None,
                rate: int) -> list[str]:
    args = ["-map", label]
    if cover is not None:
        args += ["-map", "1:v", "-c:v", "copy", "-disposition:v:0", "attached_pic",
                 "-metadata:s:v", "title=Album cover", "-metadata:s:v", "comment=Cover (front)"]
    args += ["-map_metadata", "-1", "-c:a", "libmp3lame", "-b:a", bitrate,
             "-ar", str(rate), "-ac", str(CHANNELS), "-id3v2_version", "3"]
    for key, value in tags.items():
        if value:
            args += ["-metadata", f"{key}={value}"]
    return [*args, "-f", "mp3", "-y", str(tmp)]


def _encode(pcm: Stitched, graph: str, outputs: list[list[str]],
            inputs: Sequence[str] = ()) -> Levels:
    """Run one ffmpeg: raw PCM (and extra inputs) through graph to outputs, [tap] to the meter."""
    args = ["-f", "s16le", "-ar", str(pcm.rate), "-ac", str(CHANNELS), "-i", str(pcm.path),
            *inputs, "-filter_complex", graph]
    for out in outputs:
        # bitexact on each output: no encoder version strings, same bytes every run
        args += [*out[:-2], "-fflags", "+bitexact", "-flags:a", "+bitexact", *out[-2:]]
    args += ["-map", "[tap]", "-c:a", "pcm_s16le", "-f", "s16le", "pipe:1"]
    meter = LevelMeter(pcm.rate)
    for chunk in _stream_ffmpeg(args):
        meter.feed(chunk)
    return meter.levels()


def adts_frames(path: Path) -> int:
    """How many AAC frames an ADTS file holds, read from its frame headers."""
    count = 0
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos + 7 <= len(data):
        if data[pos] != 0xFF or data[pos + 1] & 0xF0 != 0xF0:
            raise AudioToolError(f"{path}: not an ADTS stream at byte {pos}")
        length = ((data[pos + 3] & 0x03) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
        if length < 7:
            raise AudioToolError(f"{path}: damaged ADTS frame at byte {pos}")
        count += (data[pos + 6] & 0x03) + 1
        pos += length
    return count


def encode_book(parts: Sequence[Path], out: Path, rate: int, metadata: str,
                cover: Path | None = None) -> None:
    """One .m4b from the chapters' ADTS AAC streams, joined without re-encoding.

    The streams are fed back to back to one ffmpeg that only remuxes (-c copy)
    them with the chapter marks and tags of an FFMETADATA1 text, the cover
    and faststart. Each chapter keeps its encoder's priming frame, so the
    chapter marks (see package.book_chapters) count whole AAC frames.
    Stream copy of ADTS keeps exact timestamps (1024 samples a frame), where
    the concat demuxer would place each file by its estimated duration.
    """
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(files.atomic_output(out))
        meta = stack.enter_context(files.temporary(out.parent, "ffmeta", ".txt"))
        try:
            meta.write_text(metadata, encoding="utf-8")
        except OSError as exc:
            raise files.os_error(exc, out.parent) from exc
        # Starting the stream one priming frame early makes the muxer write an
        # edit list that skips it: the book starts with the first chapter's audio.
        args = [ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error",
                "-itsoffset", f"-{AAC_PRIMING / rate:.6f}", "-f", "aac", "-i", "pipe:0",
                "-f", "ffmetadata", "-i", str(meta)]
        if cover is not None:
            args += ["-i", str(cover), "-map", "0:a", "-map", "2:v", "-c:v", "copy",
                     "-disposition:v:0", "attached_pic"]
        else:
            args += ["-map", "0:a"]
        # The audio track's timescale is the sample rate. Left to itself the muxer
        # keeps the ADTS demuxer's 1/28,224,000, and the QuickTime chapter track
        # (the one Apple Books, VLC and ffprobe read; mutagen reads Nero's chpl)
        # overflows past 152 s: marks at 0 s, titles repeated, or no track.
        args += ["-time_base:a", f"1/{rate}",
                 "-map_metadata", "1", "-map_chapters", "1", "-c:a", "copy",
                 "-movflags", "+faststart", "-fflags", "+bitexact", "-flags:a", "+bitexact",
                 "-f", "ipod", "-y", str(tmp)]
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=err)
            stdin = proc.stdin
            assert stdin is not None  # stdin=PIPE
            try:
                for path in parts:
                    with open(path, "rb") as f:
                        shutil.copyfileobj(f, stdin)
            except BrokenPipeError:
                pass  # the muxer died: its exit code and stderr say why
            finally:
                _close_quietly(stdin)
                code = proc.wait()
            err.seek(0)
            if code != 0:
                tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
                raise AudioToolError("ffmpeg failed writing the m4b: " + " / ".join(tail))


def encode_m4a(aac: Path, out: Path, rate: int) -> None:
    """One chapter's ADTS AAC stream as an .m4a (MP4), copied, not encoded again.

    The same remux as the m4b (encode_book), with no tags: its edit list skips
    the priming frame, so the .m4a decodes sample for sample like the
    chapter's MP3, and the sentence times measured on the PCM hold for it.
    Without the edit list every sentence would play 1024 samples (23 ms) late.
    """
    encode_book([aac], out, rate, ";FFMETADATA1\n")


def _close_quietly(stream) -> None:
    try:
        stream.close()
    except BrokenPipeError:
        pass


# Image work gives the same bytes on every machine: C code only (ffmpeg picks
# SIMD code at run time, and its fdct and scaler round differently from the C
# code: a cover fitted on an AVX2 machine differed from one fitted without),
# one thread, bitexact (no version strings).
_EXACT_IMAGE = ["-cpuflags", "0", "-threads", "1", "-filter_threads", "1"]
_EXACT_SCALER = "bicubic+accurate_rnd+full_chroma_int+bitexact"


def to_png(data: bytes) -> bytes:
    """Any image ffmpeg reads, as PNG bytes (deterministic)."""
    return run_ffmpeg([*_EXACT_IMAGE, "-i", "pipe:0", "-frames:v", "1", "-c:v", "png",
                       "-f", "image2pipe", "-fflags", "+bitexact", "-flags", "+bitexact",
                       "pipe:1"], stdin=data)


def cover_jpeg(image: bytes, width: int, height: int, quality: int,
               flatten: bool = False) -> bytes:
    """A PNG or JPEG image as a baseline JPEG of width x height at ffmpeg's -q:v quality.

    quality: 2 (best) to 31. flatten: lay transparent parts on white first (a
    JPEG has no alpha; they would come out black).
    """
    return run_ffmpeg(jpeg_args(width, height, quality, flatten), stdin=image)


def jpeg_args(width: int, height: int, quality: int, flatten: bool = False) -> list[str]:
    """The ffmpeg arguments of cover_jpeg: image on pipe:0, the JPEG on pipe:1."""
    fit = f"scale={width}:{height}:flags={_EXACT_SCALER}"
    if flatten:
        graph = (f"color=c=white:s={width}x{height}:r=1[paper];[0:v]{fit},format=rgba[ink];"
                 f"[paper][ink]overlay=shortest=1:format=rgb,"
                 f"scale=flags={_EXACT_SCALER},format=yuvj420p[out]")
    else:
        graph = f"[0:v]{fit},format=yuvj420p[out]"
    # -dct int: the C integer fdct; "auto" picks a SIMD one where the CPU has it.
    return [*_EXACT_IMAGE, "-i", "pipe:0", "-filter_complex", graph, "-map", "[out]",
            "-frames:v", "1", "-c:v", "mjpeg", "-dct", "int", "-q:v", str(quality),
            "-threads", "1", "-f", "image2pipe", "-fflags", "+bitexact", "-flags", "+bitexact",
            "pipe:1"]
