"""The command line: parse, call the library, print. Nothing else lives here."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import traceback
from pathlib import Path

import click

from pipeline import __version__
from pipeline.errors import EXIT_INPUT, AudiobookError

log = logging.getLogger("pipeline")


class _State:
    verbose = False
    quiet = False


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("pipeline")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # httpx logs every request line at INFO; requests carry nothing secret in
    # their URLs, but keep the output ours.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def _fail(exc: BaseException) -> None:
    if isinstance(exc, BrokenPipeError):  # `audiobook plan | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    if isinstance(exc, AudiobookError):
        for line in exc.lines():
            click.echo(f"error: {line}" if not line.startswith(("warning:",)) else line, err=True)
        code = exc.exit_code
    elif isinstance(exc, KeyboardInterrupt):
        click.echo("interrupted: audio already made is kept in the cache; build again to resume",
                   err=True)
        code = 130
    else:
        click.echo(f"error: internal error: {type(exc).__name__}: {exc} (run with -v for details)",
                   err=True)
        code = 1
    if _State.verbose:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    sys.exit(code)


def _set_verbose(ctx: click.Context, _param, value: bool) -> None:
    if value:
        _State.verbose = True
        _setup_logging(_State.verbose, _State.quiet)


def _set_quiet(ctx: click.Context, _param, value: bool) -> None:
    if value:
        _State.quiet = True
        _setup_logging(_State.verbose, _State.quiet)


def _set_config(ctx: click.Context, _param, value: Path | None) -> None:
    if value is not None:
        ctx.ensure_object(dict)["config"] = value


def handled(func):
    """Run a command, turning our errors into plain lines and exit codes.

    Also accepts -c/-v/-q after the command name (`audiobook build -q`), as
    well as before it.
    """
    func = click.option("-c", "--config", type=click.Path(path_type=Path), expose_value=False,
                        callback=_set_config, is_eager=True,
                        help="The config file (default ./audiobook.yml).")(func)
    func = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_set_quiet,
                        help="Only warnings and errors.")(func)
    func = click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_set_verbose,
                        help="More detail, and tracebacks on errors.")(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the one place errors surface
            _fail(exc)

    return wrapper


class Progress:
    """A progress bar on a terminal, plain log lines otherwise; never both."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stderr.isatty() and not os.environ.get("CI")
        self.bar = None
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
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path),
              default=None, help="The config file (default ./audiobook.yml).")
@click.option("-v", "--verbose", is_flag=True, help="More detail, and tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, verbose: bool, quiet: bool) -> None:
    """Build audiobooks from Markdown or EPUB, as declared in audiobook.yml."""
    _State.verbose, _State.quiet = verbose, quiet
    _setup_logging(verbose, quiet)
    ctx.obj = {"config": config_path or Path("audiobook.yml")}


def _config(ctx: click.Context):
    from pipeline.config import load_config

    return load_config(ctx.obj["config"])


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@handled
def init(directory: Path) -> None:
    """Write a starter audiobook.yml and one chapter into DIRECTORY."""
    from pipeline.starter import write_starter

    for path in write_starter(directory):
        click.echo(f"wrote {path}")
    click.echo("next: `audiobook build` (offline voice), then edit the chapter and build again")


@cli.command()
@click.option("--audio", "audio_report", is_flag=True, help="Also measure the built files.")
@click.pass_context
@handled
def check(ctx: click.Context, audio_report: bool) -> None:
    """Validate config, sources and voices; list every problem."""
    from pipeline.check import check_project

    cfg = _config(ctx)
    problems = check_project(cfg)
    for p in problems:
        click.echo(str(p) if p.warning else f"error: {p}", err=True)
    errors = [p for p in problems if not p.warning]
    if errors:
        sys.exit(EXIT_INPUT)
    if audio_report:
        from pipeline.package import audio_report as report

        table, ok = report(cfg)
        click.echo(table)
        if not ok:
            sys.exit(1)
        return
    click.echo(f"{cfg.display}: ok ({len(cfg.chapters)} chapter entries)")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--backend", type=click.Choice(["local", "audiocleaner"]), default=None)
@click.pass_context
@handled
def plan(ctx: click.Context, as_json: bool, backend: str | None) -> None:
    """What a build would do and cost; spends nothing."""
    from pipeline.cache import open_cache
    from pipeline.plan import lower_bound, make_plan

    cfg = _config(ctx)
    with open_cache(cfg) as cache:
        the_plan = make_plan(cfg, cache, backend)
    if as_json:
        click.echo(json.dumps(the_plan.as_json(), indent=2, ensure_ascii=False))
        return
    click.echo(f"{cfg.title} ({the_plan.backend})")
    click.echo(f"{'#':>3}  {'chapter':<32} {'chars':>8} {'segs':>5} {'credits':>8} {'cached':>7} {'to spend':>9}")
    for cp in the_plan.chapters:
        cached = sum(1 for s in cp.segments if s.key in cp.cached)
        click.echo(f"{cp.index:>3}  {cp.title[:32]:<32} {cp.characters:>8} {len(cp.segments):>5} "
                   f"{cp.credits:>8} {cached:>7} {cp.credits_to_spend:>9}")
    t = the_plan.totals()
    click.echo(f"{'':>3}  {'total':<32} {t['characters']:>8} {t['segments']:>5} {t['credits']:>8} "
               f"{t['cached_segments']:>7} {t['credits_to_spend']:>9}")
    click.echo(f"lower bound (one request per chapter): {lower_bound(the_plan)} credits")


@cli.command()
@click.argument("chapters", nargs=-1)
@click.option("--backend", type=click.Choice(["local", "audiocleaner"]), default=None,
              help="Override the config's backend.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Segments synthesized at once.")
@click.option("--max-credits", type=click.IntRange(0), default=None,
              help="Fail (exit 3) before spending if the build needs more.")
@click.option("--offline", is_flag=True, help="Use only cached audio; exit 4 if any is missing.")
@click.option("--force", is_flag=True, help="Re-encode chapters even if unchanged.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_context
@handled
def build(ctx: click.Context, chapters: tuple[str, ...], backend: str | None, jobs: int,
          max_credits: int | None, offline: bool, force: bool, as_json: bool) -> None:
    """Build CHAPTERs (1, 3-5, a title or slug; none means all)."""
    from pipeline.build import build as run_build

    cfg = _config(ctx)
    result = run_build(cfg, chapters, backend=backend, jobs=jobs, max_credits=max_credits,
                       offline=offline, force=force, progress=Progress(_State.quiet or as_json))
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
        return
    log.info("%d segment(s) synthesized, %d cached; %d credit(s) spent; "
             "%d chapter(s) written, %d unchanged",
             result.segments_synthesized, result.segments_cached, result.credits_spent,
             result.chapters_written, result.chapters_unchanged)
    if not _State.quiet:
        click.echo(f"outputs in {cfg.output.dir}")


@cli.command()
@click.option("--language", default=None, help="Only voices of this language key.")
@click.option("--gender", default=None, help="male, female, or the enum number.")
@click.option("--emotion", default=None, help="Only voices that list this emotion.")
@click.option("--file", "library_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="A voice library JSON (default: `voices:` of the config).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handled
def voices(ctx: click.Context, language: str | None, gender: str | None, emotion: str | None,
           library_file: Path | None, as_json: bool) -> None:
    """List the voice library named by `voices:` in the config (or --file)."""
    from pipeline.config import voice_library_path
    from pipeline.voices import filter_voices, load_library

    path = library_file or voice_library_path(ctx.obj["config"])
    found = filter_voices(load_library(path), language, gender, emotion)
    if as_json:
        click.echo(json.dumps([v.as_json() for v in found], indent=2, ensure_ascii=False))
        return
    click.echo(f"{'id':>6}  {'name':<18} {'gender':<7} {'age':>3}  {'lang':<6} emotions")
    for v in found:
        click.echo(f"{v.id:>6}  {v.display_name[:18]:<18} {v.gender_name:<7} "
                   f"{'' if v.age is None else v.age:>3}  {v.language:<6} {', '.join(v.emotions)}")


@cli.command()
@click.argument("text")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--voice", default=None)
@click.option("--emotion", default=None)
@click.option("--speed", default=None)
@click.option("--language", default=None)
@click.option("--backend", type=click.Choice(["local", "audiocleaner"]), default=None)
@click.pass_context
@handled
def say(ctx: click.Context, text: str, out: Path, voice, emotion, speed, language, backend) -> None:
    """Speak TEXT into FILE (.mp3, .wav or .m4a), through the same cache."""
    from pipeline.say import say as run_say

    config_path = ctx.obj["config"]
    cfg = _config(ctx) if config_path.exists() else None
    settings = {k: v for k, v in {"voice": voice, "emotion": emotion, "speed": speed,
                                  "language": language}.items() if v is not None}
    result = run_say(cfg, text, out, settings, backend)
    click.echo(f"wrote {out} ({result['credits_spent']} credit(s) spent)")


@cli.command()
@click.option("--since", "since", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="An older manifest.json: sentences re-made since it are marked `changed`.")
@click.option("-o", "--output", "out", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Where to write index.html (default: <output.dir>/review).")
@click.pass_context
@handled
def review(ctx: click.Context, since: Path | None, out: Path | None) -> None:
    """Write a static proof-listening page of the last build (opens from file://)."""
    from pipeline.review import write_review

    cfg = _config(ctx)
    page = write_review(cfg.output.dir / "manifest.json", out or cfg.output.dir / "review", since)
    click.echo(f"wrote {page}")


@cli.group()
def cache() -> None:
    """Inspect or trim the segment cache."""


@cache.command("stats")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handled
def cache_stats(ctx: click.Context, as_json: bool) -> None:
    """Size and count of the cache."""
    from pipeline.cache import open_cache

    with open_cache(_config(ctx.parent)) as store:
        stats = store.stats()
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return
    for key, value in stats.items():
        click.echo(f"{key:>14}: {value}")


@cache.command("prune")
@click.option("--yes", is_flag=True, help="Do not ask before dropping paid audio.")
@click.pass_context
@handled
def cache_prune(ctx: click.Context, yes: bool) -> None:
    """Drop segments the current config no longer uses."""
    from pipeline.cache import open_cache
    from pipeline.plan import make_plan

    cfg = _config(ctx.parent)
    with open_cache(cfg) as store:
        keep = {s.key for cp in make_plan(cfg, store).chapters for s in cp.segments}
        unused = [store.get(k) for k in store.keys() - keep]
        paid = sum(entry.credits for entry in unused if entry)
        if paid and not yes:
            click.confirm(f"drop {len(unused)} unused segment(s), {paid} credit(s) of paid audio?",
                          abort=True)
        count, credits = store.prune(keep)
    click.echo(f"dropped {count} segment(s) ({credits} credit(s) of audio); kept {len(keep)}")


@cache.command("clear")
@click.option("--yes", is_flag=True, help="Do not ask.")
@click.pass_context
@handled
def cache_clear(ctx: click.Context, yes: bool) -> None:
    """Drop every cached segment."""
    from pipeline.cache import open_cache

    with open_cache(_config(ctx.parent)) as store:
        if not yes:
            click.confirm(f"drop all {len(store.keys())} cached segment(s) in {store.directory}?",
                          abort=True)
        count = store.clear()
    click.echo(f"dropped {count} segment(s)")


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
@handled
def emulator(**options) -> None:
    """Run the local Audio Cleaner API emulator."""
    from pipeline.tts.emulator import serve

    serve(**options)


def main() -> None:
    cli(prog_name="audiobook")
