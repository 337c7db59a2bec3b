"""Publishing through :func:`pyagent.server.publish.publish`: the built-in check of a policy module
(a wasm compile, :func:`pyagent.engines.wasm.capabilities.missing_builtins`) is made once per module
in a process; a data-only change publishes without it. A module runs only once the key has vouched
for its bundle, and then within a bound; one that is no policy is the request's fault (400)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import wasmtime
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.ingest_events import with_revision
from pyagent.bundles.verify import VerificationConfig
from pyagent.engines.wasm import capabilities
from pyagent.errors import InvalidInputError
from pyagent.server import publish as publishing
from pyagent.server.store.base import BundleFile, NewRevision, Store, StoreConflict


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


def _wasm_bundle(wasm: bytes, revision: str = "loop1") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in (
            ("/.manifest", json.dumps({"revision": revision}).encode()),
            ("/policy.wasm", wasm),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def bytes_wat(text: str) -> bytes:
    """A module in the binary format, from its text (the server takes the binary format only)."""
    return bytes(wasmtime.wat2wasm(text))


def _refusal(store: Store, wasm: bytes) -> str:
    """Why a bundle of ``wasm`` is refused when published without a key (the admin token alone)."""
    with pytest.raises(InvalidInputError) as refused:
        publishing.publish(
            store, "pyagent", [("m.tar.gz", _wasm_bundle(wasm))], verification=None, published_by="test"
        )
    return str(refused.value)


#: A module whose start function never returns: it ran in the server before any signature was checked,
#: with no bound, and 40 publishes of it took every worker thread (the server stopped answering).
LOOPING = bytes_wat('(module (import "env" "memory" (memory 2)) (func $f (loop (br 0))) (start $f))')


def test_a_bundle_the_key_does_not_vouch_for_is_refused_before_its_module_runs(
    sqlite_store: Store, builtin_checks: list[str], tmp_path: Path
) -> None:
    key = rsa.generate_private_key(65537, 2048).public_key()
    pem = tmp_path / "signer.pub.pem"
    pem.write_bytes(
        key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(InvalidInputError) as refused:
        publishing.publish(
            sqlite_store, "pyagent", [("loop.tar.gz", _wasm_bundle(LOOPING))],
            verification=VerificationConfig.from_key_file(pem, algorithm="RS256"), published_by="test",
        )  # fmt: skip
    assert "unsigned" in str(refused.value)
    assert builtin_checks == []  # the module was never loaded


def test_a_module_that_loops_while_it_loads_is_interrupted_and_refused(
    sqlite_store: Store, builtin_checks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a key (the admin token alone vouches), the module's loading code is bounded."""
    monkeypatch.setattr(capabilities, "CHECK_SECONDS", 0.5)
    told = _refusal(sqlite_store, LOOPING)
    assert told.startswith("policy.wasm cannot be instantiated: ") and "interrupt" in told
    assert sqlite_store.bundle_head("pyagent", "wasm") is None


@pytest.mark.parametrize(
    ("wasm", "told"),
    [
        (b"not wasm at all", "policy.wasm is not a wasm module: it does not start with \\0asm"),
        (b"(module)", "policy.wasm is not a wasm module: it does not start with \\0asm"),  # (the text format)
        (b"\0asm\x01\0\0\0", "policy.wasm lacks the global 'opa_wasm_abi_version': not an OPA wasm module"),
    ],
)
def test_a_module_that_is_no_policy_is_a_bad_request(sqlite_store: Store, wasm: bytes, told: str) -> None:
    """They were internal errors (500, a traceback in the log; exit 3 from server publish)."""
    assert _refusal(sqlite_store, wasm) == told


