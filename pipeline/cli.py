"""The command line: parse, call the library, print. Nothing else lives here."""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import textwrap
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pipeline import __version__
from pipeline.errors import EXIT_OK, EXIT_RUNTIME, AudiobookError, InputError, Problem
from pipeline.tts import BACKENDS

if TYPE_CHECKING:
    from pipeline.cache import SegmentCache
    from pipeline.remote_cache import RemoteCache

EXIT_INTERRUPT = 130

log = logging.getLogger("pipeline")
LOG_FORMAT = "%(message)s"  # the build ledger's front door prints warnings in this form too


@dataclass
class State:
    """What -c/-v/-q set, before or after the command name; lives on ctx.obj."""

    config: Path = Path("audiobook.yml")
    verbose: bool = False
    quiet: bool = False
    config_given: bool = False  # -c was passed: a missing file is an error, even for `say`
    argv: list[str] | None = None  # the command line as typed, when main() ran it


pass_state = click.make_pass_decorator(State, ensure=True)


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger("pipeline")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # httpx logs every request line at INFO; requests carry nothing secret in
    # their URLs, but keep the output ours.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def _set_state(ctx: click.Context, param: click.Parameter, value: object) -> None:
    state = ctx.ensure_object(State)
    if value is None or value is False:
        return  # not given here: keep what the group (or the default) said
    setattr(state, param.name or "", value)
    state.config_given = state.config_given or param.name == "config"
    _setup_logging(state.verbose, state.quiet)


def common_options(func):
    """-c/-v/-q, the same on the group and on every command (one path: the State)."""
    func = click.option("-c", "--config", type=click.Path(path_type=Path), expose_value=False,
                        callback=_set_state, is_eager=True,
                        help="The config file (default ./audiobook.yml).")(func)
    func = click.option("-q", "--quiet", is_flag=True, default=None, expose_value=False,
                        callback=_set_state, help="Only warnings and errors.")(func)
    func = click.option("-v", "--verbose", is_flag=True, default=None, expose_value=False,
                        callback=_set_state, help="More detail, and tracebacks on errors.")(func)
    return func


def backend_option(func):
    return click.option("--backend", type=click.Choice(BACKENDS), default=None,
                        help="Override the config's backend.")(func)


def json_option(func):
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON instead of text.")(func)


def exit_code_for(exc: BaseException, state: State) -> int:
    """The one place errors become lines on stderr and an exit code."""
    if isinstance(exc, click.exceptions.Abort) and isinstance(exc.__context__, KeyboardInterrupt):
        exc = exc.__context__
    if isinstance(exc, InputError):
        for problem in exc.problems:  # `check` reports warnings beside the errors
            click.echo(str(problem) if problem.warning else f"error: {problem}", err=True)
        code = exc.exit_code
    elif isinstance(exc, AudiobookError):
        for line in exc.lines():
            click.echo(line if line.startswith("warning:") else f"error: {line}", err=True)
        code = exc.exit_code
    elif isinstance(exc, KeyboardInterrupt):
        click.echo("interrupted: audio already made is kept in the cache; build again to resume",
                   err=True)
        code = EXIT_INTERRUPT
    else:
        where = _error_log(exc)
        click.echo(f"error: internal error: {type(exc).__name__}: {exc} "
                   f"(details in {where}; run with -v to see them here)", err=True)
        code = EXIT_RUNTIME
    if state.verbose:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return code


def _version_of(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def _error_log(exc: BaseException) -> str:
    """pre-commit's error_handler: versions and the traceback in a log file, for a bug report."""
    import platform

    from pipeline.cache import resolve_cache_dir
    from pipeline.say import user_cache_dir

    try:
        path = resolve_cache_dir(user_cache_dir()) / "audiobook-error.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        versions = [f"audiobook-pipeline {__version__}", f"python {platform.python_version()}",
                    f"platform {platform.platform()}", f"click {_version_of('click')}"]
        text = "\n".join(versions + ["", *traceback.format_exception(type(exc), exc,
                                                                     exc.__traceback__)])
        path.write_text(text, encoding="utf-8")
        return str(path)
    except OSError:
        return "no log file (the cache folder is not writable)"


