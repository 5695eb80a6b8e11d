"""The fleet tier: a segment fetched from the remote cache against a local hit.

    python benchmarks/bench_remote_cache.py [--entries 200] [--chars 1000]

Starts a moto_server (the S3 REST API) on loopback and the Audio Cleaner
emulator in this process. One segment of --chars characters is synthesized
through the emulator to learn a realistic entry size; N entries of that size
are then put in the bucket (the same bytes a build uploads: header line and
audio). Prints, per segment:
- a local hit: SegmentCache.get() with the entry in the local folder;
- a remote read-through: SegmentCache.get() on a fresh, empty local folder,
  which fetches the entry from S3, checks it and writes it locally;
and the time of the listing a build makes once (RemoteCache.keys()).

Loopback moto is not S3: a real bucket adds network latency (typically
10-50 ms first byte within a region, more across regions) and bandwidth to
every remote fetch. What this measures is our overhead around it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from pipeline.cache import CachedAudio, SegmentCache, entry_bytes  # noqa: E402
from pipeline.remote_cache import Location, RemoteCache  # noqa: E402
from pipeline.tts.base import detect_format  # noqa: E402
from pipeline.tts.emulator import CREATE_PATH, GET_PATH, EmulatorConfig, EmulatorThread  # noqa: E402

TEXT = ("The lamp at Gannet Point was lit at dusk, as it had been for ninety years. Rain came in "
        "from the west and the keeper wrote the pressure in his log. ")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    moto = Path(sys.executable).parent / "moto_server"
    port = _free_port()
    proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(url, timeout=1)
            return proc, url
        except httpx.HTTPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise SystemExit("moto_server did not start") from None
            time.sleep(0.1)


def emulator_segment_bytes(chars: int) -> tuple[int, str]:
    """The size and format of one emulator output for a text of `chars` characters."""
    text = (TEXT * (chars // len(TEXT) + 1))[:chars]
    with EmulatorThread(EmulatorConfig(latency=0.05)) as emu, httpx.Client(timeout=60) as http:
        headers = {"api-key": "bench"}
        body = {"voice_id": 2072, "emotion": 0, "speed": 1, "language": "en", "text": text}
        job = http.post(emu.url + CREATE_PATH, json=body, headers=headers).json()["data"]["job_id"]
        while True:
            data = http.post(emu.url + GET_PATH, json={"global_id": job}, headers=headers).json()
            if data["data"]["status"] == "success":
                break
            time.sleep(0.05)
        audio = http.get(data["data"]["output"]).content
    return len(audio), detect_format(audio) or "unknown"


def summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return f"median {statistics.median(ms):7.2f} ms   p95 {p95:7.2f} ms   (n={len(ms)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--chars", type=int, default=1000)
    args = parser.parse_args()

    size, fmt = emulator_segment_bytes(args.chars)
    print(f"one emulator segment of {args.chars} characters: {size} bytes of {fmt}")
    moto, url = start_moto()
    try:
        os.environ.update({"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "bench",
                           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
        bucket = f"bench-{uuid.uuid4().hex[:10]}"
        where = Location(bucket, "fleet/")
        remote = RemoteCache(where)
        remote.client.create_bucket(Bucket=bucket)
        root = Path(tempfile.mkdtemp(prefix="bench-remote-cache-"))
        local = SegmentCache(root / "local")
        keys = [secrets.token_hex(32) for _ in range(args.entries)]
        for key in keys:
            audio = CachedAudio(secrets.token_bytes(size), fmt, 10, "audiocleaner:bench")
            local.put(key, audio)
            raw = entry_bytes(key, audio)
            assert remote.put(key, raw)

        hits = []
        for key in keys:
            started = time.perf_counter()
            assert local.get(key) is not None
            hits.append(time.perf_counter() - started)

        fetches = []
        for n, key in enumerate(keys):
            fresh = SegmentCache(root / f"fresh-{n}", remote=remote)  # empty local tier
            started = time.perf_counter()
            assert fresh.get(key) is not None
            fetches.append(time.perf_counter() - started)

        listings = []
        for _ in range(10):
            started = time.perf_counter()
            assert len(RemoteCache(where, client=remote.client).keys()) == args.entries
            listings.append(time.perf_counter() - started)
    finally:
        moto.terminate()
        moto.wait(10)

    print(f"{args.entries} entries of {len(raw)} bytes, moto_server on loopback "
          "(not S3's latency)")
    print(f"local hit              {summary(hits)}")
    print(f"remote read-through    {summary(fetches)}")
    print(f"keys() listing of {args.entries}  {summary(listings)}")
    print(f"remote / local (medians): {statistics.median(fetches) / statistics.median(hits):.1f}x")


if __name__ == "__main__":
    main()
