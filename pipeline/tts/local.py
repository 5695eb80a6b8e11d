"""The offline backend: eSpeak NG, loaded in process from espeakng-loader.

No system package is needed: the wheel ships libespeak-ng and its data.

Why each segment is spoken in a forked child: eSpeak keeps synthesis state in
C globals (a flutter index, the echo buffer, breath resonators, its noise
generator) that `espeak_Terminate`, re-initialising or reseeding do not reset,
so the same text spoken after different texts gives different PCM for most
variants (f1-f5, Annie, belinda, linda, m1...). A child forked from a process
that has initialised the engine but never spoken always starts from the same
state, so a segment's audio depends on its text and settings alone: the same
bytes in every process, whatever was spoken before (docs/offline.md has the
measurements). It also keeps Ctrl-C out of the ctypes callback: the parent
waits on a pipe in plain Python, where KeyboardInterrupt is raised normally.
Where os.fork does not exist (Windows), segments are spoken in process, under
a lock, and are not byte-reproducible.

How settings become sound:
- language -> the eSpeak voice for that language;
- voice id -> an eSpeak voice variant: the ids of the offline voice table
  (`offline_voices()`) have fixed variants; any other id (a voice of the
  book's voice library) gets a variant of its library gender chosen by a hash
  of the id, and a small pitch offset so that ids sharing a variant differ;
- emotion -> prosody: base pitch, pitch range and a rate factor;
- speed -> words per minute (175 x speed x the emotion's rate factor).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import os
import selectors
import signal
import struct
import sys
import threading
import wave
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.book import EMOTIONS, Voice
from pipeline.errors import AudiobookError, SynthesisIncomplete
from pipeline.tts.base import Audio, OnResult, SynthesisRequest

# Bump when the audio a key stands for changes: the mapping below, or how the
# engine is driven. 2: the offline voice table; each segment spoken in a fresh
# fork (reproducible bytes); interrupted syntheses are never returned.
VOICE_MAP_VERSION = 2

_LANGUAGE_VOICE = {
    "en": "en-us", "all": "en-us", "zh": "cmn", "zh_yue": "yue", "ar": "ar",
    "ru": "ru", "es": "es", "fr": "fr-fr", "pt": "pt", "de": "de", "ko": "ko", "ja": "ja",
}
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5", "Annie", "belinda", "linda")
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "Alex", "david", "edward")
_ALL_VARIANTS = tuple(v for pair in zip(MALE_VARIANTS, FEMALE_VARIANTS) for v in pair) + MALE_VARIANTS[8:]

# emotion id -> (base pitch 0-100, pitch range 0-100, rate factor)
EMOTION_PROSODY = {
    0: (50, 50, 1.00),  # auto
    1: (62, 80, 1.08),  # happy
    2: (42, 90, 1.12),  # angry
    3: (36, 22, 0.84),  # sad
    4: (70, 72, 1.18),  # afraid
    5: (40, 40, 0.94),  # disgusted
    6: (38, 28, 0.88),  # melancholic
    7: (74, 96, 1.04),  # surprised
    8: (46, 34, 0.90),  # calm
}

_MALE, _FEMALE = 1, 2


@dataclass(frozen=True)
class OfflineVoice:
    id: int
    name: str
    display_name: str
    gender: int  # 1 male, 2 female: the voice library's codes
    variant: str
    pitch_offset: int = 0  # a stand-in differs from its variant's own id


def _variant_voices() -> tuple[OfflineVoice, ...]:
    voices = []
    for n, variant in enumerate(sorted(FEMALE_VARIANTS + MALE_VARIANTS, key=str.lower), start=1):
        gender = _FEMALE if variant in FEMALE_VARIANTS else _MALE
        plain = variant[0] in "fm" and variant[1:].isdigit()
        kind = "female" if gender == _FEMALE else "male"
        shown = f"eSpeak {kind} {variant[1:]}" if plain else f"eSpeak {variant}"
        voices.append(OfflineVoice(n, variant.lower(), shown, gender, variant))
    return tuple(voices)


# The offline voice table. Ids 1-18 are eSpeak's variants, one each; 2072
# (the default narrator), 2080 and 2091 are the service voices the sample
# book casts, given stand-ins of their gender so a book written for the
# service builds offline unchanged. Any other id is valid offline only when
# the book's voice library lists it (then its library gender picks the kind).
OFFLINE_VOICES: tuple[OfflineVoice, ...] = (
    OfflineVoice(2072, "madison", "Madison (offline stand-in: eSpeak female 4)", _FEMALE, "f4", 2),
    OfflineVoice(2080, "arthur", "Arthur (offline stand-in: eSpeak Alex)", _MALE, "Alex", -2),
    OfflineVoice(2091, "eileen", "Eileen (offline stand-in: eSpeak female 2)", _FEMALE, "f2", 3),
    *_variant_voices(),
)
_TABLE = {v.id: v for v in OFFLINE_VOICES}


def offline_voices() -> list[dict]:
    """The offline voice table as voice-library records (the API guide's shape)."""
    return [{"id": v.id, "name": v.name, "display_name": v.display_name, "gender": v.gender,
             "age": None, "language": "all", "emotion": list(EMOTIONS)}
            for v in OFFLINE_VOICES]


@dataclass(frozen=True)
class EspeakVoice:
    name: str
    pitch: int
    range: int
    rate: int


def espeak_voice(voice: Voice, gender: int | None = None) -> EspeakVoice:
    """The eSpeak settings for a voice. gender: 1 male, 2 female, None unknown.

    Total on purpose: the emulator speaks any id it is sent. Which ids a book
    may use offline is the config's check, against offline_voices().
    """
    listed = _TABLE.get(voice.voice) if isinstance(voice.voice, int) else None
    if listed is not None:
        variant, offset = listed.variant, listed.pitch_offset
    else:
        digest = int(hashlib.sha256(str(voice.voice).encode()).hexdigest(), 16)
        family = {_MALE: MALE_VARIANTS, _FEMALE: FEMALE_VARIANTS}.get(gender or 0, _ALL_VARIANTS)
        variant = family[digest % len(family)]
        offset = (digest // 97) % 11 - 5  # -5..5: ids sharing a variant still differ
    pitch, pitch_range, rate_factor = EMOTION_PROSODY.get(voice.emotion, EMOTION_PROSODY[0])
    rate = round(175 * voice.speed * rate_factor)
    return EspeakVoice(
        name=f"{_LANGUAGE_VOICE.get(voice.language, 'en-us')}+{variant}",
        pitch=max(0, min(100, pitch + offset)),
        range=pitch_range,
        rate=max(80, min(450, rate)),
    )


# ---------------------------------------------------------------- the engine

_ESPEAK_RATE, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 3, 4
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER, _CHARS_UTF8 = 1, 1
_EVENT_LIST_TERMINATED, _EVENT_SENTENCE = 0, 2
_ENS_OK = 0
_RAND_SEED = 1  # any constant: what matters is that every synthesis starts from it


class _Event(ctypes.Structure):
    """espeak_EVENT (speak_lib.h); `id` is a union of 8 bytes."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Speech:
    """What one whole synthesis made: PCM, its rate, and sentence marks."""

    pcm: bytes  # 16-bit mono little-endian
    rate: int
    marks: tuple[tuple[int, int], ...]  # see tts.base.Audio.marks

    def wav(self) -> bytes:
        out = io.BytesIO()
        with wave.open(out, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.rate)
            w.writeframes(self.pcm)
        return out.getvalue()


class _Take:
    """The state of one synthesis, filled by the callback."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.marks: list[tuple[int, int]] = []
        self.ended = False
        self.error: BaseException | None = None

    def unraisable(self, info) -> None:
        """sys.unraisablehook while eSpeak runs: an exception that left the callback.

        A signal handler can raise at the callback's first instruction, before
        its try; ctypes then reports it here and returns 0. Keeping it makes
        the next callback return 1 (stop) and speak_here raise it.
        """
        if self.error is None and info.exc_value is not None:
            self.error = info.exc_value


class _Engine:
    """One process's libespeak-ng, initialised once."""

    _lock = threading.Lock()
    _instance: _Engine | None = None

    def __init__(self) -> None:
        import espeakng_loader

        try:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
        except OSError as exc:
            raise AudiobookError(f"cannot load eSpeak NG from espeakng-loader: {exc}") from exc
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_ng_Synthesize.restype = ctypes.c_int
        self.rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0
        )
        if self.rate <= 0:
            raise AudiobookError("eSpeak NG failed to initialise (its data folder is missing?)")
        self.version = lib.espeak_Info(None).decode()
        self._take = _Take()
        self._callback = _CALLBACK(self._collect)  # keep a reference: C holds it
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib

    @classmethod
    def get(cls) -> _Engine:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _collect(self, samples, count, events) -> int:
        # An exception raised here (Ctrl-C lands here: this is the only Python
        # code running during a synthesis) would be printed and dropped by
        # ctypes, and eSpeak would go on without the chunk. So: keep it, and
        # return 1, which tells eSpeak to stop; speak_here re-raises it.
        take = self._take
        try:
            if take.error is not None:
                return 1
            if not samples:  # a NULL buffer: eSpeak's end of data
                take.ended = True
                return 0
            if count > 0:
                take.chunks.append(ctypes.string_at(samples, count * 2))
            i = 0
            while events[i].type != _EVENT_LIST_TERMINATED:
                event = events[i]
                if event.type == _EVENT_SENTENCE:
                    take.marks.append((event.text_position - 1, event.audio_position))
                i += 1
            return 0
        except BaseException as exc:  # noqa: BLE001 - re-raised after espeak_ng_Synthesize
            take.error = exc
            return 1

    def load_voice(self, settings: EspeakVoice) -> None:
        """Make settings' voice current; its language's dictionary loads only on a change."""
        lib = self._lib
        if lib.espeak_SetVoiceByName(settings.name.encode()) != 0:
            lib.espeak_SetVoiceByName(settings.name.split("+")[0].encode())

    def speak_here(self, text: str, settings: EspeakVoice) -> Speech:
        """The whole synthesis of text, in this process; raises rather than return a part."""
        lib = self._lib
        # The voice is loaded here, in the child, never in the parent: even
        # loading one there (no speech) was seen to change the next child's
        # sentence events.
        self.load_voice(settings)
        lib.espeak_SetParameter(_ESPEAK_RATE, settings.rate, 0)
        lib.espeak_SetParameter(_ESPEAK_PITCH, settings.pitch, 0)
        lib.espeak_SetParameter(_ESPEAK_RANGE, settings.range, 0)
        # espeak_Initialize seeds eSpeak's noise generator from the clock
        # (time(NULL)): without a fixed seed the breath and roughness noise of
        # f2, f5... would depend on the second the process started.
        lib.espeak_ng_SetRandSeed(ctypes.c_long(_RAND_SEED))
        self._take = take = _Take()
        data = text.encode("utf-8")
        hook = sys.unraisablehook
        sys.unraisablehook = take.unraisable
        try:
            status = lib.espeak_ng_Synthesize(data, len(data) + 1, 0, _POS_CHARACTER, 0,
                                              _CHARS_UTF8, None, None)
        finally:
            sys.unraisablehook = hook
            self._take = _Take()
        if take.error is not None:
            raise take.error
        if status != _ENS_OK or not take.ended:
            raise SynthesisIncomplete(f"eSpeak NG stopped before the end of the text "
                                      f"(status {status:#x}); nothing was kept")
        return Speech(b"".join(take.chunks), self.rate, tuple(take.marks))

    def speak(self, text: str, settings: EspeakVoice) -> Speech:
        """The whole synthesis of text, the same bytes whatever was spoken before."""
        if not _CAN_FORK:
            with self._lock:
                return self.speak_here(text, settings)
        started: list[_Child] = []
        try:
            return _Child.start(self, text, settings, started).result()
        finally:
            for child in started:
                child.reap()


# ---------------------------------------------------------------- forked children

_CAN_FORK = hasattr(os, "fork")
_FORK_LOCK = threading.Lock()
_HEADER = struct.Struct("<4sIIII")  # magic, ok, rate, marks, payload bytes
_MAGIC = b"ESPK"


def _frame(speech: Speech | None, error: str = "") -> bytes:
    if speech is None:
        payload = error.encode("utf-8", "replace")
        return _HEADER.pack(_MAGIC, 0, 0, 0, len(payload)) + payload
    marks = b"".join(struct.pack("<ii", offset, ms) for offset, ms in speech.marks)
    return (_HEADER.pack(_MAGIC, 1, speech.rate, len(speech.marks), len(speech.pcm))
            + marks + speech.pcm)


def _child_main(engine: _Engine, fd: int, text: str, settings: EspeakVoice,
                mask: set[int | signal.Signals]) -> None:
    """The forked child: speak once, send the frame, exit without Python's cleanup."""
    code = 0
    try:
        # Ctrl-C reaches the whole process group: the child just dies, and
        # the parent, waiting in Python, raises KeyboardInterrupt.
        with contextlib.suppress(ValueError):  # forked from a thread: Python may refuse
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        frame = _frame(engine.speak_here(text, settings))
    except BaseException as exc:  # noqa: BLE001 - sent to the parent, which raises
        frame, code = _frame(None, f"{type(exc).__name__}: {exc}"), 1
    try:
        view = memoryview(frame)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os._exit(code)


class _Child:
    """A forked child speaking one text, and the bytes it has sent so far."""

    def __init__(self, pid: int, fd: int):
        self.pid, self.fd = pid, fd
        self.buffer = bytearray()
        self.eof = False
        self.status: int | None = None  # os.waitpid's, once reaped

    @classmethod
    def start(cls, engine: _Engine, text: str, settings: EspeakVoice,
              started: list[_Child]) -> _Child:
        """Fork a child for text; it is in `started` before any Ctrl-C can strike here,
        so the caller's cleanup can always reap it."""
        # The lock keeps another thread's child from inheriting this pipe's
        # write end, which would hold back the EOF that tells a child died.
        # SIGINT is held back during the fork: a KeyboardInterrupt raised in
        # os.fork's at-fork hooks (logging registers some) is printed and
        # dropped. Unblocked after it, a pending Ctrl-C is raised here instead,
        # once the child is on the caller's list.
        with _FORK_LOCK:
            held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                read_fd, write_fd = os.pipe()
                pid = os.fork()
                if pid == 0:
                    os.close(read_fd)
                    _child_main(engine, write_fd, text, settings, held)
                os.close(write_fd)
                child = cls(pid, read_fd)
                started.append(child)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
        return child

    def pump(self) -> None:
        """Read what is there (blocking until something is)."""
        data = os.read(self.fd, 1 << 20)
        if data:
            self.buffer += data
        else:
            self.eof = True

    def complete(self) -> bool:
        if len(self.buffer) < _HEADER.size:
            return self.eof
        _, _, _, marks, size = _HEADER.unpack_from(self.buffer)
        return self.eof or len(self.buffer) >= _HEADER.size + 8 * marks + size

    def result(self) -> Speech:
        while not self.complete():
            self.pump()
        return self.parse()

    def parse(self) -> Speech:
        buf = bytes(self.buffer)
        if len(buf) < _HEADER.size or buf[:4] != _MAGIC:
            self.reap()
            if self.status is not None and os.WIFSIGNALED(self.status) \
                    and os.WTERMSIG(self.status) == signal.SIGINT:
                # Ctrl-C reached the child before this process: it is ours too.
                raise KeyboardInterrupt
            raise SynthesisIncomplete("the eSpeak NG child process ended without sending "
                                      "its audio; nothing was kept")
        _, ok, rate, count, size = _HEADER.unpack_from(buf)
        body = buf[_HEADER.size:]
        if not ok:
            raise AudiobookError(f"eSpeak NG failed: {body[:size].decode('utf-8', 'replace')}")
        if len(body) != 8 * count + size:
            raise SynthesisIncomplete("the eSpeak NG child process sent part of its audio; "
                                      "nothing was kept")
        marks = tuple(struct.iter_unpack("<ii", body[: 8 * count]))
        return Speech(body[8 * count:], rate, tuple((int(o), int(ms)) for o, ms in marks))

    def reap(self) -> None:
        """End and wait for the child (at once if it is still running), and close the pipe."""
        if self.fd < 0:
            return
        os.close(self.fd)
        self.fd = -1
        if not self.complete():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.status = os.waitpid(self.pid, 0)[1]


def engine_version() -> str:
    return _Engine.get().version


class LocalBackend:
    name = "local"

    def __init__(self, genders: dict[int, int] | None = None):
        self.genders = genders or {}

    def identity(self) -> str:
        return f"local:espeak-ng-{engine_version()}:map{VOICE_MAP_VERSION}"

    def settings_for(self, voice: Voice) -> EspeakVoice:
        return espeak_voice(voice, self.genders.get(voice.voice) if isinstance(voice.voice, int) else None)

    def voice_identity(self, voice: Voice) -> str:
        """What the engine makes of a voice, for the cache key: its eSpeak settings."""
        return repr(self.settings_for(voice))

    def synthesize(self, text: str, voice: Voice) -> Audio:
        return _audio(_Engine.get().speak(text, self.settings_for(voice)))

    def synthesize_all(self, requests: Sequence[SynthesisRequest], jobs: int,
                       on_result: OnResult) -> None:
        # Each segment in its own forked child, up to `jobs` (at most one per
        # core) at once: synthesis is CPU-bound, and the children share nothing.
        engine = _Engine.get()
        if not _CAN_FORK:
            for request in requests:
                on_result(request, self.synthesize(request.text, request.voice))
            return
        width = max(1, min(jobs, os.cpu_count() or 1))
        _speak_in_children(engine, requests, width, self.settings_for, on_result)

    def stats(self) -> dict:
        return {}  # nothing to count: no service, no retries

    def close(self) -> None:
        pass


def _audio(speech: Speech) -> Audio:
    return Audio(speech.wav(), "wav", 0, speech.marks)


def _speak_in_children(engine: _Engine, requests: Sequence[SynthesisRequest], width: int,
                       settings_for, on_result: OnResult) -> None:
    waiting = deque(requests)
    running: dict[int, tuple[_Child, SynthesisRequest]] = {}
    started: list[_Child] = []
    with selectors.DefaultSelector() as selector:
        try:
            while waiting or running:
                while waiting and len(running) < width:
                    request = waiting.popleft()
                    child = _Child.start(engine, request.text, settings_for(request.voice),
                                         started)
                    running[child.fd] = (child, request)
                    selector.register(child.fd, selectors.EVENT_READ)
                for key, _ in selector.select():
                    child, request = running[key.fd]
                    child.pump()
                    if not child.complete():
                        continue
                    selector.unregister(key.fd)
                    del running[key.fd]
                    try:
                        speech = child.parse()
                    except AudiobookError as exc:
                        raise AudiobookError(f"{request.label}: {exc}") from exc
                    finally:
                        child.reap()
                    started.remove(child)
                    on_result(request, _audio(speech))
        finally:
            for child in started:
                child.reap()