class Progress:
    """A progress bar on a terminal, plain log lines otherwise; never both."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stderr.isatty() and not os.environ.get("CI")
        self.bar: Any = None  # click's ProgressBar while one is shown
        self.label = ""
        self.total = 0
        self.done = 0

    def start(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        if self.quiet or total == 0:
            return
        if self.tty:
            self.bar = click.progressbar(length=total, label=label, file=sys.stderr)
            self.bar.__enter__()
        else:
            log.info("%s: %d to do", label, total)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif not self.quiet and self.total >= 20 and self.done % -(-self.total // 10) == 0:
            log.info("%s: %d/%d", self.label, self.done, self.total)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="audiobook")
@common_options
@pass_state
def cli(state: State) -> None:
    """Build audiobooks from Markdown or EPUB, as declared in audiobook.yml."""
    _setup_logging(state.verbose, state.quiet)


def _config(state: State):
    from pipeline.config import load_config

    return load_config(state.config)


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@common_options
def init(directory: Path) -> None:
    """Write a starter audiobook.yml and one chapter into DIRECTORY."""
    from pipeline.starter import write_starter

    for path in write_starter(directory):
        click.echo(f"wrote {path}")
    click.echo("next:")
    for line in next_commands(directory):
        click.echo(f"  {line}")


def next_commands(directory: Path) -> list[str]:
    """The exact commands that build the starter project just written."""
    go = "" if directory.resolve() == Path.cwd().resolve() else f"cd {shlex.quote(str(directory))} && "
    return [f"{go}audiobook build     # chapter MP3s and the M4B in build/, offline voice",
            "then edit chapters/01-first-chapter.md and run `audiobook build` again: only the "
            "sentences you changed are made again (`audiobook plan` shows what a build costs)"]


@cli.command()
@click.option("--audio", "audio_report", is_flag=True, help="Also measure the built files.")
@common_options
@pass_state
def check(state: State, audio_report: bool) -> None:
    """Validate config, sources and voices; list every problem."""
    from pipeline.check import check_project

    cfg = _config(state)
    problems = check_project(cfg)
    if any(not p.warning for p in problems):
        raise InputError(problems)
    for p in problems:
        click.echo(str(p), err=True)
    if audio_report:
        from pipeline.check import audio_report as measure

        report = measure(cfg)
        click.echo(_audio_table(report))
        if not report.passed:
            sys.exit(1)
        return
    click.echo(f"{cfg.display}: ok ({len(cfg.chapters)} chapter entries)")


def _audio_table(report) -> str:
    """check --audio's table: one row per built file, then how many pass."""
    if not report.files:
        return f"{report.directory}: no built audio; run `audiobook build` first"
    files = report.files
    width = max(len("file"), *(len(r.name) for r in files))
    head = (f"{'file':<{width}}  {'duration':>8}  {'rate':>5}  {'kbps':>4}  {'RMS':>6}  "
            f"{'peak':>6}  {'floor':>6}  {'head':>5}  {'tail':>5}  verdict")
    lines = [f"target: {report.target.label}", head, "-" * len(head)]
    for r in files:
        lv = r.levels
        verdict = "ok" if not r.failures else "FAIL: " + "; ".join(r.failures)
        loud = f"{lv.rms_db:6.1f}" if r.lufs is None else f"{r.lufs:4.1f}LU"
        s = lv.duration_ms // 1000
        clock = f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
        lines.append(f"{r.name:<{width}}  {clock:>8}  {r.rate:>5}  {r.kbps:>4}  "
                     f"{loud:>6}  {lv.peak_db:6.1f}  {lv.floor_db:6.1f}  {lv.head_ms / 1000:5.2f}  "
                     f"{lv.tail_ms / 1000:5.2f}  {verdict}")
    passed = sum(1 for r in files if not r.failures)
    lines.append(f"{passed}/{len(files)} file(s) pass")
    return "\n".join(lines)


TITLE_WIDTH = 32


