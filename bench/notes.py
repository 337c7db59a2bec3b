"""The prose of ``docs/benchmarks.md``: how to read the numbers, what was done, what stands in the way."""

from __future__ import annotations

from typing import Any

__all__ = ["notes"]


def notes(results: dict[str, Any]) -> list[str]:
    return []
