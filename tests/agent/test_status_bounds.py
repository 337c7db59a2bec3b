"""What a bundle server or a bundle says of itself is bounded before the agent stores it: refusals
with megabytes of text (a key name from an unverified signature, say) must never make ``status.json``
too large to read at the next start, which would keep the agent down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyagent.agent.plugins.bundledir import MAX_REFUSALS, MAX_STATUS, MAX_TEXT, BundleDir, CorruptStatus
from pyagent.agent.statusview import status_lines
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


@pytest.mark.parametrize(
    ("saved", "problem"),
    [
        ([], "not a JSON object"),
        ({"active_revision": 7}, "active_revision: not str"),
        ({"active_serial": True}, "active_serial: not int"),
        ({"http_code": "200"}, "http_code: not int"),
        ({"refusals": 5}, "refusals: not list"),
        ({"refusals": [{"at": "2026-12-04T00:00:00Z", "kind": "rollback"}]}, "refusals: not list"),
    ],
)
def test_a_status_file_that_holds_no_status_is_corrupt(tmp_path: Path, saved: object, problem: str) -> None:
    """Said as such (the plug-in then starts its status over), rather than failing later on a field."""
    directory = BundleDir(tmp_path, "pyagent")
    directory.prepare()
    (directory.path / "status.json").write_text(json.dumps(saved))
    with pytest.raises(CorruptStatus) as err:
        directory.load_status()
    assert str(err.value) == f"{directory.path / 'status.json'}: {problem}"


def test_status_lines_without_an_active_bundle() -> None:
    bundle = {"name": "pyagent", "active_revision": None, "last_successful_activation": None,
              "error": "not downloaded yet", "last_refusal": None}  # fmt: skip
    document = {"bundles": [bundle], "exists": False, "spool": "/state/spool.sqlite"}
    assert status_lines(document) == [
        "bundle pyagent: none active",
        "  last attempt failed: not downloaded yet",
        "spool: /state/spool.sqlite (none yet: the agent has not recorded a run)",
    ]


def test_status_lines_of_a_spool_whose_records_have_not_been_uploaded_yet() -> None:
    """It said "last attempt None, ok at None", Python's None, where no upload was tried (agent audit)."""
    document = {
        "bundles": [], "exists": True, "spool": "/state/spool.sqlite", "chain_id": "c-1", "mac": "no key",
        "last_run": None, "records": 1, "pending": 1, "dropped": 0, "dropped_unshipped": 0,
        "set_aside": {"count": 0, "records": []}, "head": {"seq": 1, "hash": "ab12"},
        "collector": "https://plane.example/logs",
        "shipping": {"last_attempt_at": None, "last_ok_at": None, "last_error": None},
    }  # fmt: skip
    assert status_lines(document)[-1] == "decision logs: https://plane.example/logs (no upload yet)"
    document["shipping"] = {"last_attempt_at": None, "last_ok_at": None, "last_error": "spool unreadable"}
    assert status_lines(document)[-1] == (
        "decision logs: https://plane.example/logs (last attempt (unknown), error: spool unreadable)"
    )