@cli.command()
@json_option
@backend_option
@common_options
@pass_state
def plan(state: State, as_json: bool, backend: str | None) -> None:
    """What a build would do and cost; spends nothing."""
    from pipeline.cache import open_cache
    from pipeline.plan import lower_bound, make_plan

    cfg = _config(state)
    with open_cache(cfg) as cache:
        the_plan = make_plan(cfg, cache, backend)
    if as_json:
        click.echo(json.dumps(the_plan.as_json(), indent=2, ensure_ascii=False))
        return
    w = TITLE_WIDTH
    click.echo(f"{cfg.title} ({the_plan.backend})")
    click.echo(f"{'#':>3}  {'chapter':<{w}} {'chars':>8} {'segs':>5} {'credits':>8} {'cached':>7} {'to spend':>9}")
    for cp in the_plan.chapters:
        cached = sum(1 for s in cp.segments if s.key in cp.cached)
        first, *rest = textwrap.wrap(cp.title, w) or [""]
        click.echo(f"{cp.index:>3}  {first:<{w}} {cp.characters:>8} {len(cp.segments):>5} "
                   f"{cp.credits:>8} {cached:>7} {cp.credits_to_spend:>9}")
        for more in rest:  # the whole title, wrapped under itself
            click.echo(f"{'':>3}    {more}")
    t = the_plan.totals()
    click.echo(f"{'':>3}  {'total':<{w}} {t['characters']:>8} {t['segments']:>5} {t['credits']:>8} "
               f"{t['cached_segments']:>7} {t['credits_to_spend']:>9}")
    click.echo(f"lower bound (one request per chapter): {lower_bound(the_plan)} credits")
    if t["credits_from_rewriting"]:
        click.echo(f"the lexicon and spoken form add {t['credits_from_rewriting']} credit(s) to "
                   "this plan (`normalize: false` turns the spoken form off)")


@cli.command()
@click.argument("chapters", nargs=-1)
@backend_option
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Segments synthesized at once.")
@click.option("--max-credits", type=click.IntRange(0), default=None,
              help="Fail (exit 3) before spending if the build needs more.")
@click.option("--service-deadline", type=click.FloatRange(0), default=None, metavar="SECONDS",
              help="Start no new paid request after this long (default "
                   "$AUDIOBOOK_SERVICE_DEADLINE, else 3 hours); tasks already paid for are "
                   "still fetched, then exit 1.")
@click.option("--offline", is_flag=True, help="Use only cached audio; exit 4 if any is missing.")
@click.option("--force", is_flag=True, help="Re-encode chapters even if unchanged.")
@json_option
@common_options
@pass_state
def build(state: State, chapters: tuple[str, ...], backend: str | None, jobs: int,
          max_credits: int | None, service_deadline: float | None, offline: bool, force: bool,
          as_json: bool) -> None:
    """Build CHAPTERs (1, 3-5, a title or slug; none means all)."""
    args = BuildArgs(chapters, backend, jobs, max_credits, offline, force, as_json,
                     service_deadline)
    _build_and_report(state, args)


@dataclass(frozen=True)
class BuildArgs:
    chapters: tuple[str, ...]
    backend: str | None
    jobs: int
    max_credits: int | None
    offline: bool
    force: bool
    as_json: bool
    service_deadline: float | None = None


def _build_and_report(state: State, args: BuildArgs) -> None:
    """One build and its summary (pipeline.ledger's front door prints a no-op's the same way)."""
    from pipeline.build import build as run_build
    from pipeline.errors import SegmentsUndoneError
    from pipeline.ledger import summary_line

    cfg = _config(state)
    try:
        result = run_build(cfg, args.chapters, backend=args.backend, jobs=args.jobs,
                           max_credits=args.max_credits, offline=args.offline, force=args.force,
                           progress=Progress(state.quiet or args.as_json),
                           record_as=os.path.abspath(state.config),
                           service_deadline=args.service_deadline)
    except SegmentsUndoneError as exc:
        if args.as_json:  # what was made, paid and risked; the error lines go to stderr
            click.echo(json.dumps(exc.as_json(), indent=2))
        raise
    if args.as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
        return
    log.info("%s", summary_line(result.as_json()))
    if result.synthesis.credits_maybe_charged:
        log.warning("%d more credit(s) may have been charged for requests whose answer was lost",
                    result.synthesis.credits_maybe_charged)
    if "m4b" in cfg.output.formats and not result.output.book_written and args.chapters:
        log.info("no M4B written: a build of some chapters (%s) makes only their files; "
                 "build without chapter arguments for the book", " ".join(args.chapters))
    if not state.quiet:
        click.echo(f"outputs in {cfg.output.dir}")