def test_a_newer_build_under_a_revision_name_already_published_is_refused(sqlite_store: Store) -> None:
    """r20 (serial 20, both builds), then r20 again with serial 25 (rego only) was stored: the rollout
    counted devices on serial 20's wasm build as on the newest revision, and their refusals as of it."""

    def build(revision: str, serial: int, targets: tuple[str, ...]) -> NewRevision:
        files = [
            BundleFile(t, f'"{revision}-{serial}-{t}"', f"{revision}/{serial}/{t}".encode()) for t in targets
        ]
        return NewRevision("pyagent", revision, serial, True, "test", files)

    sqlite_store.publish(build("r20", 20, ("rego", "wasm")))
    with pytest.raises(StoreConflict) as refused:
        sqlite_store.publish(build("r20", 25, ("rego",)))
    assert str(refused.value) == (
        "bundle pyagent: revision 'r20' is already the current one; a newer build needs a revision of its "
        "own (pyagent policy bundle --revision), and another target of the same build its serial (--serial)"
    )
    sqlite_store.publish(build("r21", 21, ("rego", "wasm")))
    with pytest.raises(StoreConflict) as again:
        sqlite_store.publish(build("r20", 30, ("rego", "wasm")))
    assert str(again.value) == (
        "bundle pyagent: revision 'r20' was published before; a newer build needs a revision of its own "
        "(pyagent policy bundle --revision), and another target of the same build its serial (--serial)"
    )
    assert sqlite_store.publish(build("r22", 22, ("rego", "wasm"))).stored


@pytest.mark.parametrize(
    ("revision", "shown"),
    [
        ("r" * 513, "'" + "r" * 78 + "…"),
        ("r1\nr2", "'r1\\nr2'"),
        ("r1\x9br2", "'r1\\x9br2'"),
        ("r1\u2028r2", "'r1\\u2028r2'"),
    ],
)
def test_a_revision_too_long_or_with_a_control_character_is_refused(
    policy_bundle: Path, sqlite_store: Store, revision: str, shown: str
) -> None:
    """A million-character revision was stored, and every dashboard page printed it (1 MB pages)."""
    with pytest.raises(InvalidInputError) as refused:
        publishing.publish(
            sqlite_store, "pyagent", [("long.tar.gz", with_revision(policy_bundle.read_bytes(), revision))],
            verification=None, published_by="test",
        )  # fmt: skip
    assert str(refused.value) == (
        f"long.tar.gz: the revision must be 1-512 characters without control characters, got {shown}"
    )


#: A module of OPA's ABI whose ``builtins`` and ``entrypoints`` answer ``{}``, and whose ``opa_malloc``
#: never returns: the load's calls after those two were not bounded (a publish held for ever).
LOOPING_MALLOC = bytes_wat("""(module
  (import "env" "memory" (memory 2))
  (data (i32.const 16) "{}\\00")
  (global (export "opa_wasm_abi_version") i32 (i32.const 1))
  (global (export "opa_wasm_abi_minor_version") i32 (i32.const 3))
  (func (export "builtins") (result i32) (i32.const 0))
  (func (export "entrypoints") (result i32) (i32.const 0))
  (func (export "opa_json_dump") (param i32) (result i32) (i32.const 16))
  (func (export "opa_value_dump") (param i32) (result i32) (i32.const 16))
  (func (export "opa_malloc") (param i32) (result i32) (loop (br 0)) (i32.const 0))
  (func (export "opa_free") (param i32))
  (func (export "opa_json_parse") (param i32 i32) (result i32) (i32.const 0))
  (func (export "opa_heap_ptr_get") (result i32) (i32.const 0))
  (func (export "opa_heap_ptr_set") (param i32))
  (func (export "opa_eval") (param i32 i32 i32 i32 i32 i32 i32) (result i32) (i32.const 0)))""")


def test_every_call_of_a_module_s_load_is_bounded(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capabilities, "CHECK_SECONDS", 0.5)
    assert _refusal(sqlite_store, LOOPING_MALLOC).startswith("policy.wasm trapped: interrupt")


@pytest.mark.parametrize(
    ("wasm", "told"),
    [
        (  # a memory of its own: the bound covered only the one the runtime gives
            bytes_wat("(module (memory $own 5000) (func $f (loop (br 0))) (start $f))"),
            "policy.wasm cannot be instantiated: ",
        ),
        (  # asking for more than the bound: a raw error, 500
            bytes_wat('(module (import "env" "memory" (memory 5000)))'),
            "policy.wasm asks for 5000 pages of memory; at most 4096",
        ),
    ],
)
def test_a_module_is_held_to_the_memory_bound_as_it_loads(
    sqlite_store: Store, wasm: bytes, told: str
) -> None:
    assert _refusal(sqlite_store, wasm).startswith(told)
