"""The real programs a reader or a reviewer opens our outputs with: epubcheck and Chromium.

CI installs both (`.ci/run`); elsewhere the tests that need them are skipped, never faked.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

EPUBCHECK_JAR = Path("/usr/share/java/epubcheck.jar")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def epubcheck(path: Path) -> subprocess.CompletedProcess:
    """Run epubcheck (Debian ships a jar; its /usr/bin wrapper needs binfmt_misc)."""
    java = shutil.which("java")
    if java and EPUBCHECK_JAR.exists():
        command = [java, "-jar", str(EPUBCHECK_JAR), str(path)]
    elif shutil.which("epubcheck"):
        command = ["epubcheck", str(path)]
    else:
        pytest.skip("epubcheck is not installed (apt-get install epubcheck)")
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    """Headless Chromium with no network chatter, a fresh profile, and 5 s of virtual time."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={profile}",
         "--virtual-time-budget=5000", *args],
        capture_output=True, text=True, timeout=120)