@cli.command()
@click.option("--language", default=None, help="Only voices of this language key.")
@click.option("--gender", default=None, help="male, female, or the enum number.")
@click.option("--emotion", default=None, help="Only voices that list this emotion.")
@click.option("--file", "library_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="A voice library JSON (default: `voices:` of the config).")
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="local: the offline eSpeak NG voices, no library needed.")
@json_option
@common_options
@pass_state
def voices(state: State, language: str | None, gender: str | None, emotion: str | None,
           library_file: Path | None, backend: str | None, as_json: bool) -> None:
    """List the voice library named by `voices:` in the config (or --file)."""
    from pipeline.voices import filter_voices, load_library

    if backend == "local":
        records = offline_voices()
    else:
        path = library_file or library_of(state.config)
        if path is None:
            click.echo(NO_LIBRARY.format(config=state.config))
            return
        records = load_library(path)
    found = filter_voices(records, language, gender, emotion)
    if as_json:
        click.echo(json.dumps([v.as_json() for v in found], indent=2, ensure_ascii=False))
        return
    click.echo(f"{'id':>6}  {'name':<18} {'gender':<7} {'age':>3}  {'lang':<6} emotions")
    for v in found:
        click.echo(f"{v.id:>6}  {v.display_name[:18]:<18} {v.gender_name:<7} "
                   f"{'' if v.age is None else v.age:>3}  {v.language:<6} {', '.join(v.emotions)}")


NO_LIBRARY = """\
{config} names no voice library (`voices:`), so there is nothing to list yet.
- Offline voices: `audiobook voices --backend local`.
- Audio Cleaner voices: in the Audio Cleaner Playground, download the voice list
  (a JSON file), save it beside {config} as voices.json, and add the line
  `voices: voices.json` to {config} (or pass --file voices.json)."""


def library_of(config: Path) -> Path | None:
    """The config's voice library, or None when it names none (a fresh `init` project)."""
    from pipeline.config import voice_library_path
    from pipeline.errors import ConfigError

    try:
        return voice_library_path(config)
    except ConfigError as exc:
        if any(p.key == "voices" for p in exc.problems):
            return None
        raise


def offline_voices() -> list:
    try:
        from pipeline.tts.local import (  # type: ignore[attr-defined,unused-ignore]
            offline_voices as listed,  # the engine branch adds it
        )
    except ImportError:
        raise InputError(Problem("--backend local", None, None,
                                 "this version cannot list the offline voices yet; any voice id "
                                 "works offline (eSpeak NG picks a variant from it)")) from None
    from pipeline.voices import VoiceInfo, voices_from_records

    found = list(listed())
    if all(isinstance(v, VoiceInfo) for v in found):
        return found
    return voices_from_records(found, "the offline voices")


