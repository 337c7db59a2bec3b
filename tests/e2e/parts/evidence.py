"""Evidence for failure messages: every started process's log, tailed into a timeout's message."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


@dataclass
class Evidence:
    """The logs of every process this test started, tailed into each failure message."""

    logs: dict[str, Path] = field(default_factory=dict)

    def add(self, name: str, path: Path) -> Path:
        self.logs[name] = path
        return path

    def tails(self, limit: int = 1500) -> str:
        parts = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace")[-limit:] if path.exists() else "(no log yet)"
            parts.append(f"--- {name} ({path}) ---\n{text}")
        return "\n".join(parts)


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    evidence: Evidence,
    detail: Callable[[], object] = lambda: "",
) -> T:
    """``probe()``'s first truthy value, polled until ``timeout`` seconds pass; else a failure that says
    what was awaited, ``detail()`` (what there is instead) and the tails of every log."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}\nnow: {detail()}\n{evidence.tails()}"
            )
        time.sleep(0.05)
