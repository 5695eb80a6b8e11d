"""A real moto_server (the S3 REST API) on a free loopback port, for the fleet tests.

The code under test finds it through the standard AWS chain (AWS_ENDPOINT_URL),
as it would find the real service. No client object is mocked.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

MOTO = Path(sys.executable).parent / "moto_server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def moto_server() -> Iterator[tuple[subprocess.Popen, str]]:
    """(the moto_server process, its URL); stopped on exit if still running."""
    port = free_port()
    proc = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a loaded machine starts it slowly
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def aws_env(url: str) -> dict[str, str]:
    """The AWS chain pointed at a moto_server (its credentials are any)."""
    return {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


def new_bucket(url: str) -> str:
    """A fresh bucket on the server at url; its name."""
    import boto3

    bucket = f"audiobook-{uuid.uuid4().hex[:12]}"
    env = aws_env(url)
    client = boto3.client("s3", endpoint_url=url, region_name=env["AWS_DEFAULT_REGION"],
                          aws_access_key_id="test", aws_secret_access_key="test")
    client.create_bucket(Bucket=bucket)
    return bucket


def object_names(client, bucket: str, prefix: str) -> list[str]:
    found = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(item["Key"] for item in found)
