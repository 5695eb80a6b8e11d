"""How soon each bounded wait ends: the figures tests used to assert as wall-clock limits.

    python benchmarks/bench_bounds.py [NAME ...] [--repeat 3]

NAME is any of the cases below (default: all). Tests assert what happens
(counts, events, exit codes) and keep only generous timeouts as hang guards,
so that a loaded machine cannot fail them; the times live here. Each line
prints the case, the median wall time of --repeat runs, and the limit the
test once asserted. The machine's load average is printed first: on a
shared machine the times are upper bounds.

- polls: 500 concurrent polls of 49 waiting tasks, one emulator (was < 5 s)
- deadline: a create answer that never comes, deadline 0.1 s, one retry (was < 1.5 s)
- ctrl-c: Ctrl-C during an offline build, to the exit (was < 3 s)
- lexicon: compiling 5,000 and 20,000 entries (was < 10 s and < 40 s)
- alias-bomb: an audiobook.yml alias bomb refused (was < 10 s)
- epub: an XHTML 1.1 doctype read without its DTD (was < 5 s); hostile EPUBs refused (< 10 s)
- hostile: `audiobook build` against each hostile service of tests/test_hostile.py (< 60 s)
- fleet: `audiobook build` with an unreachable S3 tier (was < 60 s)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def median_of(repeat: int, run: Callable[[], float]) -> float:
    return statistics.median(run() for _ in range(repeat))


def show(name: str, seconds: float, was: str) -> None:
    print(f"{name:<52} {seconds:7.2f} s   (the test once asserted {was})", flush=True)


# ---------------------------------------------------------------- the emulator and the client


def polls(repeat: int) -> None:
    import aiohttp

    from pipeline.tts.emulator import GET_PATH
    from tests.emulator_helpers import create, emulator

    def once() -> float:
        with emulator(latency=30.0, audio_kind="tone") as emu:
            jobs = [create(emu.url, key=f"key-{i % 7}")["data"]["job_id"] for i in range(49)]

            async def poll_all() -> list[int]:
                connector = aiohttp.TCPConnector(limit=500)
                async with aiohttp.ClientSession(connector=connector) as session:
                    async def one(i: int) -> int:
                        async with session.post(emu.url + GET_PATH,
                                                json={"global_id": jobs[i % 49]},
                                                headers={"api-key": f"key-{i % 49 % 7}"}) as r:
                            return (await r.json())["code"]
                    return await asyncio.gather(*(one(i) for i in range(500)))

            started = time.monotonic()
            codes = asyncio.run(poll_all())
            took = time.monotonic() - started
        assert codes == [100000] * 500
        return took

    show("polls: 500 concurrent polls answered", median_of(repeat, once), "< 5 s")


def deadline(repeat: int) -> None:
    import httpx

    from pipeline.book import Voice
    from pipeline.errors import AudiobookError
    from pipeline.tts.audiocleaner import AudioCleanerBackend, RetryPolicy
    from pipeline.tts.base import SynthesisRequest
    from pipeline.tts.http import Bounds

    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(120)
        raise AssertionError("the deadline did not cut the request")

    def once() -> float:
        client = AudioCleanerBackend("bench-key", "https://api.test",
                                     transport=httpx.MockTransport(never),
                                     bounds=Bounds(deadline=0.1),
                                     retry=RetryPolicy(max_retries=1, base=0.01))
        request = SynthesisRequest("k1", "Segment one, of forty characters or so.", Voice(2072),
                                   "chapter 1 'One' (one.md, line 1)")
        started = time.monotonic()
        try:
            client.synthesize_all([request], 1, lambda r, a: None)
        except AudiobookError:
            pass
        return time.monotonic() - started

    logging.getLogger("pipeline").setLevel(logging.ERROR)  # its "may pay twice" warnings
    show("deadline: two tries of 0.1 s given up", median_of(repeat, once), "< 1.5 s")


# ---------------------------------------------------------------- the offline voice


def ctrl_c(repeat: int) -> None:
    from pipeline.cache import open_cache
    from pipeline.config import load_config
    from tests.test_local import _book

    def once() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            os.environ["AUDIOBOOK_CACHE_DIR"] = str(folder / "cache")
            cfg = load_config(_book(folder, 60))
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline", "build", "--jobs", "1"], cwd=folder,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
            while True:
                with open_cache(cfg) as cache:
                    if len(cache.keys()) >= 3:
                        break
                time.sleep(0.01)
            os.killpg(proc.pid, signal.SIGINT)
            sent = time.monotonic()
            proc.wait(120)
            assert proc.returncode == 130, proc.returncode
            return time.monotonic() - sent

    saved = os.environ.get("AUDIOBOOK_CACHE_DIR")
    try:
        show("ctrl-c: SIGINT to exit 130, offline build", median_of(repeat, once), "< 3 s")
    finally:
        if saved is None:
            os.environ.pop("AUDIOBOOK_CACHE_DIR", None)
        else:
            os.environ["AUDIOBOOK_CACHE_DIR"] = saved


# ---------------------------------------------------------------- hostile inputs


def lexicon(repeat: int) -> None:
    from pipeline.lexicon import compile_lexicon

    for n in (5000, 20000):
        entries = {f"w{i}": f"word{i} number" for i in range(n)}

        def once(entries=entries) -> float:
            started = time.perf_counter()
            compile_lexicon(entries)
            return time.perf_counter() - started

        show(f"lexicon: {n:,} entries compiled", median_of(repeat, once), f"< {n / 500:g} s")


def alias_bomb(repeat: int) -> None:
    from pipeline.config import load_config
    from pipeline.errors import ConfigError

    levels = ['&s0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"&s{i} [" + ",".join([f"*s{i - 1}"] * 9) + "]" for i in range(1, 9)]
    text = "chapters:\n  - source: chapters/01.md\n    select: [" + ", ".join(levels) + "]\n"

    def once() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "chapters").mkdir()
            (Path(tmp) / "chapters/01.md").write_text("# One\n\nSome text.\n")
            (Path(tmp) / "audiobook.yml").write_text(text)
            started = time.perf_counter()
            try:
                load_config(Path(tmp) / "audiobook.yml")
            except ConfigError:
                return time.perf_counter() - started
        raise AssertionError("the alias bomb was accepted")

    show("alias-bomb: refused", median_of(repeat, once), "< 10 s")


def epub(repeat: int) -> None:
    from pipeline.errors import InputError
    from tests import epub_factory as f
    from tests.test_epub import load

    doctype = ('<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" '
               '"http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">\n')
    cases: dict[str, Callable[[Path], Path]] = {
        "XHTML 1.1 doctype read": lambda d: f.write_epub(d / "b.epub", [f.Doc(
            "c.xhtml", "<p>Caf&eacute; au lait</p>", toc="One", doctype=doctype)]),
        "entity bomb refused": lambda d: f.entity_bomb(d / "bomb.epub"),
        "zip bomb (declared size) refused": lambda d: f.zip_bomb(d / "z.epub", 65 << 20),
        "zip bomb (lying headers) refused": lambda d: f.zip_bomb(d / "l.epub", 65 << 20, lie=True),
    }
    for name, make in cases.items():
        def once(make=make) -> float:
            with tempfile.TemporaryDirectory() as tmp:
                path = make(Path(tmp))
                started = time.perf_counter()
                try:
                    load(path)
                except InputError:
                    pass
                return time.perf_counter() - started

        show(f"epub: {name}", median_of(repeat, once), "< 5 s" if "doctype" in name else "< 10 s")


def hostile(repeat: int) -> None:
    from tests.test_hostile import SHORT, Hostile, write_book

    cases = [("huge", SHORT), ("slow-create", SHORT), ("slow-download", SHORT), ("bomb", {}),
             ("file", {}), ("ftp", {}), ("redirect-file", {})]
    for mode, env in cases:
        peaks: list[int] = []

        def once(mode=mode, env=env, peaks=peaks) -> float:
            with tempfile.TemporaryDirectory() as tmp, Hostile(mode) as service:
                write_book(Path(tmp))
                full = {**os.environ, "AUDIOCLEANER_BASE_URL": service.url,
                        "AUDIOCLEANER_API_KEY": "hostile-key-83b1e0",
                        "AUDIOBOOK_CACHE_DIR": str(Path(tmp) / "cache"), **env}
                started = time.monotonic()
                proc = subprocess.Popen([sys.executable, "-m", "pipeline", "build"], cwd=tmp,
                                        env=full, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
                _, status, usage = os.wait4(proc.pid, 0)
                took = time.monotonic() - started
            assert os.waitstatus_to_exitcode(status) == 1, mode
            peaks.append(usage.ru_maxrss)
            return took

        took = median_of(repeat, once)
        show(f"hostile: '{mode}' ends, exit 1, {max(peaks) >> 10} MB peak", took, "< 60 s")


def fleet(repeat: int) -> None:
    from tests.moto_helpers import free_port

    def once() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "one.md").write_text("# One\n\nThe lamp was lit at dusk.\n")
            (folder / "audiobook.yml").write_text(
                "title: Fleet\noutput: {formats: [mp3], loudness: none}\nchapters: [one.md]\n")
            env = {**os.environ, "AUDIOBOOK_REMOTE_CACHE": "s3://nowhere/prefix",
                   "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
                   "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                   "AWS_DEFAULT_REGION": "us-east-1", "AUDIOBOOK_CACHE_DIR": str(folder / "c")}
            started = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "pipeline", "build"], cwd=folder,
                                  env=env, capture_output=True, text=True, timeout=600)
            took = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        return took

    show("fleet: build with an unreachable S3 tier", median_of(repeat, once), "< 60 s")


CASES: dict[str, Callable[[int], None]] = {
    "polls": polls, "deadline": deadline, "ctrl-c": ctrl_c, "lexicon": lexicon,
    "alias-bomb": alias_bomb, "epub": epub, "hostile": hostile, "fleet": fleet,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(CASES))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in CASES]
    if unknown:
        parser.error(f"unknown case {', '.join(unknown)}; choose from {', '.join(CASES)}")
    print(f"load average {open('/proc/loadavg').read().split()[0]}"
          if Path("/proc/loadavg").exists() else "load average unknown", flush=True)
    for name in args.names or CASES:
        CASES[name](args.repeat)


if __name__ == "__main__":
    main()
