"""Shared for the collector tests: where their captures are (fake executables on PATH: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "collectors"
"""Real tools' output, one folder per collector (``android-pm``, ``osquery``, ``intune``…)."""
