"""What `cache prune` keeps: every key a recorded config still uses.

The store records which config, backend and service URL used it (like
pre-commit's mark_config_used); a prune re-plans each recorded config under
each of them. It lives apart from cache.py because it needs the planner,
which itself reads the cache.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from pipeline.cache import SegmentCache
from pipeline.config import Config, load_config
from pipeline.errors import InputError, Problem
from pipeline.plan import make_plan
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
