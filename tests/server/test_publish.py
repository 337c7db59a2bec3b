"""Publishing through :func:`pyagent.server.publish.publish`: the built-in check of a policy module
(a wasm compile) is made once per module in a process; a data-only change publishes without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.ingest_events import with_revision
from pyagent.engines.wasm.capabilities import check_members
from pyagent.server import publish as publishing
from pyagent.server.store.base import Store


@pytest.fixture
def builtin_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The labels of the bundles whose module was checked for built-ins (compiled), in order, by a
    publish that remembers nothing yet."""
    checked: list[str] = []

    def counted(members: Any, *, label: str) -> None:
        checked.append(label)
        check_members(members, label=label)

    monkeypatch.setattr(publishing, "check_builtins", counted)
    monkeypatch.setattr(publishing, "_BUILTINS", publishing._BuiltinsCheck(2))
    return checked


def test_a_module_checked_once_is_not_compiled_again_for_the_next_revision(
    policy_bundle: Path, sqlite_store: Store, builtin_checks: list[str]
) -> None:
    raw = policy_bundle.read_bytes()
    for revision in ("r1", "r2", "r3"):
        done = publishing.publish(
            sqlite_store, "pyagent", [(f"{revision}.tar.gz", with_revision(raw, revision))],
            verification=None, published_by="test",
        )  # fmt: skip
        assert (done.revision, done.targets) == (revision, ("wasm",))
    assert builtin_checks == ["r1.tar.gz"]
    assert sqlite_store.bundle_head("pyagent", "wasm").revision == "r3"  # type: ignore[union-attr]
