"""Durations as the server reads them (a history's ``step``, the config's ``stale_after``): whole
seconds, weeks to seconds (``2w``, ``1h30m``), or ISO 8601 weeks to seconds (``PT1H30M``); never years or
months, which have no fixed length, and nothing past a hundred years."""

from __future__ import annotations

import pytest

from pyagent.timeutil import MAX_DURATION_SECONDS, duration_seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5400", 5400), ("90m", 5400), ("1h30m", 5400), ("2d12h", 216000), ("45s", 45), ("2w", 1209600),
        ("1w1d", 691200),
        ("PT1H30M", 5400), ("PT90M", 5400), ("PT5400S", 5400), ("P1DT12H", 129600), ("P2W", 1209600),
        ("P1W2DT3H4M5S", 788645), ("P1D", 86400), ("PT1S", 1),
    ],
)  # fmt: skip
def test_a_duration_in_either_grammar(text: str, seconds: int) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "", "P", "PT", "P1DT", "P1M", "P1Y", "P1Y2D", "pt1h", "PT1.5H", "PT1,5H", "PT1H30", "P1H", "PT1D",
        "PT0S", "P0D", "0", "1H", "1h ", " PT1H", "PT1H\n", "P\u0661D", "PT-1H", "P1DT1H1D", "P2W1W",
        "PT1234567890H", "1d1w", "1W", "w",
    ],
)  # fmt: skip
def test_no_duration(text: str) -> None:
    assert duration_seconds(text) is None


def test_a_hundred_years_at_most() -> None:
    days = MAX_DURATION_SECONDS // 86400
    assert (duration_seconds(f"P{days}D"), duration_seconds(f"P{days + 1}D")) == (MAX_DURATION_SECONDS, None)
