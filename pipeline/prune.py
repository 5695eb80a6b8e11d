"""What `cache prune` keeps: every key a recorded config still uses; and the
remote tier's prune and clear (`--remote`), which act on that same record.

The store records which config, backend and service URL used it (like
pre-commit's mark_config_used); a prune re-plans each recorded config under
each of them. It lives apart from cache.py because it needs the planner,
which itself reads the cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.cache import HEADER_MAX, EntryDamaged, PruneReport, SegmentCache, header_of
from pipeline.config import Config, load_config
from pipeline.errors import InputError, Problem, RemoteCacheError
from pipeline.plan import make_plan
from pipeline.remote_cache import RemoteCache
from pipeline.tts import backend_identity


def used_keys(cache: SegmentCache, current: Config | None,
              plan_keys: Callable[[SegmentCache, Config, str, str], set[str]] | None = None
              ) -> tuple[set[str], list[str]]:
    """Every key a recorded (or the current) config uses under each recorded backend.

    A recorded config that no longer exists is forgotten, with a note. One
    that cannot be planned any more stops the prune: what it uses is unknown.
    """
    plan_keys = plan_keys or _plan_keys
    combos: dict[str, set[tuple[str, str]]] = {}
    notes: list[str] = []
    for record in cache.uses():
        if not Path(record["config"]).is_file():
            cache.forget_use(record["id"])
            notes.append(f"{record['config']} no longer exists; forgot that it used this cache "
                         f"({record['backend']})")
            continue
        combos.setdefault(record["config"], set()).add((record["backend"], record["identity"]))
    if current is not None:
        combos.setdefault(str(current.path), set()).add(
            (current.backend, backend_identity(current.backend)))
    keep: set[str] = set()
    for config_path, pairs in sorted(combos.items()):
        try:
            cfg = current if current is not None and str(current.path) == config_path \
                else load_config(config_path)
            for backend, identity in sorted(pairs):
                keep |= plan_keys(cache, cfg, backend, identity)
        except InputError as exc:
            raise InputError([Problem(config_path, None, None,
                                      "cache prune cannot tell which audio this config uses, so "
                                      "nothing was dropped; fix it, or delete it if it is gone "
                                      "for good"), *exc.problems]) from exc
    return keep, notes


def _plan_keys(cache: SegmentCache, cfg: Config, backend: str, identity: str) -> set[str]:
    # The packer leans on what is cached, so plan against the real store.
    # Planning re-reads the sources: their warnings were already shown by builds.
    quiet = logging.getLogger("pipeline")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        plan = make_plan(cfg, cache, backend, identity=identity)
    finally:
        quiet.setLevel(level)
    return {s.key for cp in plan.chapters for s in cp.segments}


def plan_remote_prune(remote: RemoteCache, keep: set[str], include_paid: bool = False,
                      fresh_s: float | None = None, now: float | None = None
                      ) -> tuple[PruneReport, list[str]]:
    """What a remote prune drops (the objects' names), and the report it will make.

    An entry no config recorded in this local cache uses is dropped; a paid
    one only with include_paid. Each entry's header (read by a Range GET,
    not the audio) says what it cost; audio of a paid backend counts as paid
    even when its header says 0 (a build that joined another's task stores
    the audio without the credits it did not pay). An object younger than
    fresh_s (a lease's ttl) is never dropped: a build in progress may have
    just uploaded it for a config this machine never saw.
    """
    if fresh_s is None:
        from pipeline.tts.audiocleaner import default_lease_ttl

        fresh_s = default_lease_ttl()
    now = time.time() if now is None else now
    report = PruneReport()
    doomed: list[str] = []
    for obj in remote.objects("segments"):
        key = obj.short[:-len(".seg")] if obj.short.endswith(".seg") else ""
        if key in keep:
            report.in_use += 1
            continue
        if now - obj.modified < fresh_s:
            report.kept_fresh += 1
            continue
        credits = _remote_credits(remote, key) if key else None
        if credits != 0 and not include_paid:
            report.kept_paid += 1
            report.kept_paid_credits += credits or 0
            continue
        doomed.append(obj.name)
        report.dropped_credits += credits or 0
    if not remote.available:
        raise RemoteCacheError(f"remote cache {remote.where} cannot be used; nothing was "
                               "dropped from it (see above)")
    return report, doomed


def prune_remote(remote: RemoteCache, report: PruneReport, doomed: list[str]
                 ) -> PruneReport:
    """Drop what plan_remote_prune chose; the report with how many went."""
    report.dropped = remote.delete(doomed)
    if not remote.available:
        raise RemoteCacheError(f"remote cache {remote.where} failed while dropping entries; "
                               f"{report.dropped} of {len(doomed)} were dropped (see above)")
    return report


def _remote_credits(remote: RemoteCache, key: str) -> int | None:
    """What a remote entry cost (a paid backend's audio: at least 1); None when unknown."""
    start = remote.head(key, HEADER_MAX)
    if start is None:
        return None
    try:
        meta = header_of(start, key)
        credits = int(meta.get("credits", 0))
    except (EntryDamaged, ValueError, TypeError):
        return None
    paid_backend = not str(meta.get("backend", "")).startswith("local:")
    return max(credits, 1) if paid_backend else credits


def remote_objects(remote: RemoteCache) -> tuple[list[str], list[str]]:
    """The names of every entry and every lease under the remote prefix (for `clear --remote`)."""
    entries = [o.name for o in remote.objects("segments")]
    leases = [o.name for o in remote.objects("leases")]
    if not remote.available:
        raise RemoteCacheError(f"remote cache {remote.where} cannot be used (see above)")
    return entries, leases


def clear_remote(remote: RemoteCache, names: list[str]) -> int:
    gone = remote.delete(names)
    if not remote.available:
        raise RemoteCacheError(f"remote cache {remote.where} failed while clearing it; "
                               f"{gone} of {len(names)} object(s) were deleted (see above)")
    return gone
