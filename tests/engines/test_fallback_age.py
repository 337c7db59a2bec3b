"""The fallback's policy-age limit (``--max-policy-age``) against a bundle that vouches for its own
freshness: a build time that is no instant, or one in the future, fails closed instead of making the
bundle young for ever (``age > limit`` never holds for NaN or a negative age)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyagent.engines.base import EngineError
from pyagent.engines.fallback import MAX_AHEAD_SECONDS, bundle_age

NOW = 1_700_000_000.0


def _manifest(built_at: object) -> dict[str, object]:
    return {"metadata": {"pyagent": {"serial": 7, "built_at": built_at}}}


def test_the_age_is_counted_from_the_manifests_build_time(tmp_path: Path) -> None:
    assert bundle_age(tmp_path, _manifest(int(NOW) - 3600), NOW) == 3600.0
    assert bundle_age(tmp_path, _manifest(int(NOW) + MAX_AHEAD_SECONDS), NOW) == -MAX_AHEAD_SECONDS


def test_without_a_build_time_the_age_is_the_files(tmp_path: Path) -> None:
    bundle = tmp_path / "b.tar.gz"
    bundle.write_bytes(b"")
    os.utime(bundle, (NOW - 60, NOW - 60))
    assert bundle_age(bundle, {"metadata": {"pyagent": {"serial": 7}}}, NOW) == 60.0
    assert bundle_age(bundle, {}, NOW) == 60.0


@pytest.mark.parametrize(
    ("built_at", "shown"),
    [
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (1.7e9, "1700000000.0"),
        (True, "True"),
        ("1700000000", "'1700000000'"),
        (None, "None"),
        (10**400, "1" + "0" * 38 + "…"),
        (253_402_300_800, "253402300800"),
        (-1, "-1"),
    ],
    ids=["NaN", "infinity", "float", "boolean", "string", "null", "huge", "past-year-9999", "negative"],
)
def test_a_build_time_that_is_no_instant_fails_closed(tmp_path: Path, built_at: object, shown: str) -> None:
    with pytest.raises(EngineError) as refused:
        bundle_age(tmp_path, _manifest(built_at), NOW)
    assert str(refused.value) == (
        f"the fallback bundle {tmp_path}: metadata.pyagent.built_at is {shown}, not Unix seconds: its age "
        "is unknown, failing closed"
    )


def test_a_build_time_in_the_future_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(EngineError) as refused:
        bundle_age(tmp_path, _manifest(int(NOW) + MAX_AHEAD_SECONDS + 1), NOW)
    assert str(refused.value) == (
        f"the fallback bundle {tmp_path}: its metadata.pyagent.built_at is {MAX_AHEAD_SECONDS + 1} s ahead "
        "of this clock: its age is unknown, failing closed"
    )


def test_a_file_dated_in_the_future_fails_closed(tmp_path: Path) -> None:
    bundle = tmp_path / "b.tar.gz"
    bundle.write_bytes(b"")
    os.utime(bundle, (NOW + 86400, NOW + 86400))
    with pytest.raises(EngineError, match=r"its modification time is 86400 s ahead of this clock"):
        bundle_age(bundle, {}, NOW)
