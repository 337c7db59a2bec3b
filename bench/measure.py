"""Timing and process-measurement helpers for the benchmark: sample statistics, bounded repetition,
a sampler of a process tree's resident memory, and the machine's description and load."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = [
    "RunResult",
    "TreeSampler",
    "loadavg",
    "machine",
    "repeat",
    "run_measured",
    "summarise",
]


def remeasured(section: Mapping[str, Any], only: str) -> str:
    """The sentence that says how to measure a section alone, and when it last was (``generated_at``,
    set by ``python -m bench.run --only``)."""
    at = section.get("generated_at")
    when = f" (last at {at})." if at else "."
    return f"`python -m bench.run --only {only}` re-measures this section{when}"


def summarise(samples_ns: Sequence[int]) -> dict[str, Any]:
    """Median, p99, min and count of samples given in nanoseconds, in milliseconds."""
    ordered = sorted(samples_ns)
    if not ordered:
        return {"median_ms": None, "p99_ms": None, "min_ms": None, "n": 0}
    p99 = ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
    return {
        "median_ms": round(statistics.median(ordered) / 1e6, 4),
        "p99_ms": round(p99 / 1e6, 4),
        "min_ms": round(ordered[0] / 1e6, 4),
        "n": len(ordered),
    }


def repeat(
    fn: Callable[[], object], *, warmup: int, runs: int, budget_s: float, min_runs: int = 5
) -> list[int]:
    """Per-call wall times (ns) of ``fn``: ``warmup`` untimed calls, then up to ``runs`` timed ones,
    stopping early once ``budget_s`` is spent (but never before ``min_runs``)."""
    for _ in range(warmup):
        fn()
    samples: list[int] = []
    clock = time.perf_counter_ns
    deadline = clock() + int(budget_s * 1e9)
    for _ in range(runs):
        start = clock()
        fn()
        end = clock()
        samples.append(end - start)
        if end > deadline and len(samples) >= min_runs:
            break
    return samples


# ---------------------------------------------------------------------------------------- processes


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process in KiB; zeros once it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


class TreeSampler(threading.Thread):
    """Samples the resident memory of a process and all its descendants every ``interval`` seconds.

    ``peak_tree_kb`` is the largest sum of VmRSS seen at one moment (shared pages are counted in every
    process that maps them, so this is an upper bound); ``peak_process_kb`` the largest VmHWM
    (a process's own high-water mark) of any single process; ``processes`` how many were seen."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak_tree_kb = 0
        self.peak_process_kb = 0
        self.seen: set[int] = set()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def sample(self) -> None:
        if not os.path.isdir("/proc"):
            return
        tree = _children_map()
        pending, total = [self.root], 0
        while pending:
            pid = pending.pop()
            self.seen.add(pid)
            rss, hwm = _memory_kb(pid)
            total += rss
            self.peak_process_kb = max(self.peak_process_kb, hwm)
            pending.extend(tree.get(pid, []))
        self.peak_tree_kb = max(self.peak_tree_kb, total)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


@dataclass
class RunResult:
    """One measured subprocess run."""

    returncode: int
    wall_s: float
    peak_tree_kb: int
    peak_process_kb: int
    processes: int
    fed: int = 0
    stderr: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def run_measured(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    feed: Iterable[bytes] | None = None,
    feed_cap_s: float | None = None,
    timeout_s: float = 900.0,
) -> RunResult:
    """Run ``command`` to completion, sampling its process tree's memory.

    With ``feed``, lines are written to its stdin until they run out or ``feed_cap_s`` has passed,
    then stdin is closed (``fed`` says how many lines went in)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        list(command),
        stdin=subprocess.PIPE if feed is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
    )
    sampler = TreeSampler(process.pid)
    sampler.start()
    errors: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(process.stderr, errors), daemon=True)
    reader.start()
    fed = 0
    try:
        if feed is not None and process.stdin is not None:
            fed = _feed(process.stdin, feed, start, feed_cap_s)
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    finally:
        wall = time.perf_counter() - start
        sampler.stop()
        reader.join(timeout=5)
    return RunResult(
        returncode=process.returncode,
        wall_s=wall,
        peak_tree_kb=sampler.peak_tree_kb,
        peak_process_kb=sampler.peak_process_kb,
        processes=len(sampler.seen),
        fed=fed,
        stderr=b"".join(errors).decode("utf-8", "replace")[-4000:],
    )


def _drain(stream: IO[bytes] | None, into: list[bytes]) -> None:
    if stream is not None:
        for chunk in iter(lambda: stream.read(65536), b""):
            into.append(chunk)


def _feed(stdin: IO[bytes], lines: Iterable[bytes], start: float, cap_s: float | None) -> int:
    fed = 0
    try:
        for line in lines:
            stdin.write(line)
            fed += 1
            if cap_s is not None and fed % 256 == 0 and time.perf_counter() - start > cap_s:
                break
    except BrokenPipeError:
        pass
    finally:
        with contextlib.suppress(BrokenPipeError):
            stdin.close()
    return fed


# ------------------------------------------------------------------------------------------ machine


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return [float(x) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version_of(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def machine(opa: str) -> dict[str, Any]:
    """The machine and the versions the numbers were taken with."""
    opa_version = subprocess.run([opa, "version"], capture_output=True, text=True, check=False).stdout
    fields = dict(line.split(": ", 1) for line in opa_version.splitlines() if ": " in line)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": cores,
        "cpu": _cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_implementation": sys.implementation.name,
        "opa": fields.get("Version", "?"),
        "opa_go": fields.get("Go Version", "?"),
        "wasmtime": _version_of("wasmtime"),
        "opa_python_client": _version_of("opa-python-client"),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
        if hasattr(os, "sysconf")
        else None,
    }
