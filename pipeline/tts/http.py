"""Bounded HTTP for the Audio Cleaner client: every read capped, every request timed.

httpx's timeouts are per read, so a server that trickles one byte every few
seconds never trips them; each request here also has an overall deadline
(AUDIOBOOK_HTTP_DEADLINE seconds, default 120). Every body is streamed and
stopped at a cap: API answers at 1 MiB, an output file at what its text could
possibly need (a minute of speech per 100 characters at a generous 1.5 Mbit/s,
never over 64 MiB). Decoded audio is measured with ffmpeg stopped just past
the longest the text could take, so a small file holding hours of audio
costs neither memory nor time. Anything that breaks a bound is the service's
fault and is named as such.

Transport exceptions become the client's typed errors in one place,
map_transport_errors(), as httpx's own map_httpcore_exceptions() does.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import os
import subprocess
import tempfile
import urllib.parse
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from pipeline.errors import (
    AudioCleanerError,
    HostileOutputError,
    MissingKeyError,
    OutputError,
    RequestTimeoutError,
    TransportError,
)

DEADLINE_ENV = "AUDIOBOOK_HTTP_DEADLINE"
KEY_ENV = "AUDIOCLEANER_API_KEY"

SECONDS_PER_100_CHARS = 60.0  # far slower than any narrator
GENEROUS_BYTES_PER_SECOND = 192_000  # 48 kHz 16-bit stereo PCM: more than any codec needs
OUTPUT_CAP = 64 << 20  # no single segment's file is ever this large
API_BODY_CAP = 1 << 20  # the API answers a few hundred bytes of JSON
MIN_SECONDS = 0.01  # shorter than this is no audio at all
MAX_REDIRECTS = 5
SAFE_SCHEMES = ("http", "https")


def _deadline_from_env() -> float:
    value = os.environ.get(DEADLINE_ENV, "").strip()
    try:
        seconds = float(value) if value else 120.0
    except ValueError:
        seconds = 120.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 120.0


@dataclass(frozen=True)
class Bounds:
    """How long one request may take and how much it may read."""

    deadline: float = field(default_factory=_deadline_from_env)
    api_body_cap: int = API_BODY_CAP
    output_cap: int = OUTPUT_CAP


def longest_plausible_seconds(chars: int) -> float:
    """The most audio a text of `chars` characters could take: a minute per 100."""
    return SECONDS_PER_100_CHARS * max(1, math.ceil(max(chars, 1) / 100))


def output_byte_cap(chars: int, bounds: Bounds) -> int:
    """The largest output file a text of `chars` characters could honestly need."""
    return min(bounds.output_cap,
               int(longest_plausible_seconds(chars) * GENEROUS_BYTES_PER_SECOND) + (64 << 10))


# ------------------------------------------------------------------ the key


def checked_key(key: str) -> str:
    """The key, if it can travel in an HTTP header; never echoes it back."""
    if not key.isascii() or not key.isprintable():
        raise MissingKeyError(
            f"{KEY_ENV} holds a control or non-ASCII character, so it cannot be a valid key "
            "(a stray newline or quote from copying it?); set it again without them")
    return key


def scrubber_for(key: str):
    """A function that removes the key from text in every form it may be echoed in."""
    forms = {key, repr(key)[1:-1], repr(key.encode("utf-8", "backslashreplace"))[2:-1],
             urllib.parse.quote(key, safe=""), urllib.parse.quote_plus(key),
             urllib.parse.quote(key)}
    ordered = sorted((f for f in forms if f), key=len, reverse=True)

    def scrub(text: str) -> str:
        for form in ordered:
            text = text.replace(form, "[api-key]")
        return text

    return scrub


# ------------------------------------------------------------------ transport errors


@contextlib.contextmanager
def map_transport_errors(what: str, scrub, deadline: float) -> Iterator[None]:
    """httpx's and asyncio's exceptions as the client's typed errors; the one place they are mapped.

    `maybe_took_effect` is False only when the request surely never left:
    the connection was refused or never made.
    """
    try:
        yield
    except AudioCleanerError:
        raise
    except TimeoutError:  # asyncio's, from the overall deadline
        raise RequestTimeoutError(f"{what}: no complete answer within the {deadline:g}s deadline "
                                  f"({DEADLINE_ENV})", maybe_took_effect=True) from None
    except httpx.UnsupportedProtocol as exc:
        raise HostileOutputError(f"{what}: {scrub(str(exc))}") from None
    except httpx.TimeoutException as exc:
        sent = not isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
        raise RequestTimeoutError(f"{what}: no answer in time ({type(exc).__name__})",
                                  maybe_took_effect=sent) from None
    except httpx.TransportError as exc:
        sent = not isinstance(exc, httpx.ConnectError)
        detail = scrub(str(exc)) or type(exc).__name__
        raise TransportError(f"{what}: {detail}", maybe_took_effect=sent) from None


async def read_capped(response: httpx.Response, cap: int, what: str) -> bytes:
    """The body, streamed; refused the moment it passes cap."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise HostileOutputError(f"{what}: the service announced {int(declared)} bytes, more "
                                 f"than the {cap}-byte cap; the service is at fault")
    if response.is_stream_consumed:  # built in memory (httpx.MockTransport): nothing to stream
        if len(response.content) > cap:
            raise HostileOutputError(f"{what}: the service sent more than the {cap}-byte cap")
        return response.content
    chunks, size = [], 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > cap:
            raise HostileOutputError(f"{what}: the service sent more than the {cap}-byte cap; "
                                     "stopped reading (the service is at fault)")
        chunks.append(chunk)
    return b"".join(chunks)


