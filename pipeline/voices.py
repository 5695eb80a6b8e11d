"""The voice library: the JSON the API's Playground downloads (guide, section 3).

Accepted shapes: the full response object ({"code": ..., "data": {"records":
[...]}}), its "data" object, or a bare list of records.

Enums, as far as the guide allows: `gender` and `age` are "platform enum
values" the guide does not list. We read gender 1 as male and 2 as female
(the guide's one example, "Madison", is 2) and show any other value as its
number; age is shown as its number (the example's 2 reads as adult).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.book import emotion_id
from pipeline.errors import InputError, Problem

GENDERS = {1: "male", 2: "female"}
GENDER_CODES = {"male": 1, "m": 1, "female": 2, "f": 2}


@dataclass(frozen=True)
class VoiceInfo:
    id: int
    name: str
    display_name: str
    gender: int | None
    age: int | None
    language: str
    emotions: tuple[str, ...]

    @property
    def gender_name(self) -> str:
        if self.gender is None:
            return ""
        return GENDERS.get(self.gender, str(self.gender))

    def as_json(self) -> dict:
        return {"id": self.id, "name": self.name, "display_name": self.display_name,
                "gender": self.gender, "age": self.age, "language": self.language,
                "emotion": list(self.emotions)}


def load_library(path: Path, display: str | None = None) -> list[VoiceInfo]:
    display = display or str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise InputError(Problem(display, None, None, "voice library not found")) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise InputError(Problem(display, line, None,
                                 "is not a JSON voice library; download it again from the Playground")) from None
    records = data
    if isinstance(records, dict):
        records = records.get("data", records)
    if isinstance(records, dict):
        records = records.get("records")
    if not isinstance(records, list):
        raise InputError(Problem(display, None, "data.records",
                                 "no voice list found; expected data.records[] as in the API guide"))
    return voices_from_records(records, display)


def voices_from_records(records: list, display: str) -> list[VoiceInfo]:
    """VoiceInfos from the API's voice records (a library file's, or the offline table's)."""
    voices = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or not isinstance(rec.get("id"), int) or isinstance(rec.get("id"), bool):
            raise InputError(Problem(display, None, f"records[{i}]", "each voice needs a numeric id"))
        emotions = rec.get("emotion") or []
        voices.append(VoiceInfo(
            id=rec["id"],
            name=str(rec.get("name") or ""),
            display_name=str(rec.get("display_name") or rec.get("name") or ""),
            gender=rec.get("gender") if isinstance(rec.get("gender"), int) else None,
            age=rec.get("age") if isinstance(rec.get("age"), int) else None,
            language=str(rec.get("language") or ""),
            emotions=tuple(str(e) for e in emotions) if isinstance(emotions, list) else (),
        ))
    return voices


def find_voice(library: list[VoiceInfo], ref: int | str) -> VoiceInfo | None:
    """A voice by id, or by name or display name (case-insensitive)."""
    if isinstance(ref, int):
        return next((v for v in library if v.id == ref), None)
    wanted = ref.strip().lower()
    return next((v for v in library if wanted in (v.name.lower(), v.display_name.lower())), None)


def suggest(library: list[VoiceInfo], ref: int | str) -> str:
    """'; did you mean 2072 (Madison)?' or a hint to list the voices."""
    if isinstance(ref, int):
        nearest = sorted(library, key=lambda v: (abs(v.id - ref), v.id))[:3]
    else:
        names = {v.name.lower(): v for v in library} | {v.display_name.lower(): v for v in library}
        close = difflib.get_close_matches(ref.lower(), list(names), n=3, cutoff=0.5)
        nearest = list(dict.fromkeys(names[c] for c in close))
    if not nearest:
        return "; run `audiobook voices` to list them"
    return "; did you mean " + " or ".join(f"{v.id} ({v.display_name})" for v in nearest) + "?"


def filter_voices(library: list[VoiceInfo], language: str | None = None, gender: str | None = None,
                  emotion: str | None = None) -> list[VoiceInfo]:
    out = library
    if language:
        out = [v for v in out if v.language == language]
    if gender:
        code = GENDER_CODES.get(gender.lower(), int(gender) if gender.isdigit() else -1)
        out = [v for v in out if v.gender == code]
    if emotion:
        out = [v for v in out if speaks_emotion(v, emotion)]
    return out


def speaks_emotion(voice: VoiceInfo, emotion: str) -> bool:
    """True if the voice lists the emotion, in the API's spelling or the library's.

    "happy" finds a voice that lists "cheerful" (book.EMOTION_ALIASES), and an
    id ("1") works too; a word the API has no id for ("whispering") is
    compared as written.
    """
    word = emotion.strip().lower()
    wanted = int(word) if word.isdigit() else emotion_id(word)
    listed = [e.strip().lower() for e in voice.emotions]
    if word in listed:
        return True
    return wanted is not None and any(emotion_id(e) == wanted for e in listed)
