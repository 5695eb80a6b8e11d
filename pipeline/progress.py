"""How a long stage reports progress: a bar on a terminal (cli.py), log lines otherwise."""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("pipeline")


class Progress(Protocol):
    def start(self, label: str, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def finish(self) -> None: ...


class LogProgress:
    def start(self, label: str, total: int) -> None:
        log.info("%s: %d", label, total)

    def advance(self, n: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass
