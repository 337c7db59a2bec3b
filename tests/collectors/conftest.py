"""Shared helpers for the collector tests: fixture paths (fake executables on PATH: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "collectors"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
