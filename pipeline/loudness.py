"""Loudness rules: the `output.loudness` target, ACX's numbers, and what breaks them.

The renderer asks `treatment_for` how to finish a chapter; `check --audio`
asks `failures` what a finished file breaks. Both read the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pipeline import audio
from pipeline.config import Config, Pauses

# ACX's rules, as numbers. The head and tail bounds keep a margin inside
# ACX's 0.5-1 s and 1-5 s, because a checker finds the voice's first and
# last blocks by a threshold, which moves the edges by some tens of ms.
ACX_RMS_DB = -20.0
ACX_RMS_RANGE = (-23.0, -18.0)
ACX_PEAK_DB = -3.0
ACX_CEILING_DB = -3.5  # the limiter's ceiling: MP3 encoding can overshoot a little
ACX_FLOOR_DB = -60.0
ACX_HEAD_MS = (500, 1000)
ACX_TAIL_MS = (1000, 5000)
ACX_EDGE_MARGIN_MS = 100
ACX_MAX_MINUTES = 120
ACX_RATE = 44100
ACX_MIN_KBPS = 192  # MP3 only: ACX takes MP3s; the M4B is for other stores
TARGET_CEILING_DB = -1.0  # for LUFS and RMS targets: the common distribution limit
RMS_TOLERANCE_DB = 0.3  # re-encode once when the finished chapter misses by more
REPORT_TOLERANCE_DB = 1.0


@dataclass(frozen=True)
class Target:
    """The loudness rule of `output.loudness`: kind is acx, rms, lufs or none."""

    kind: str
    level: float | None = None  # dB RMS or LUFS
    ceiling_db: float | None = None

    @property
    def label(self) -> str:
        if self.kind == "acx":
            return "ACX"
        if self.kind == "none":
            return "none"
        unit = "LUFS" if self.kind == "lufs" else "dB RMS"
        return f"{self.level:g} {unit}"


def loudness_target(cfg: Config) -> Target:
    value = cfg.output.loudness  # config.Loudness(kind, level)
    if value.kind == "acx":
        return Target("acx", ACX_RMS_DB, ACX_CEILING_DB)
    if value.kind in ("rms", "lufs") and value.level is not None:
        return Target(value.kind, value.level, TARGET_CEILING_DB)
    return Target("none")


def chapter_pauses(cfg: Config) -> Pauses:
    """The configured pauses, with head and tail clamped into ACX's bounds in acx mode."""
    pauses = cfg.pauses
    if loudness_target(cfg).kind != "acx":
        return pauses
    m = ACX_EDGE_MARGIN_MS
    head = min(max(pauses.chapter_head_ms, ACX_HEAD_MS[0] + m), ACX_HEAD_MS[1] - m)
    tail = min(max(pauses.chapter_tail_ms, ACX_TAIL_MS[0] + m), ACX_TAIL_MS[1] - m)
    return replace(pauses, chapter_head_ms=head, chapter_tail_ms=tail)


def treatment_for(target: Target, pcm: audio.Stitched, stitched: audio.Levels) -> audio.Treatment:
    """The gain that brings the stitched chapter to the target, and its limiter."""
    if target.kind in ("acx", "rms") and target.level is not None:
        gain = target.level - stitched.rms_db if stitched.rms_db > audio.SILENCE_DB else 0.0
    elif target.kind == "lufs" and target.level is not None:
        measured = audio.integrated_loudness(pcm.path, pcm.rate)
        gain = target.level - measured if measured > audio.SILENCE_DB else 0.0
    else:
        return audio.Treatment()
    return audio.Treatment(gain_db=round(gain, 3), ceiling_db=target.ceiling_db)


def rms_miss(target: Target, finished: audio.Levels) -> float:
    """How many dB the finished chapter's RMS misses an RMS target by (0 for others)."""
    if target.kind in ("acx", "rms") and target.level is not None:
        return target.level - finished.rms_db
    return 0.0


def failures(target: Target, lv: audio.Levels, rate: int, kbps: int, cbr: bool,
             lufs: float | None, mp3: bool) -> list[str]:
    """What this file breaks of the target's rules, in words.

    ACX's per-file format rules (rate, CBR >= 192k, edges, length) apply to
    the chapter MP3s ACX takes, not to the M4B.
    """
    bad = []
    if target.kind == "acx":
        lo, hi = ACX_RMS_RANGE
        if not lo <= lv.rms_db <= hi:
            bad.append(f"RMS {lv.rms_db:.1f} outside {lo:g}..{hi:g}")
        if lv.peak_db > ACX_PEAK_DB:
            bad.append(f"peak {lv.peak_db:.1f} > {ACX_PEAK_DB:g}")
        if lv.floor_db > ACX_FLOOR_DB:
            bad.append(f"noise floor {lv.floor_db:.1f} > {ACX_FLOOR_DB:g}")
        if lv.floor_db <= audio.SILENCE_DB:
            bad.append("digital silence (no room tone)")
        if mp3:
            bad += _acx_file_failures(lv, rate, kbps, cbr)
    elif target.kind == "rms" and target.level is not None \
            and abs(lv.rms_db - target.level) > REPORT_TOLERANCE_DB:
        bad.append(f"RMS {lv.rms_db:.1f}, target {target.level:g}")
    elif target.kind == "lufs" and lufs is not None and target.level is not None \
            and abs(lufs - target.level) > REPORT_TOLERANCE_DB:
        bad.append(f"{lufs:.1f} LUFS, target {target.level:g}")
    if target.ceiling_db is not None and target.kind != "acx" \
            and lv.peak_db > target.ceiling_db + 0.5:
        bad.append(f"peak {lv.peak_db:.1f} > {target.ceiling_db:g}")
    return bad


def _acx_file_failures(lv: audio.Levels, rate: int, kbps: int, cbr: bool) -> list[str]:
    bad = []
    if rate != ACX_RATE:
        bad.append(f"{rate} Hz, not {ACX_RATE}")
    if kbps < ACX_MIN_KBPS or not cbr:
        bad.append(f"{kbps} kbps {'CBR' if cbr else 'VBR'}, not CBR >= {ACX_MIN_KBPS}")
    if not ACX_HEAD_MS[0] <= lv.head_ms <= ACX_HEAD_MS[1]:
        bad.append(f"head tone {lv.head_ms} ms outside {ACX_HEAD_MS[0]}-{ACX_HEAD_MS[1]}")
    if not ACX_TAIL_MS[0] <= lv.tail_ms <= ACX_TAIL_MS[1]:
        bad.append(f"tail tone {lv.tail_ms} ms outside {ACX_TAIL_MS[0]}-{ACX_TAIL_MS[1]}")
    if lv.duration_ms > ACX_MAX_MINUTES * 60_000:
        bad.append(f"longer than {ACX_MAX_MINUTES} minutes")
    return bad
