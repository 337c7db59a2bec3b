"""File digests as OPA computes them: exact canonical forms, and agreement with the pinned ``opa build``
on data chosen to hit every encoding rule."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pyagent.bundles.digest import DigestError, TooDeepToHash, canonical_json, file_digest
from pyagent.bundles.errors import BundleRejected, RejectionKind
from pyagent.bundles.verify import check_signed_digests
from tests.bundles import forge
from tests.bundles.conftest import Build

TRICKY = {
    "html": "<script>&amp;</script>",
    "separators": "line\u2028para\u2029end",
    "controls": "\b\f\n\r\t\u0001\u001f\u007f",
    "quotes": 'say "hi" \\ bye',
    "unicode": "Zürich \u2013 東京 \u2013 \U0001f600",
    "numbers": [0, -0, 1.0, 1.5e3, 12345678901234567890123, 0.1, -2e-7],
    "keys": {"é": 1, "z": 2, "Z": 3, "a": {"b": [], "a": {}}, "": None},
    "flags": [True, False, None],
}


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        (b'{"b": 1, "a": [true, null, 1.0]}', b'{"a":[true,null,1.0],"b":1}'),
        (b'\xef\xbb\xbf {"k" : "v"}\n', b'{"k":"v"}'),
        ('{"s": "<&>\u2028"}'.encode(), b'{"s":"<&>\\u2028"}'),
        (b'{"s": "\\u0001\\b\\u00e9"}', '{"s":"\\u0001\\b\u00e9"}'.encode()),
        (b"[1E3, -0, 1e-7]", b"[1E3,-0,1e-7]"),
        (b'{"\\u00e9": 1, "e": 2, "f": 3}', '{"e":2,"f":3,"\u00e9":1}'.encode()),
    ],
)
def test_canonical_form(raw: bytes, canonical: bytes) -> None:
    assert canonical_json("data.json", raw) == canonical


@pytest.mark.parametrize(
    "raw",
    [b'{"a": 1, "a": 2}', b"[NaN]", b'["\\ud800"]', b"\xff\xfe{}", b"{", b'{"a": 1} trailing'],
    ids=["duplicate-key", "nan", "lone-surrogate", "not-utf8", "truncated", "trailing"],
)
def test_what_opa_would_read_differently_is_refused(raw: bytes) -> None:
    with pytest.raises(DigestError, match=r"^data\.json: not canonical JSON: "):
        file_digest("data.json", raw, "SHA-256")


def test_json_nested_past_what_can_be_read_is_unreadable_not_tampered() -> None:
    """A signed data.json of 200,000 nested arrays: no one changed it, it only cannot be read here
    (it was refused as ``tampered``, which sends an operator after an attacker)."""
    deep = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(TooDeepToHash, match=r"^data\.json: JSON nested too deeply to read$"):
        file_digest("data.json", deep, "SHA-256")
    listed = {"files": [{"name": "data.json", "hash": "0" * 64, "algorithm": "SHA-256"}]}
    token = ".".join(forge.b64(json.dumps(part).encode()) for part in ({"alg": "RS256"}, listed, {}))
    files = {"data.json": deep, ".signatures.json": forge.signatures_json(token)}
    with pytest.raises(BundleRejected) as info:
        check_signed_digests(files, label="pyagent")
    told = "bundle pyagent: rejected (unreadable): data.json: JSON nested too deeply to read"
    assert (info.value.kind, str(info.value)) == (RejectionKind.UNREADABLE, told)


def test_only_structured_names_are_parsed() -> None:
    raw = b'{"b": 1,  "a": 2}'
    assert file_digest("x/data.json", raw, "SHA-256") == hashlib.sha256(b'{"a":2,"b":1}').hexdigest()
    assert file_digest(".manifest", raw, "SHA-512") == hashlib.sha512(b'{"a":2,"b":1}').hexdigest()
    assert file_digest("x/other.json", raw, "SHA-256") == hashlib.sha256(raw).hexdigest()
    assert file_digest("policy.wasm", raw, "SHA-384") == hashlib.sha384(raw).hexdigest()


@pytest.mark.parametrize(
    ("algorithm", "why"), [("MD5", "too weak"), ("SHA-1", "too weak"), ("SHA3-256", "unknown")]
)
def test_weak_and_unknown_hashes_are_refused(algorithm: str, why: str) -> None:
    with pytest.raises(DigestError, match=rf"^policy\.wasm: hash algorithm '{algorithm}' refused \({why}\)$"):
        file_digest("policy.wasm", b"", algorithm)


def test_digests_agree_with_opa_on_tricky_data(signed: Build, tmp_path: Path) -> None:
    """opa build writes and signs data.json from these values; the embedded verifier recomputes every
    digest (build_signed_bundle verifies its output) and gets the same ones."""
    policy = tmp_path / "policy"
    (policy / "tricky").mkdir(parents=True)
    (policy / "tricky" / "data.json").write_text(json.dumps(TRICKY, ensure_ascii=False), encoding="utf-8")
    (policy / "p.rego").write_text("package tricky.p\n\nanswer := data.tricky.keys.z\n")
    bundle = signed(1, target="rego", dirs=(policy,), revision=None)
    members = forge.read_tar(bundle)
    listed = {f["name"]: f["hash"] for f in forge.decode(forge.token_of(members))[1]["files"]}
    assert set(listed) == {"data.json", "p.rego", ".manifest"}
    for name, digest in listed.items():
        assert file_digest(name, forge.member(members, name), "SHA-256") == digest, name
    written = json.loads(forge.member(members, "data.json"))
    assert written["tricky"]["separators"] == TRICKY["separators"]
