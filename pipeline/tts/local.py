"""The offline backend: eSpeak NG, loaded in process from espeakng-loader.

No system package is needed: the wheel ships libespeak-ng and its data. The
library keeps global state, so one process speaks one text at a time (a lock);
for many segments, worker processes each load their own copy.

How settings become sound:
- language -> the eSpeak voice for that language;
- voice id -> one of eSpeak's voice variants (distinct ids, distinct voices;
  when the voice library says a voice is female or male, a variant of that
  kind), and a small pitch offset so that ids sharing a variant still differ;
- emotion -> prosody: base pitch, pitch range and a rate factor;
- speed -> words per minute (175 x speed x the emotion's rate factor).
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import threading
import wave
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.book import Voice
from pipeline.errors import AudiobookError
from pipeline.tts.base import Audio, OnResult, SynthesisRequest

# Bump when the mapping below changes: it changes the audio of every key.
VOICE_MAP_VERSION = 1

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

_ESPEAK_RATE, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 3, 4
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER, _CHARS_UTF8 = 1, 1


@dataclass(frozen=True)
class EspeakVoice:
    name: str
    pitch: int
    range: int
    rate: int


def espeak_voice(voice: Voice, gender: int | None = None) -> EspeakVoice:
    """The eSpeak settings for a voice. gender: 1 male, 2 female, None unknown."""
    digest = int(hashlib.sha256(str(voice.voice).encode()).hexdigest(), 16)
    family = {1: MALE_VARIANTS, 2: FEMALE_VARIANTS}.get(gender or 0, _ALL_VARIANTS)
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


class _Engine:
    """One process's libespeak-ng."""

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
        self.rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0
        )
        if self.rate <= 0:
            raise AudiobookError("eSpeak NG failed to initialise (its data folder is missing?)")
        self.version = lib.espeak_Info(None).decode()
        self._chunks: list[bytes] = []
        callback_type = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
        )
        self._callback = callback_type(self._collect)  # keep a reference: C holds it
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib

    @classmethod
    def get(cls) -> _Engine:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _collect(self, samples, count, _events) -> int:
        if count > 0:
            self._chunks.append(ctypes.string_at(samples, count * 2))
        return 0

    def speak(self, text: str, settings: EspeakVoice) -> bytes:
        """16-bit mono PCM WAV of text."""
        with self._lock:
            if self._lib.espeak_SetVoiceByName(settings.name.encode()) != 0:
                base = settings.name.split("+")[0].encode()
                self._lib.espeak_SetVoiceByName(base)
            self._lib.espeak_SetParameter(_ESPEAK_RATE, settings.rate, 0)
            self._lib.espeak_SetParameter(_ESPEAK_PITCH, settings.pitch, 0)
            self._lib.espeak_SetParameter(_ESPEAK_RANGE, settings.range, 0)
            self._chunks = []
            data = text.encode("utf-8")
            self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            self._lib.espeak_Synchronize()
            pcm = b"".join(self._chunks)
            self._chunks = []
        out = io.BytesIO()
        with wave.open(out, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.rate)
            w.writeframes(pcm)
        return out.getvalue()


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

    def synthesize(self, text: str, voice: Voice) -> Audio:
        return Audio(_Engine.get().speak(text, self.settings_for(voice)), "wav", 0)

    def synthesize_all(self, requests: Sequence[SynthesisRequest], jobs: int,
                       on_result: OnResult) -> None:
        # One at a time, whatever --jobs says: eSpeak speaks about 1000x faster
        # than real time on one core, so a worker pool (each process loading its
        # own library) saved less than the chapter encoding it competes with for
        # the same cores. The build encodes chapters in parallel instead.
        for request in requests:
            on_result(request, self.synthesize(request.text, request.voice))

    def stats(self) -> dict:
        return {}  # nothing to count: no service, no retries

    def close(self) -> None:
        pass
