"""Segments -> audio bytes: the backend registry.

base.py declares the protocol; each backend lives in its own module and is
imported only when asked for.
"""

from __future__ import annotations

from pipeline.errors import BackendUnavailable
from pipeline.tts.base import Backend

BACKENDS = ("local", "audiocleaner")


def get_backend(name: str, **options) -> Backend:
    """A backend by its config name."""
    if name == "local":
        from pipeline.tts.local import LocalBackend

        return LocalBackend(genders=options.get("genders"))
    if name == "audiocleaner":
        from pipeline.tts.audiocleaner import AudioCleanerBackend

        return AudioCleanerBackend.from_environment(**options)
    raise BackendUnavailable(f"unknown backend {name!r}; use 'local' or 'audiocleaner'")


def backend_identity(name: str) -> str:
    """The cache-key identity of a backend, without needing its credentials.

    A remote backend's identity includes its base URL: audio made by the
    emulator must never stand in for the real service's.
    """
    if name == "local":
        from pipeline.tts.local import LocalBackend

        return LocalBackend().identity()
    if name == "audiocleaner":
        from pipeline.tts.audiocleaner import base_url, identity_of

        return identity_of(base_url())
    raise BackendUnavailable(f"unknown backend {name!r}; use 'local' or 'audiocleaner'")
