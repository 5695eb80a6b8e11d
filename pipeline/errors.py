"""The errors a user sees, and the exit code each one maps to.

Everything below cli.py raises one of these; cli.py turns them into a few plain
lines and an exit code (the traceback only with -v).
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_INPUT = 2
EXIT_BUDGET = 3
EXIT_OFFLINE_MISS = 4


class AudiobookError(Exception):
    """Base of every error meant for the user."""

    exit_code = EXIT_RUNTIME

    def lines(self) -> list[str]:
        return [str(self)]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located as precisely as we can."""

    file: str
    line: int | None
    key: str | None
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = f"{self.key}: {self.message}" if self.key else self.message
        prefix = "warning: " if self.warning else ""
        return f"{where}: {prefix}{what}" if what else where


class InputError(AudiobookError):
    """Bad config or source: one or many problems, all reported at once."""

    exit_code = EXIT_INPUT

    def __init__(self, problems: list[Problem] | Problem):
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class ConfigError(InputError):
    """audiobook.yml is wrong."""


class ServiceError(AudiobookError):
    """The TTS service failed in a way retries did not fix."""

    exit_code = EXIT_RUNTIME


class BudgetError(AudiobookError):
    """The plan costs more than --max-credits, or the account lacks credit."""

    exit_code = EXIT_BUDGET


class OfflineMissError(AudiobookError):
    """--offline and a segment is not in the cache."""

    exit_code = EXIT_OFFLINE_MISS



class BackendUnavailable(AudiobookError):
    """An unknown backend name, or a backend that cannot run here."""

    exit_code = EXIT_INPUT


class AudioToolError(AudiobookError):
    """ffmpeg is missing or failed."""


# --- outputs


class OutputError(AudiobookError):
    """The output folder cannot be written (full, read-only, a file in the way)."""

    exit_code = EXIT_RUNTIME


class SegmentMissing(AudiobookError):
    """Segments the renderer needs are missing from the cache, or were damaged."""

    def __init__(self, keys: list[str]):
        self.keys = keys
        super().__init__(f"{len(keys)} segment(s) missing from the cache, first "
                         f"{keys[0][:12] if keys else '?'}; build again to re-make them")
