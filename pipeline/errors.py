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


# --- client
#
# The Audio Cleaner client's errors. Every one keeps the service's raw code and
# message (scrubbed of the key) and the job id it concerns, so a user or a
# later build can act on it. `retryable` is read by one function only,
# pipeline.tts.policy.retry_delay.


class MissingKeyError(AudiobookError):
    """AUDIOCLEANER_API_KEY is unset, empty, or not a usable header value."""

    exit_code = EXIT_INPUT


class AudioCleanerError(ServiceError):
    """Any failure talking to Audio Cleaner; keeps the raw code and message.

    The tree (exit 1 unless marked; [r] = retried by the retry policy):

        ServiceError
        └── AudioCleanerError
            ├── AuthError                  101002, 101005, 101006
            ├── CreditError (BudgetError)  100100, exit 3
            ├── CreditCapError (BudgetError)  --max-credits would be passed, exit 3
            ├── ThrottledError [r]         HTTP 429
            │   ├── RateLimitError [r]     101003
            │   └── ConcurrencyLimitError [r]  101004
            ├── TaskNotFoundError          101008
            ├── ParameterError             100002
            ├── RetryLaterError [r]        100099
            ├── ServerError [r]            HTTP 5xx, 408
            ├── TransportError [r]         refused, dropped (maybe_took_effect says if sent)
            │   └── RequestTimeoutError [r]  a read timed out, or the overall deadline passed
            ├── UnexpectedResponseError    unknown code, non-JSON body, unknown status
            ├── TaskFailedError            a segment's tasks kept failing
            ├── PollDeadlineError          still waiting at the deadline (stays journaled)
            ├── SegmentsUndoneError        creates stopped: answers lost, or the service
            │                              deadline passed; the rest was made and kept
            └── OutputError [r]            the output could not be fetched or is not audio
                └── HostileOutputError     the service's output breaks a bound: a body
                                           over its size cap, a URL that is not
                                           http(s), audio far longer than its text
        MissingKeyError (AudiobookError)   exit 2
    """

    retryable = False

    def __init__(self, message: str, *, code: int | str | None = None,
                 raw_message: str | None = None, http_status: int | None = None,
                 job_id: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.raw_message = raw_message
        self.http_status = http_status
        self.job_id = job_id
        self.retry_after = retry_after


class AuthError(AudioCleanerError):
    """101002, 101005, 101006: the key is wrong, suspended or not enabled."""


class CreditError(AudioCleanerError, BudgetError):
    """100100: the account lacks credit."""

    exit_code = EXIT_BUDGET


class CreditCapError(AudioCleanerError, BudgetError):
    """One more create could pass --max-credits (counting creates that may have been paid)."""

    exit_code = EXIT_BUDGET


class ThrottledError(AudioCleanerError):
    """HTTP 429, or one of the throttling codes below."""

    retryable = True


class RateLimitError(ThrottledError):
    """101003."""


class ConcurrencyLimitError(ThrottledError):
    """101004."""


class TaskNotFoundError(AudioCleanerError):
    """101008: an unknown, expired or another key's job id."""


class ParameterError(AudioCleanerError):
    """100002 (not in the TTS guide; the vendor's web endpoints use it)."""


class RetryLaterError(AudioCleanerError):
    """100099 (the vendor's web endpoints' "needs retry")."""

    retryable = True


class ServerError(AudioCleanerError):
    """An HTTP 5xx or 408 answer: the request did not take effect."""

    retryable = True


class TransportError(AudioCleanerError):
    """No answer: refused, dropped, timed out. May have taken effect if sent."""

    retryable = True

    def __init__(self, message: str, *, maybe_took_effect: bool, **kw):
        super().__init__(message, **kw)
        self.maybe_took_effect = maybe_took_effect


class RequestTimeoutError(TransportError):
    """A read timed out, or the whole request outlived its deadline."""


class UnexpectedResponseError(AudioCleanerError):
    """An unknown code, a non-JSON body, an HTTP error or an unknown task status."""


class TaskFailedError(AudioCleanerError):
    """A task ended `failed` more times than we retry."""


class PollDeadlineError(AudioCleanerError):
    """A task was still waiting at the polling deadline; it stays journaled."""


class SegmentsUndoneError(AudioCleanerError):
    """Some segments were left undone so as not to pay twice or run on without end.

    A segment whose create answer was lost twice (or once, when sending it
    again could pass --max-credits), and every segment not started once the
    service was losing answers or the service deadline had passed. Everything
    else was made and stored first. `undone` holds (label, why) pairs;
    `summary` is what the build did and risked, for `build --json`.
    """

    def __init__(self, lines: list[str], undone: list[tuple[str, str]]):
        super().__init__("\n".join(lines))
        self._lines = lines
        self.undone = undone
        self.summary: dict = {}

    def lines(self) -> list[str]:
        return list(self._lines)

    def as_json(self) -> dict:
        return {"error": self.lines(), **self.summary,
                "segments_left_undone": [{"segment": label, "why": why}
                                         for label, why in self.undone]}


class OutputError(AudioCleanerError):
    """The output file could not be fetched or is not audio."""

    retryable = True

    def __init__(self, message: str, *, retryable: bool | None = None, **kw):
        super().__init__(message, **kw)
        if retryable is not None:
            self.retryable = retryable


class HostileOutputError(OutputError):
    """The service's output breaks a bound; trying again would get the same."""

    retryable = False


# --- config
class ValidationError(ValueError):
    """One value that fails its key's check; the config loader turns it into a Problem
    with the file, line and dotted key (callers outside the loader name the source)."""


# --- engine


class SynthesisIncomplete(AudiobookError):
    """The offline engine stopped before the end of a text; the partial audio is dropped."""


# --- core


class SegmentMissing(AudiobookError):
    """The renderer found segments missing or damaged in the cache.

    build() catches it once: it makes exactly these segments again and renders
    again. Seen by the user only when the second attempt fails too.
    """

    def __init__(self, keys: list[str] | tuple[str, ...]):
        self.keys = list(dict.fromkeys(keys))
        shown = ", ".join(k[:12] for k in self.keys[:3]) + (" ..." if len(self.keys) > 3 else "")
        super().__init__(f"{len(self.keys)} segment(s) left the cache or were damaged during the "
                         f"build ({shown}); build again")


# --- store


class RemoteCacheError(AudiobookError):
    """`cache push` and the remote tier is not set or cannot be reached."""

    exit_code = EXIT_RUNTIME


# --- outputs


class OutputWriteError(AudiobookError):
    """The output folder cannot be written (full, read-only, a file in the way)."""

    exit_code = EXIT_RUNTIME
