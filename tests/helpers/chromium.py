"""Headless Chromium (Debian's ``chromium`` package) for tests that load pages in a real browser.

``chromium_path()`` returns ``$PYAGENT_CHROMIUM`` when set, else ``/usr/bin/chromium``, installing
Debian's package first when it is absent (``apt-get update`` then ``apt-get install -y chromium``;
this needs root, as on CI). It raises when there is no browser: a browser test that skips
silently would prove nothing.

``load(page, workdir)`` runs the browser once on a local file and returns the DOM after the page's
scripts ran (``--dump-dom``) and every console message (``--enable-logging=stderr``: Chromium
logs each console message, uncaught exception and Content-Security-Policy violation as a
``CONSOLE`` line on stderr, whatever its level). The browser gets no network: no background
services, and every host name resolves to nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEBIAN_CHROMIUM = "/usr/bin/chromium"
TIMEOUT = 120
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr",
    "--v=0",
)
_CONSOLE = re.compile(r":CONSOLE[:(]")


def chromium_path() -> str:
    """The Chromium executable; installs Debian's ``chromium`` when it is missing."""
    configured = os.environ.get("PYAGENT_CHROMIUM")
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            raise FileNotFoundError(f"PYAGENT_CHROMIUM={configured!r} is not an executable file")
        return configured
    if not os.access(DEBIAN_CHROMIUM, os.X_OK):
        apt_install("chromium")
    if not os.access(DEBIAN_CHROMIUM, os.X_OK):
        raise FileNotFoundError(f"{DEBIAN_CHROMIUM} is still missing after apt-get install chromium")
    return DEBIAN_CHROMIUM


def apt_install(*packages: str) -> None:
    """``apt-get update && apt-get install -y PACKAGES`` (root only); raises with apt's output on failure."""
    if shutil.which("apt-get") is None:
        raise FileNotFoundError(f"no apt-get to install {' '.join(packages)}: set PYAGENT_CHROMIUM")
    if os.geteuid() != 0:
        raise PermissionError(
            f"installing {' '.join(packages)} needs root: run "
            f"`apt-get install -y {' '.join(packages)}` or set PYAGENT_CHROMIUM"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update"], ["apt-get", "install", "-y", *packages]):
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1800, check=False)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def ensure_cjk_font() -> None:
    """A font with Chinese characters (the EEAS example's 抖音), for screenshots meant for people."""
    listed = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False)
    if not listed.stdout.strip():
        apt_install("fonts-wqy-zenhei")


@dataclass(frozen=True)
class PageRun:
    dom: str
    """The serialised DOM after the page loaded and its scripts ran (empty for screenshots)."""
    console: list[str]
    """Every console line Chromium logged (messages, uncaught errors, CSP violations)."""
    stderr: str


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if _CONSOLE.search(line)]


def _run(page: Path, workdir: Path, extra: list[str]) -> PageRun:
    profile = workdir / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    args = [chromium_path(), *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()]
    done = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, check=False, cwd=workdir)
    if done.returncode:
        raise RuntimeError(f"chromium exited {done.returncode}:\n{done.stderr[-4000:]}")
    return PageRun(done.stdout, console_lines(done.stderr), done.stderr)


def load(page: Path, workdir: Path) -> PageRun:
    """Load ``page`` and return its DOM after scripts ran, with the console output."""
    return _run(page, workdir, ["--dump-dom"])


def screenshot(page: Path, png: Path, workdir: Path, size: tuple[int, int] = (1400, 2000)) -> PageRun:
    """Render ``page`` into ``png`` at ``size`` (width, height)."""
    return _run(page, workdir, [f"--screenshot={png.resolve()}", f"--window-size={size[0]},{size[1]}"])
