"""What a bundle server or a bundle says of itself is bounded before the agent stores it: refusals
with megabytes of text (a key name from an unverified signature, say) must never make ``status.json``
too large to read at the next start, which would keep the agent down."""

from __future__ import annotations

from pathlib import Path

from pyagent.agent.plugins.bundledir import MAX_REFUSALS, MAX_STATUS, MAX_TEXT, BundleDir
from pyagent.bundles.errors import MAX_DETAIL, RejectionKind, reject


def test_a_refusal_detail_is_bounded() -> None:
    err = reject(
        RejectionKind.WRONG_KEY_ID, "pyagent (http://x/b)", "the signature names key " + "k" * 200_000
    )
    assert len(err.detail) <= MAX_DETAIL and err.detail.endswith("…")


def test_the_status_file_stays_readable_after_many_huge_refusals(tmp_path: Path) -> None:
    directory = BundleDir(tmp_path, "pyagent")
    directory.prepare()
    status = directory.load_status()
    for index in range(MAX_REFUSALS + 5):
        status.refused(f"2026-12-04T00:00:{index:02d}Z", "wrong-key-id", "k " * 500_000)
    directory.save_status(status)
    assert (tmp_path / "bundles" / "pyagent" / "status.json").stat().st_size < MAX_STATUS // 10
    again = directory.load_status()
    assert len(again.refusals) == MAX_REFUSALS
    assert all(len(r["reason"]) <= MAX_TEXT for r in again.refusals)
