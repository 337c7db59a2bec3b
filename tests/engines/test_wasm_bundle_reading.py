"""Reading a wasm bundle for the embedded engine: `opa build -t wasm` output read whole, and every way
a crafted archive could break out or blow up (traversal, links, sizes that lie, oversize totals,
corrupt or incomplete archives, a manifest naming two modules, the Rego build given instead)."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from pyagent.engines.wasm import (
    BundleError,
    WasmPolicy,
    read_bundle,
)
from pyagent.engines.wasm.bundle import BundleLimits
from tests.helpers.opa_bin import build_wasm

POLICY = """package demo

import rego.v1

default allow := false

allow if {
	banned := {app.id | some app in input.apps} & {id | some id in data.banned}
	count(banned) == 0
}
"""


def _tarball(members: Sequence[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for info, content in members:
            archive.addfile(info, io.BytesIO(content) if content is not None else None)
    return out.getvalue()


def _file(name: str, content: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    return info, content


def _special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.fixture(scope="module")
def good_members(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    workdir = tmp_path_factory.mktemp("bundle")
    path = build_wasm(workdir, POLICY, "demo/allow", revision="2023.03.15-1")
    with tarfile.open(path, "r:gz") as archive:
        return {m.name: archive.extractfile(m).read() for m in archive if m.isfile()}  # type: ignore[union-attr]


def test_opa_build_output_is_read_whole(good_members: dict[str, bytes], tmp_path: Path) -> None:
    assert "/policy.wasm" in good_members  # opa build writes root-anchored names
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(_tarball([_file(n, c) for n, c in good_members.items()]))
    bundle = read_bundle(path)
    assert bundle.wasm == good_members["/policy.wasm"]
    assert bundle.revision == "2023.03.15-1"
    assert bundle.manifest["revision"] == "2023.03.15-1"
    assert bundle.entrypoints == ["demo/allow"]
    assert bundle.data == {}
    rego = [name for name in bundle.files if name.endswith(".rego")]
    assert set(bundle.files) - set(rego) == {"policy.wasm", "data.json", ".manifest"}
    assert len(rego) == 1 and rego[0].endswith("/policy.rego")  # opa build keeps the source path
    assert WasmPolicy(bundle.wasm).evaluate({"apps": []}, "demo/allow") is True


def test_nested_data_files_are_merged(good_members: dict[str, bytes]) -> None:
    members = [_file(n, c) for n, c in good_members.items() if n != "/data.json"]
    members += [_file("/data.json", b'{"org": "x"}'), _file("/pyagent/bans/data.json", b'{"tiktok": {}}')]
    bundle = read_bundle(_tarball(members))
    assert bundle.data == {"org": "x", "pyagent": {"bans": {"tiktok": {}}}}


def _expect_bundle_error(
    members: Sequence[tuple[tarfile.TarInfo, bytes | None]], message: str, **limits: int
) -> None:
    with pytest.raises(BundleError) as caught:
        read_bundle(_tarball(members), limits=BundleLimits(**limits))
    assert str(caught.value) == message
    assert "\n" not in str(caught.value) and caught.value.exit_code == 3


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("../evil.rego", '"../evil.rego"'),
        ("/a/../../etc/passwd", '"/a/../../etc/passwd"'),
        ("//etc/passwd", '"//etc/passwd"'),
        ("a/./b", '"a/./b"'),
    ],
)
def test_path_traversal_is_refused(good_members: dict[str, bytes], name: str, shown: str) -> None:
    members = [_file(n, c) for n, c in good_members.items()] + [_file(name, b"x")]
    _expect_bundle_error(
        members, f"bundle <bytes>: member {shown}: path is absolute or escapes the bundle root"
    )


@pytest.mark.parametrize("root", [".", "./", "/"])
def test_an_entry_for_the_archive_root_is_skipped_as_opa_skips_it(
    good_members: dict[str, bytes], root: str
) -> None:
    """``tar -C DIR -czf b.tar.gz .`` writes the root directory first, and its files as ``./NAME``."""
    members = [_special(root, tarfile.DIRTYPE)] + [
        _file(f"./{n.lstrip('/')}", c) for n, c in good_members.items()
    ]
    assert read_bundle(_tarball(members)) == read_bundle(
        _tarball([_file(n, c) for n, c in good_members.items()])
    )


@pytest.mark.parametrize("root", [".", "./", "/"])
def test_a_file_named_as_the_archive_root_is_refused(good_members: dict[str, bytes], root: str) -> None:
    shown = json.dumps(root)
    members = [_file(n, c) for n, c in good_members.items()] + [_file(root, b"x")]
    _expect_bundle_error(members, f"bundle <bytes>: member {shown}: a file named as the bundle root")


def test_backslash_names_are_refused(good_members: dict[str, bytes]) -> None:
    members = [_file(n, c) for n, c in good_members.items()] + [_file("..\\evil", b"x")]
    _expect_bundle_error(members, 'bundle <bytes>: member "..\\\\evil": backslash or NUL in its name')


@pytest.mark.parametrize(
    ("kind", "word"),
    [(tarfile.SYMTYPE, "link"), (tarfile.LNKTYPE, "link"), (tarfile.FIFOTYPE, "special file")],
)
def test_links_and_special_files_are_refused(good_members: dict[str, bytes], kind: bytes, word: str) -> None:
    members = [_file(n, c) for n, c in good_members.items()] + [_special("/data2.json", kind, "/etc/passwd")]
    _expect_bundle_error(members, f"bundle <bytes>: member data2.json: is a {word}, not a regular file")


def test_a_member_claiming_a_huge_size_is_refused_before_reading(good_members: dict[str, bytes]) -> None:
    info = tarfile.TarInfo("/policy.wasm")
    info.size = 1 << 40  # the header lies: nothing of that size follows
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as archive:
        assert archive.fileobj is not None
        archive.fileobj.write(info.tobuf(archive.format, archive.encoding, archive.errors))
    # (tarfile writes a size past 8 GiB as a pax record, which a bundle never needs: refused as such)
    huge = r"^bundle <bytes>: a pax header sets size=1099511627776: not in a policy bundle$"
    with pytest.raises(BundleError, match=huge):
        read_bundle(raw.getvalue())


def test_oversize_members_and_totals_are_refused(good_members: dict[str, bytes]) -> None:
    members = [_file(n, c) for n, c in good_members.items()]
    wasm_size = len(good_members["/policy.wasm"])
    _expect_bundle_error(
        members,
        f"bundle <bytes>: member policy.wasm: {wasm_size} bytes, over {wasm_size - 1}",
        max_member_bytes=wasm_size - 1,
    )
    _expect_bundle_error(
        [*members, _file("/big1", b"x" * 1000), _file("/big2", b"x" * 1000)],
        "bundle <bytes>: member big2: members total over the bound",
        max_total_bytes=sum(map(len, good_members.values())) + 1500,  # room for big1, not for big2
    )
    _expect_bundle_error(members, "bundle <bytes>: more than 2 members", max_members=2)


def test_incomplete_or_corrupt_bundles_are_refused(good_members: dict[str, bytes], tmp_path: Path) -> None:
    members = [_file(n, c) for n, c in good_members.items()]
    without_wasm = [m for m in members if m[0].name != "/policy.wasm"]
    _expect_bundle_error(
        without_wasm, "bundle <bytes>: policy.wasm: missing (build it with `opa build -t wasm`)"
    )
    _expect_bundle_error(
        [*members, _file("/policy.wasm", b"again")], "bundle <bytes>: member policy.wasm: appears twice"
    )
    bad_data = [m for m in members if m[0].name != "/data.json"] + [_file("/data.json", b"{not json")]
    with pytest.raises(BundleError, match=r"^bundle <bytes>: data\.json: invalid JSON: "):
        read_bundle(_tarball(bad_data))
    conflict = [*members, _file("/org/data.json", b"1"), _file("/data2/data.json", b"{}")]
    conflict = [m for m in conflict if m[0].name != "/data.json"] + [_file("/data.json", b'{"org": 2}')]
    _expect_bundle_error(conflict, "bundle <bytes>: org/data.json: data conflicts at key 'org'")
    yaml = [*members, _file("/x/data.yaml", b"a: 1")]
    _expect_bundle_error(yaml, "bundle <bytes>: x/data.yaml: YAML data is not supported; use `opa build`")
    with pytest.raises(BundleError, match=r"^bundle <bytes>: not a readable tar\.gz: "):
        read_bundle(b"this is not gzip")
    missing = tmp_path / "absent.tar.gz"
    with pytest.raises(BundleError, match=rf"^bundle {missing}: cannot read: No such file or directory$"):
        read_bundle(missing)


def test_manifest_must_name_one_module(good_members: dict[str, bytes]) -> None:
    manifest = json.loads(good_members["/.manifest"])
    manifest["wasm"].append({"entrypoint": "demo/other", "module": "/other.wasm"})
    members = [_file(n, c) for n, c in good_members.items() if n != "/.manifest"]
    members.append(_file("/.manifest", json.dumps(manifest).encode()))
    _expect_bundle_error(members, "bundle <bytes>: .manifest: expected one wasm module, found 2")


def test_the_rego_build_given_to_the_embedded_engine_says_which_build_it_needs(
    good_members: dict[str, bytes],
) -> None:
    """What an agent pointed at ``bundles/NAME`` (OPA's default resource) downloads: no wasm module,
    no ``wasm`` in the manifest, the Rego sources."""
    manifest = json.loads(good_members["/.manifest"])
    manifest.pop("wasm", None)
    rego_build = {n: c for n, c in good_members.items() if n not in ("/policy.wasm", "/.manifest")}
    rego_build["/.manifest"] = json.dumps(manifest).encode()
    assert any(name.endswith(".rego") for name in rego_build)
    _expect_bundle_error(
        [_file(n, c) for n, c in rego_build.items()],
        "bundle <bytes>: policy.wasm: missing: this is the Rego build, which OPA reads; the embedded "
        "engine needs the wasm build (`opa build -t wasm`; pyagent server serves it at bundles/NAME/wasm, "
        "the agent's default resource)",
    )
