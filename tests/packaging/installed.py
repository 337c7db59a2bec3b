"""A real install of pyagent, outside the checkout: the sdist and the wheel built with ``python -m build``
(the wheel from the sdist, as ``make dist`` does), a fresh ``python -m venv`` in /tmp, ``pip install`` of
the wheel with its dependencies (resolved from the index; their wheels are kept between runs), and a
non-root user to run it as."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Dependency wheels kept between runs on this machine (resolved from the index when missing or outdated).
WHEELHOUSE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pyagent-tests" / "wheelhouse"
#: The unprivileged user the installed pyagent runs as (created when the tests run as root).
USER = "pyagent-pkgtest"


@dataclass
class Installed:
    """The installed pyagent, the user it runs as and that user's private home (its working directory)."""

    base: Path
    venv: Path
    home: Path
    user: str
    prefix: list[str]
    """``runuser -u USER --`` as root; nothing when the tests already run as a non-root user."""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def pyagent(self) -> str:
        return str(self.venv / "bin" / "pyagent")

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment: no PYTHONPATH, no PYAGENT_* of the test run, no opa on PATH."""
        return {"HOME": str(self.home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **extra}

    def run(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """``pyagent ARGS`` as the user, in its home."""
        return self.run_program([self.pyagent, *args], env=env, timeout=timeout)

    def run_program(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        environment = dict(env) if env is not None else self.env()
        command = [*self.prefix, "env", "-i", *(f"{k}={v}" for k, v in environment.items()), *argv]
        return subprocess.run(
            command, cwd=self.home, capture_output=True, text=True, timeout=timeout, check=False
        )

    def give(self, source: Path | str, name: str, *, text: str | None = None) -> Path:
        """A file in the user's home (copied from ``source``, or ``text``), owned by the user, mode 0600."""
        target = self.home / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if text is not None:
            target.write_text(text, encoding="utf-8")
        else:
            shutil.copyfile(source, target)
        target.chmod(0o600)
        uid = pwd.getpwnam(self.user).pw_uid
        if os.geteuid() == 0:
            os.chown(target, uid, -1)
        return target


def _step(
    timings: dict[str, float],
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float,
) -> None:
    started = time.monotonic()
    done = subprocess.run(
        argv, capture_output=True, text=True, check=False, env=env, cwd=cwd, timeout=timeout
    )
    timings[name] = round(time.monotonic() - started, 1)
    if done.returncode != 0:
        command = " ".join(argv)
        raise AssertionError(f"{name} failed ({done.returncode}): {command}\n{done.stdout}\n{done.stderr}")


def ensure_user() -> tuple[str, list[str]]:
    """The non-root user and the command prefix that runs as it."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name, []
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True,
            capture_output=True,
        )
    return USER, ["runuser", "-u", USER, "--"]


def user_python(prefix: list[str]) -> str:
    """A Python >= 3.11 with venv that the user can run (the checkout's may live under /root, mode 0700)."""
    candidates = [shutil.which("python3", path="/usr/bin:/usr/local/bin:/bin"), sys._base_executable]
    for candidate in dict.fromkeys(c for c in candidates if c):
        probe = "import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))"
        done = subprocess.run([*prefix, candidate, "-c", probe], capture_output=True, check=False)
        if done.returncode == 0:
            return candidate
    raise AssertionError(
        "no Python >= 3.11 with venv that a non-root user can run (Debian: apt-get install python3-venv)"
    )


def pip_install(venv: Path, wheel: str, timings: dict[str, float]) -> None:
    """``pip install WHEEL`` with its dependencies: from the wheels of an earlier run (no index), else
    resolved from the index, whose wheels are then kept for the next run."""
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    offline = [*pip, "install", "-q", "--no-index", "--find-links", str(WHEELHOUSE), wheel]
    if any(WHEELHOUSE.glob("*.whl")):
        try:
            _step(timings, "pip install the wheel (kept wheels)", offline, env=env, timeout=300)
            return
        except AssertionError:
            pass  # a dependency changed: resolve again
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    _step(
        timings, "pip download", [*pip, "download", "-q", "-d", str(WHEELHOUSE), wheel], env=env, timeout=300
    )
    for own in WHEELHOUSE.glob("pyagent-*"):
        own.unlink()
    _step(timings, "pip install the wheel", offline, env=env, timeout=300)


def install(opa: str) -> Installed:
    """Build the sdist and the wheel, install the wheel into a new venv in /tmp, for a non-root user."""
    user, prefix = ensure_user()
    base = Path(tempfile.mkdtemp(prefix="pyagent-pkg-", dir="/tmp"))
    base.chmod(0o755)
    timings: dict[str, float] = {}
    dist = base / "dist"
    _step(
        timings,
        "build sdist and wheel",
        [sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)],
        env={**os.environ, "PYAGENT_OPA": opa},
        timeout=300,
    )
    wheel = str(next(iter(dist.glob("pyagent-*.whl"))))
    venv = base / "venv"
    _step(timings, "python -m venv", [user_python(prefix), "-m", "venv", str(venv)], timeout=120)
    pip_install(venv, wheel, timings)
    home = base / "home"
    home.mkdir(mode=0o700)
    if prefix:
        os.chown(home, pwd.getpwnam(user).pw_uid, -1)
    return Installed(base, venv, home, user, prefix, timings)
