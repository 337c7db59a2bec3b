"""The prose of ``docs/benchmarks.md``: how to read the numbers, what was done, what stands in the way."""

from __future__ import annotations

from typing import Any

__all__ = ["NOTES"]


def NOTES(results: dict[str, Any]) -> list[str]:  # noqa: N802 - reads as a constant in report.py
    return []
