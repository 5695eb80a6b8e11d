"""The fleet tier of the segment cache: the same entry files, in S3.

`cache.remote: s3://BUCKET/PREFIX` in audiobook.yml, or AUDIOBOOK_REMOTE_CACHE
(which wins). The endpoint and credentials come from the standard AWS chain
(AWS_ENDPOINT_URL, AWS_PROFILE, AWS_ACCESS_KEY_ID, instance roles ...), never
from audiobook.yml.

Objects: `PREFIX/segments/<key>.seg` holds exactly the bytes of a local entry
(header line with sha256 and length, then the audio), so a read is checked the
same way; `PREFIX/leases/<key>.json` is a lease taken by conditional PUT.

The remote tier is a help, never a reason to fail: the first error that is not
an answer (unreachable, refused, no credentials, no bucket) is reported in one
line, and the build goes on with the local cache alone.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pipeline.errors import InputError, Problem
from pipeline.store_rules import MAX_ENTRY_BYTES, expired, is_mine, lease_alive

if TYPE_CHECKING:
    from pipeline.config import Config

log = logging.getLogger("pipeline.cache")

ENV = "AUDIOBOOK_REMOTE_CACHE"
# Bounded: a slow remote must not hold a build for long.
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 15.0
ATTEMPTS = 2
# Tries to win a lease before treating it as held by someone else.
LEASE_TRIES = 3


LeaseState = Literal["held", "busy", "down"]


@dataclass(frozen=True)
class RemoteObject:
    name: str  # the object's full name in the bucket
    short: str  # its name under PREFIX/<folder>/
    size: int
    modified: float  # seconds since the epoch


@dataclass(frozen=True)
class Location:
    bucket: str
    prefix: str  # "" or ending in "/"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_location(url: str, source: str) -> Location:
    """s3://BUCKET[/PREFIX] -> Location; InputError naming source when it is not one."""
    if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise InputError(Problem(source, None, None,
                                 f"{url!r} is not a remote cache; use s3://BUCKET/PREFIX"))
    bucket, _, prefix = url[5:].partition("/")
    prefix = prefix.strip("/")
    return Location(bucket, f"{prefix}/" if prefix else "")


def remote_location(cfg: Config | None) -> Location | None:
    """Where the remote tier is: AUDIOBOOK_REMOTE_CACHE, else cache.remote, else none."""
    env = os.environ.get(ENV, "").strip()
    if env:
        return parse_location(env, ENV)
    configured = cfg.cache_remote if cfg is not None else None
    if configured:
        return parse_location(str(configured), "audiobook.yml: cache.remote")
    return None


def open_remote(cfg: Config | None) -> RemoteCache | None:
    where = remote_location(cfg)
    return RemoteCache(where) if where is not None else None


