"""``pyagent server run`` under cProfile, for ``python -m bench.ingest --profile DIR`` (not part of
``make bench``): the same app, store and uvicorn settings as the command, in this process, with

* the event loop's thread profiled as a whole (request parsing, body reading and gunzip, responses);
* every call the server hands to a worker thread (``run_in_threadpool`` in the handlers: token
  checks, batch decoding, the store) profiled in that thread, the threads' profiles merged.

``--clock cpu`` (the default) times each thread's own CPU, ``--clock wall`` elapsed time. On SIGTERM
uvicorn stops and the profiles are written to ``--out``: ``loop.prof`` and
``workers.prof`` (pstats files) and ``summary.txt`` (the top functions of each, by own and by
cumulative time). cProfile's overhead is larger on Python code than on C code (zlib, orjson,
hashlib, the database driver), so read the numbers as shares, and compare with the plain run.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_profiles: list[cProfile.Profile] = []
_local = threading.local()
_lock = threading.Lock()
#: ``cpu``: each thread's own CPU time (``time.thread_time``: waits for the GIL, locks, the database
#: and the network count for nothing); ``wall``: elapsed time (they count where they happen).
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.thread_time, "wall": time.perf_counter}
_clock: list[Callable[[], float]] = [time.thread_time]


def _thread_profile() -> cProfile.Profile:
    profile: cProfile.Profile | None = getattr(_local, "profile", None)
    if profile is None:
        profile = cProfile.Profile(_clock[0])
        _local.profile = profile
        with _lock:
            _profiles.append(profile)
    return profile


def _profiled(func: Callable[..., T]) -> Callable[..., T]:
    def call(*args: Any, **kwargs: Any) -> T:
        profile = _thread_profile()
        profile.enable()
        try:
            return func(*args, **kwargs)
        finally:
            profile.disable()

    return call


def _patch() -> None:
    """Wrap ``run_in_threadpool`` where the server's handlers look it up (module globals)."""
    from starlette.concurrency import run_in_threadpool

    import pyagent.server.app
    import pyagent.server.bundles
    import pyagent.server.context
    import pyagent.server.logs
    import pyagent.server.status

    async def profiled_run_in_threadpool(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await run_in_threadpool(_profiled(func), *args, **kwargs)

    for module in (
        pyagent.server.app,
        pyagent.server.bundles,
        pyagent.server.context,
        pyagent.server.logs,
        pyagent.server.status,
    ):
        module.run_in_threadpool = profiled_run_in_threadpool  # type: ignore[attr-defined]


def _summary(stats: pstats.Stats, title: str, top: int) -> str:
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    out.write(f"==== {title}: by own time ====\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write(f"==== {title}: by cumulative time ====\n")
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_profile", description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    args = parser.parse_args(argv)
    _clock[0] = CLOCKS[args.clock]

    import uvicorn

    from pyagent.cli.server import UVICORN_OPTIONS
    from pyagent.server.app import create_app
    from pyagent.server.settings import ServerSettings
    from pyagent.server.store import open_store

    settings = ServerSettings().with_options(db=args.db, bind=args.bind)
    host, port = settings.host_port()
    store = open_store(settings.db, state_dir=settings.state_dir)
    _patch()
    # uvicorn re-raises the SIGTERM it caught once it has shut down: let it come back here
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    loop = cProfile.Profile(_clock[0])
    loop.enable()
    try:
        uvicorn.run(create_app(settings, store), host=host, port=port, **UVICORN_OPTIONS)
    finally:
        loop.disable()
        args.out.mkdir(parents=True, exist_ok=True)
        loop.dump_stats(args.out / "loop.prof")
        with _lock:
            profiles = list(_profiles)
        text = _summary(pstats.Stats(loop), "event loop thread", args.top)
        if profiles:
            merged = pstats.Stats(profiles[0])
            for profile in profiles[1:]:
                merged.add(profile)
            merged.dump_stats(str(args.out / "workers.prof"))
            text += _summary(merged, f"worker threads ({len(profiles)} merged)", args.top)
        (args.out / "summary.txt").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