async def send_capped(client: httpx.AsyncClient, request: httpx.Request, cap: int,
                      what: str) -> tuple[httpx.Response, bytes]:
    """One request and its whole body, read within cap (the caller sets the deadline)."""
    response = await client.send(request, stream=True)
    try:
        return response, await read_capped(response, cap, what)
    finally:
        await response.aclose()


async def within(deadline: float, what: str, scrub, coro):
    """coro's result, or the typed error for whatever kept it from finishing in time."""
    with map_transport_errors(what, scrub, deadline):
        return await asyncio.wait_for(coro, deadline)


def safe_url(url: str, base: str, what: str) -> str:
    """url made absolute against base; refused unless it is http(s)."""
    absolute = str(httpx.URL(base).join(url)) if "://" not in url else url
    scheme = absolute.split(":", 1)[0].lower() if ":" in absolute else ""
    if scheme not in SAFE_SCHEMES:
        raise HostileOutputError(f"{what}: the output URL uses the scheme {scheme!r}; only http "
                                 "and https are downloaded (the service is at fault)")
    return absolute


# ------------------------------------------------------------------ decoded length


def decoded_seconds(data: bytes, limit: float) -> float:
    """Seconds of audio in data, counted no further than just past limit.

    ffmpeg decodes to 8 kHz 8-bit mono and stops at limit + 1 s; the samples
    are counted as they stream by, never held, so a small file that decodes
    to hours costs neither memory nor time.
    """
    from pipeline.audio import ffmpeg_path

    rate = 8000
    cmd = [ffmpeg_path(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
           "-i", "pipe:0", "-vn", "-t", f"{limit + 1:.3f}", "-ac", "1", "-ar", str(rate),
           "-f", "u8", "-acodec", "pcm_u8", "pipe:1"]
    with tempfile.TemporaryFile() as source, tempfile.TemporaryFile() as err:
        source.write(data)
        source.seek(0)
        proc = subprocess.Popen(cmd, stdin=source, stdout=subprocess.PIPE, stderr=err)
        samples = 0
        assert proc.stdout is not None
        with proc.stdout:
            while chunk := proc.stdout.read(1 << 16):
                samples += len(chunk)
        code = proc.wait()
        if code != 0:
            err.seek(0)
            tail = err.read(4096).decode(errors="replace").strip().splitlines()[-2:]
            raise OutputError(" / ".join(tail) or f"ffmpeg exit {code}", retryable=True)
    return samples / rate


def wav_seconds(data: bytes) -> float | None:
    """Seconds of a PCM WAV from its header and the bytes really there; None if not plain PCM.

    No ffmpeg: a header cannot claim more frames than the (capped) bytes hold.
    """
    try:
        with wave.open(io.BytesIO(data)) as wav:
            rate, block = wav.getframerate(), wav.getsampwidth() * wav.getnchannels()
            frames = wav.getnframes()
    except (wave.Error, EOFError, ValueError):
        return None
    if rate <= 0 or block <= 0:
        return None
    return min(frames, len(data) // block) / rate


def checked_duration(data: bytes, chars: int, what: str, fmt: str | None = None) -> float:
    """Seconds of audio in data, if that is plausible for a text of chars characters."""
    limit = longest_plausible_seconds(chars)
    plain = wav_seconds(data) if fmt == "wav" else None
    seconds = plain if plain is not None else decoded_seconds(data, limit)
    if seconds < MIN_SECONDS:
        raise OutputError(f"{what}: the audio is empty", retryable=True)
    if seconds > limit:
        raise HostileOutputError(
            f"{what}: the service returned more than {limit:.0f}s of audio for a {chars}-character "
            f"text (at most a minute per 100 characters is plausible); the service's output is "
            f"wrong, not your text, and it was not stored")
    return seconds