class RemoteCache:
    """Entries and leases in one S3 prefix. Every method fails soft (see module doc)."""

    def __init__(self, where: Location, client: Any = None):
        self.where = where
        self.available = True
        self._client = client
        self._keys: set[str] | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config as BotoConfig

            self._client = boto3.client("s3", config=BotoConfig(
                connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                retries={"max_attempts": ATTEMPTS, "mode": "standard"}))
        return self._client

    def _object(self, folder: str, name: str) -> str:
        return f"{self.where.prefix}{folder}/{name}"

    def _give_up(self, exc: BaseException) -> None:
        if self.available:
            self.available = False
            log.warning("remote cache %s cannot be used (%s); going on with the local cache only",
                        self.where, _reason(exc))

    def _call(self, operation: str, **params: Any) -> Any:
        """The S3 answer; None for a missing object; "precondition" for a 412.

        Anything else (network, credentials, no bucket) turns the tier off.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        if not self.available:
            return None
        try:
            return getattr(self.client, operation)(Bucket=self.where.bucket, **params)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            if code == "PreconditionFailed" or status == 412:
                return "precondition"
            self._give_up(exc)
        except (BotoCoreError, OSError) as exc:
            self._give_up(exc)
        return None

    # -- entries ----------------------------------------------------------
    def keys(self) -> set[str]:
        if self._keys is not None:
            return set(self._keys)
        found = {o.short[:-4] for o in self.objects("segments") if o.short.endswith(".seg")}
        # One listing per open: a build plans once; puts keep it current.
        self._keys = found if self.available else set()
        return set(self._keys)

    def __contains__(self, key: str) -> bool:
        return key in self.keys()

    def get(self, key: str) -> bytes | None:
        answer = self._call("get_object", Key=self._object("segments", f"{key}.seg"))
        if not isinstance(answer, dict):
            return None
        if int(answer.get("ContentLength") or 0) > MAX_ENTRY_BYTES:
            log.warning("remote cache entry %s is larger than any segment; ignored", key[:12])
            return None
        return self._read_body(answer, MAX_ENTRY_BYTES + 1)

    def _read_body(self, answer: dict, limit: int) -> bytes | None:
        """At most limit bytes of an answer's body; None when the download breaks off.

        A body cut short (the remote stopped mid-answer: botocore raises
        IncompleteReadError, neither an OSError nor caught by _call) is the
        remote failing like any other: the tier turns off.
        """
        try:
            return answer["Body"].read(limit)
        except Exception as exc:  # noqa: BLE001 - whatever breaks a download is the remote's fault
            self._give_up(exc)
            return None

    def put(self, key: str, raw: bytes) -> bool:
        # First writer wins here too: a stored entry never changes.
        answer = self._call("put_object", Key=self._object("segments", f"{key}.seg"), Body=raw,
                            IfNoneMatch="*")
        if answer is None:
            return False
        if self._keys is not None:
            self._keys.add(key)
        return True

    # -- leases by conditional PUT ---------------------------------------
    def _read_lease(self, key: str) -> tuple[dict | None, str | None]:
        answer = self._call("get_object", Key=self._object("leases", f"{key}.json"))
        if not isinstance(answer, dict):
            return None, None
        body = self._read_body(answer, 65536)
        if body is None:
            return None, None
        try:
            info = json.loads(body)
        except ValueError:
            info = {}
        return (info if isinstance(info, dict) else {}), answer.get("ETag")

    def lease(self, key: str, mine: dict) -> tuple[LeaseState, dict | None]:
        """Try to take the lease on key for mine.

        ("held", previous): we hold it now; previous is the dead holder's info
        when we took it over (its job id, if any, is the task to adopt), else
        None. ("busy", holder): a live holder has it. ("down", None): the
        remote did not answer.
        """
        name = self._object("leases", f"{key}.json")
        body = json.dumps(mine).encode()
        current: dict | None = None
        for _ in range(LEASE_TRIES):
            made = self._call("put_object", Key=name, Body=body, IfNoneMatch="*")
            if not self.available:
                return "down", None
            if made != "precondition":
                return "held", None
            current, etag = self._read_lease(key)
            if current is None or etag is None:
                continue  # released meanwhile: try to create it again
            if lease_alive(current) and not is_mine(current):
                return "busy", current
            taken = self._call("put_object", Key=name, Body=body, IfMatch=etag)
            if not self.available:
                return "down", None
            if taken != "precondition":
                if is_mine(current):
                    return "held", None  # our own lease, renewed
                log.info("took over the remote lease on segment %s from pid %s on %s (%s)",
                         key[:12], current.get("pid"), current.get("host"),
                         "expired" if expired(current) else "process gone")
                return "held", current
        return ("busy", current) if current else ("down", None)

    def lease_info(self, key: str) -> dict | None | Literal[False]:
        current, _ = self._read_lease(key)
        if not self.available:
            return False
        return current if current is not None and lease_alive(current) else None

    def update_lease(self, key: str, info: dict) -> bool | None:
        """Add info (the job id) to our lease. False: it is no longer ours (lost); None: no answer."""
        current, etag = self._read_lease(key)
        if not self.available:
            return None
        if current is None or etag is None or not is_mine(current):
            return False
        done = self._call("put_object", Key=self._object("leases", f"{key}.json"),
                          Body=json.dumps({**current, **info, "time": time.time()}).encode(),
                          IfMatch=etag)
        if not self.available:
            return None
        return done != "precondition"  # 412: taken between our read and our write

    def release(self, key: str) -> bool | None:
        """Drop our lease. False: it was no longer ours (lost); None: no answer."""
        current, _ = self._read_lease(key)
        if not self.available:
            return None
        if current is not None and (is_mine(current) or not lease_alive(current)):
            self._call("delete_object", Key=self._object("leases", f"{key}.json"))
            return is_mine(current)
        return False

    # -- maintenance (cache prune/clear --remote) -------------------------
    def objects(self, folder: str) -> list[RemoteObject]:
        """Every object under PREFIX/folder/, with its size and age; [] if the remote is down."""
        found: list[RemoteObject] = []
        token = None
        start = self._object(folder, "")
        while self.available:
            params: dict[str, Any] = {"Prefix": start}
            if token:
                params["ContinuationToken"] = token
            page = self._call("list_objects_v2", **params)
            if not isinstance(page, dict):
                break
            for item in page.get("Contents", []):
                modified = item.get("LastModified")
                found.append(RemoteObject(item["Key"], item["Key"][len(start):],
                                          int(item.get("Size") or 0),
                                          modified.timestamp() if modified else 0.0))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
        return found

    def head(self, key: str, size: int) -> bytes | None:
        """The first size bytes of key's entry (a Range GET: the header, not the audio)."""
        answer = self._call("get_object", Key=self._object("segments", f"{key}.seg"),
                            Range=f"bytes=0-{size - 1}")
        if not isinstance(answer, dict):
            return None
        return self._read_body(answer, size)

    def delete(self, names: list[str]) -> int:
        """Delete objects by full name, a thousand per request; how many went."""
        gone = 0
        for start in range(0, len(names), 1000):
            batch = names[start:start + 1000]
            answer = self._call("delete_objects", Delete={
                "Objects": [{"Key": name} for name in batch], "Quiet": True})
            if not isinstance(answer, dict):
                break
            gone += len(batch) - len(answer.get("Errors", []))
        self._keys = None  # listed again when next asked
        return gone


def _reason(exc: BaseException) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip(": ")
    return f"{type(exc).__name__}: {exc}"