@cli.command()
@click.argument("text")
@click.option("-o", "--output", "out", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The file to write: .mp3, .wav or .m4a.")
@click.option("--voice", default=None, help="A voice id, or a cast or library name.")
@click.option("--emotion", default=None, help="An emotion name or number (default: the narrator's).")
@click.option("--speed", default=None, help="0.5 to 2 (default: the narrator's).")
@click.option("--language", default=None, help="A language key such as en or de.")
@backend_option
@common_options
@pass_state
def say(state: State, text: str, out: Path, voice: str | None, emotion: str | None,
        speed: str | None, language: str | None, backend: str | None) -> None:
    """Speak TEXT into a file, through the same stages and cache as a build."""
    from pipeline.say import say as run_say

    cfg = _config(state) if state.config_given or state.config.exists() else None
    settings = {k: v for k, v in {"voice": voice, "emotion": emotion, "speed": speed,
                                  "language": language}.items() if v is not None}
    result = run_say(cfg, text, out, settings, backend)
    click.echo(f"wrote {out} ({result['credits_spent']} credit(s) spent)")


@cli.command()
@click.option("--since", "since", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="An older manifest.json: sentences re-made since it are marked `changed`.")
@click.option("-o", "--output", "out", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Where to write index.html (default: <output.dir>/review).")
@common_options
@pass_state
def review(state: State, since: Path | None, out: Path | None) -> None:
    """Write a static proof-listening page of the last build (opens from file://)."""
    from pipeline.review import write_review

    cfg = _config(state)
    page = write_review(cfg.output.dir / "manifest.json", out or cfg.output.dir / "review", since)
    click.echo(f"wrote {page}")


@cli.group()
def cache() -> None:
    """Inspect or trim the segment cache."""


@cache.command("stats")
@json_option
@common_options
@pass_state
def cache_stats(state: State, as_json: bool) -> None:
    """Size and count of the cache, and remote tasks not yet downloaded."""
    from pipeline.cache import open_cache

    with open_cache(_config(state)) as store:
        stats = store.stats()
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return
    pending = stats.pop("pending")
    for key, value in stats.items():
        click.echo(f"{key:>16}: {value}")
    for task in pending:
        age = "" if task["age_s"] is None else f", created {task['age_s']:.0f} s ago"
        click.echo(f"  pending {task['key'][:12]}: job {task['job_id']} at {task['base_url']} "
                   f"({task['credits']} credit(s){age}); the next build downloads it")


@cache.command("prune")
@click.option("--include-paid", is_flag=True,
              help="Also drop unused audio that was paid for (it says what it cost).")
@click.option("--remote", "remote", is_flag=True,
              help="Also drop unused entries from the remote tier (cache.remote or "
                   "AUDIOBOOK_REMOTE_CACHE). 'Unused' means no config recorded in THIS "
                   "machine's cache uses it: run it where the fleet's configs were built "
                   "(e.g. the fleet's final job). Entries younger than a lease's ttl are kept.")
@click.option("--yes", is_flag=True, help="Do not ask before dropping paid audio.")
@common_options
@pass_state
def cache_prune(state: State, include_paid: bool, remote: bool, yes: bool) -> None:
    """Drop segments that no recorded config uses; paid ones only with --include-paid.

    Without --remote the remote tier is never touched.
    """
    from pipeline.cache import open_cache
    from pipeline.prune import used_keys

    cfg = _config(state)
    with open_cache(cfg) as store:
        fleet = _remote_of(store) if remote else None
        keep, notes = used_keys(store, cfg)
        for note in notes:
            click.echo(f"note: {note}", err=True)
        unused = store.local_keys() - keep
        paid = {k: c for k in unused if (c := store.entry_credits(k))}
        if include_paid and paid and not yes:
            click.confirm(f"drop {len(paid)} paid segment(s) that no recorded config uses "
                          f"({sum(paid.values())} credit(s) of audio)?", abort=True)
        with store.exclusive():
            # A build may have recorded a config since: decide again under the lock.
            keep, _ = used_keys(store, cfg)
            report = store.prune(keep, include_paid, only=unused)
        click.echo(f"dropped {report.dropped} segment(s) ({report.dropped_credits} credit(s) of "
                   f"audio); kept {len(keep & store.local_keys())} in use")
        if report.kept_paid:
            click.echo(f"kept {report.kept_paid} unused paid segment(s) "
                       f"({report.kept_paid_credits} credit(s)); `audiobook cache prune "
                       "--include-paid` drops them")
        if fleet is not None:
            _prune_fleet(fleet, keep, include_paid, yes)


def _remote_of(store: SegmentCache) -> RemoteCache:
    from pipeline.errors import RemoteCacheError

    if store.remote is None:
        raise RemoteCacheError("--remote: no remote cache is set; set cache.remote in "
                               "audiobook.yml or AUDIOBOOK_REMOTE_CACHE to s3://BUCKET/PREFIX")
    return store.remote


def _prune_fleet(fleet: RemoteCache, keep: set[str], include_paid: bool, yes: bool) -> None:
    from pipeline.prune import plan_remote_prune, prune_remote

    report, doomed = plan_remote_prune(fleet, keep, include_paid)
    if include_paid and report.dropped_credits and not yes:
        click.confirm(f"drop {len(doomed)} segment(s) from {fleet.where} that no config recorded "
                      f"here uses ({report.dropped_credits} credit(s) of paid audio)?", abort=True)
    report = prune_remote(fleet, report, doomed)
    click.echo(f"remote {fleet.where}: dropped {report.dropped} segment(s) "
               f"({report.dropped_credits} credit(s) of audio); kept {report.in_use} in "
               f"use, {report.kept_fresh} too recent to judge (a build may be using them)")
    if report.kept_paid:
        click.echo(f"remote {fleet.where}: kept {report.kept_paid} unused paid segment(s) "
                   f"({report.kept_paid_credits} credit(s) or more); add --include-paid to "
                   "drop them")


@cache.command("clear")
@click.option("--remote", "remote", is_flag=True,
              help="Also delete every entry and lease in the remote tier (cache.remote or "
                   "AUDIOBOOK_REMOTE_CACHE), for the whole fleet; run it while no build runs.")
@click.option("--yes", is_flag=True, help="Do not ask.")
@common_options
@pass_state
def cache_clear(state: State, remote: bool, yes: bool) -> None:
    """Drop every cached segment (the remote tier only with --remote)."""
    from pipeline.cache import open_cache
    from pipeline.prune import clear_remote, remote_objects

    with open_cache(_config(state)) as store:
        fleet = _remote_of(store) if remote else None
        entries, leases = remote_objects(fleet) if fleet is not None else ([], [])
        if not yes:
            local = store.local_keys()
            paid = sum(store.entry_credits(k) or 0 for k in local)
            click.confirm(f"drop all {len(local)} cached segment(s) in {store.directory} "
                          f"({paid} credit(s) of paid audio)?", abort=True)
            if fleet is not None:
                click.confirm(f"delete all {len(entries) + len(leases)} object(s) under "
                              f"{fleet.where} ({len(entries)} segment(s), {len(leases)} "
                              "lease(s)), for every machine that shares it?", abort=True)
        count = store.clear()
        click.echo(f"dropped {count} segment(s)")
        if fleet is not None:
            gone = clear_remote(fleet, entries + leases)
            click.echo(f"deleted {gone} object(s) under {fleet.where}")


@cache.command("verify")
@click.option("--repair", is_flag=True, help="Drop what is damaged so builds make it again.")
@json_option
@common_options
@pass_state
def cache_verify(state: State, repair: bool, as_json: bool) -> None:
    """Check every entry against its checksum; exit 1 if any is damaged."""
    from pipeline.cache import as_json as damage_json
    from pipeline.cache import open_cache, sum_credits

    with open_cache(_config(state), local_only=True) as store:
        bad = store.verify(repair)
        count = len(store.keys())
    if as_json:
        click.echo(json.dumps({"entries": count, "damaged": damage_json(bad),
                               "credits_damaged": sum_credits(bad), "repaired": repair},
                              indent=2))
    else:
        for damage in bad:
            click.echo(f"{'dropped' if repair else 'damaged'} {damage.key[:12]}: {damage.reason} "
                       f"({damage.cost()}) {damage.path}")
        verdict = "all good" if not bad else (
            f"{len(bad)} damaged ({sum_credits(bad)} credit(s) of paid audio)"
            + ("; dropped, the next build makes them again" if repair
               else "; `audiobook cache verify --repair` drops them so builds make them again"))
        click.echo(f"{count} entr{'y' if count == 1 else 'ies'} checked: {verdict}")
    if bad and not repair:
        sys.exit(1)


@cache.command("push")
@common_options
@pass_state
def cache_push(state: State) -> None:
    """Upload local entries to the remote cache (cache.remote or AUDIOBOOK_REMOTE_CACHE)."""
    from pipeline.cache import open_cache

    with open_cache(_config(state)) as store:
        sent, size = store.push()
        where = store.remote.where if store.remote else ""
    click.echo(f"pushed {sent} segment(s) ({size} bytes) to {where}")


@cli.command(context_settings={"ignore_unknown_options": False})
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True, help="0 picks a free port.")
@click.option("--api-key", "api_keys", multiple=True, help="Accepted key (repeatable); default: any.")
@click.option("--disabled-key", "disabled_keys", multiple=True, help="Key answered 101005 (repeatable).")
@click.option("--not-enabled-key", "unenabled_keys", multiple=True,
              help="Key answered 101006 (repeatable).")
@click.option("--credits", type=int, default=1_000_000, show_default=True)
@click.option("--latency", type=float, default=1.0, show_default=True, help="Seconds a task waits.")
@click.option("--rate-limit", type=float, default=None, help="Requests per second per key.")
@click.option("--concurrency", type=int, default=None, help="Tasks waiting at once per key.")
@click.option("--fail-rate", type=click.FloatRange(0, 1), default=0.0)
@click.option("--fault-rate", type=click.FloatRange(0, 1), default=0.0)
@click.option("--lost-response-rate", type=click.FloatRange(0, 1), default=0.0)
@click.option("--seed", type=int, default=None)
@click.option("--audio", "audio_kind", type=click.Choice(["speech", "tone"]), default="speech")
@click.option("--task-ttl", type=click.FloatRange(min=0), default=3600.0, show_default=True,
              help="Seconds a finished task and its output are kept, then forgotten.")
@common_options
def emulator(**options) -> None:
    """Run the local Audio Cleaner API emulator."""
    from pipeline.tts.emulator import serve

    serve(**options)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line in this process; return the exit code (pre-commit's main(argv))."""
    state = State(argv=list(argv) if argv is not None else sys.argv[1:])
    try:
        cli.main(args=state.argv, prog_name="audiobook",
                 standalone_mode=False, obj=state)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except BrokenPipeError:  # `audiobook plan | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except click.exceptions.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            return exit_code_for(exc, state)
        click.echo("aborted", err=True)
        return EXIT_RUNTIME
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_RUNTIME
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the one place errors surface
        return exit_code_for(exc, state)
    return EXIT_OK
