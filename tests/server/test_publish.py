"""Publishing through :func:`pyagent.server.publish.publish`: the built-in check of a policy module
(a wasm compile, :func:`pyagent.engines.wasm.capabilities.missing_builtins`) is made once per module
in a process; a data-only change publishes without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.ingest_events import with_revision
from pyagent.engines.wasm import capabilities
from pyagent.server import publish as publishing
from pyagent.server.store.base import Store


@pytest.fixture
def builtin_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The built-in checks that compiled a module (the answer for each), in order, in a process that
    remembers no module yet."""
    compiled: list[str] = []

    def counted(wasm: bytes) -> tuple[str, ...]:
        missing = real(wasm)
        compiled.append("runs" if not missing else "refused")
        return missing

    real = capabilities._compiled_missing
    monkeypatch.setattr(capabilities, "_compiled_missing", counted)
    monkeypatch.setattr(capabilities, "_answers", type(capabilities._answers)())
    return compiled


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
    assert builtin_checks == ["runs"]  # compiled for r1 only
    assert sqlite_store.bundle_head("pyagent", "wasm").revision == "r3"  # type: ignore[union-attr]
