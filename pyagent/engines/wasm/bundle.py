"""Read an OPA bundle built for the wasm target (``opa build -t wasm``), safely and entirely in memory.

Nothing is extracted to disk. Every member must be a regular file or a directory with a clean relative
name; links, devices, ``..``/``.``/empty path segments, backslashes, NUL bytes, duplicates, and members
or totals over the size bounds are refused. A single leading ``/`` is OPA's own convention (``opa
build`` writes ``/policy.wasm``, ``/data.json``) and means the bundle root, as OPA reads it; so does a
leading ``./`` (``tar -C dir .``).

Data: every ``data.json`` is merged into the data document at its directory's path, as OPA does;
conflicting values are an error. ``data.yaml`` is refused (``opa build`` always writes JSON).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from pyagent.errors import NoDecisionError

__all__ = [
    "DEFAULT_LIMITS",
    "BundleError",
    "BundleLimits",
    "WasmBundle",
    "bundle_from_members",
    "read_archive",
    "read_bundle",
    "read_members",
]


class BundleError(NoDecisionError):
    """The bundle is unreadable, unsafe or incomplete. The message names the file and the problem."""


@dataclass(frozen=True)
class BundleLimits:
    """Upper bounds on what a bundle may hold.

    The archive and its members are held in memory, so the defaults keep a bundle's cost under
    256 MB whatever it holds (a policy bundle is a few MiB): the decompressed stream is counted and
    the headers bounded while it is inflated, before ``tarfile`` buffers anything (:mod:`.tarscan`).
    """

    max_archive_bytes: int = 64 * 1024 * 1024
    max_member_bytes: int = 128 * 1024 * 1024
    max_total_bytes: int = 128 * 1024 * 1024
    max_members: int = 10_000
    max_header_bytes: int = 64 * 1024
    """A pax or GNU long-name header (Python's tarfile reads one whole)."""
    max_path_chars: int = 1024


DEFAULT_LIMITS = BundleLimits()


@dataclass(frozen=True)
class WasmBundle:
    """The parts of a wasm bundle the embedded engine uses. ``files`` holds every file by clean path."""

    wasm: bytes
    data: dict[str, Any]
    manifest: dict[str, Any]
    revision: str
    files: dict[str, bytes] = field(repr=False)

    @property
    def entrypoints(self) -> list[str]:
        """Entrypoints the manifest declares for the module (``"pkg/rule"``), in manifest order."""
        wasm = self.manifest.get("wasm")
        if not isinstance(wasm, list):
            return []
        return [str(m["entrypoint"]) for m in wasm if isinstance(m, dict) and "entrypoint" in m]


def read_bundle(
    source: str | os.PathLike[str] | bytes, *, limits: BundleLimits = DEFAULT_LIMITS
) -> WasmBundle:
    """Read a ``bundle.tar.gz`` from a path or from its bytes."""
    label = "<bytes>" if isinstance(source, bytes) else os.fspath(source)
    raw = source if isinstance(source, bytes) else read_archive(label, limits=limits)
    return bundle_from_members(read_members(raw, label=label, limits=limits), label=label)


def read_archive(path: str | os.PathLike[str], *, limits: BundleLimits = DEFAULT_LIMITS) -> bytes:
    """The bytes of a bundle archive on disk, refused when over ``limits.max_archive_bytes``."""
    label = os.fspath(path)
    raw = _read_archive(Path(label), limits, label)
    if len(raw) > limits.max_archive_bytes:
        raise BundleError(f"bundle {label}: archive is over {limits.max_archive_bytes} bytes")
    return raw


def read_members(
    raw: bytes, *, label: str = "<bytes>", limits: BundleLimits = DEFAULT_LIMITS
) -> dict[str, bytes]:
    """Every regular file of a ``bundle.tar.gz`` by clean path, with all the safety checks above.

    Signature verification (:mod:`pyagent.bundles`) works on exactly this mapping, so what is
    verified is what :func:`bundle_from_members` then loads.
    """
    if len(raw) > limits.max_archive_bytes:
        raise BundleError(f"bundle {label}: archive is over {limits.max_archive_bytes} bytes")
    return _members(raw, limits, label)


def bundle_from_members(files: Mapping[str, bytes], *, label: str = "<bytes>") -> WasmBundle:
    """The wasm bundle made of ``files`` (as :func:`read_members` returns them)."""
    members = dict(files)
    manifest = _json_member(members, ".manifest", label, default={})
    if not isinstance(manifest, dict):
        raise BundleError(f"bundle {label}: .manifest: not a JSON object")
    revision = manifest.get("revision", "")
    if not isinstance(revision, str):
        raise BundleError(f"bundle {label}: .manifest: revision is not a string")
    wasm_path = _module_path(manifest, label)
    if wasm_path not in members:
        if "wasm" not in manifest and any(name.endswith(".rego") for name in members):
            raise BundleError(
                f"bundle {label}: {wasm_path}: missing: this is the Rego build, which OPA reads; the "
                "embedded engine needs the wasm build (`opa build -t wasm`; pyagent server serves it at "
                "bundles/NAME/wasm, the agent's default resource)"
            )
        raise BundleError(f"bundle {label}: {wasm_path}: missing (build it with `opa build -t wasm`)")
    return WasmBundle(
        wasm=members[wasm_path],
        data=_data(members, label),
        manifest=manifest,
        revision=revision,
        files=members,
    )


def _read_archive(path: Path, limits: BundleLimits, label: str) -> bytes:
    try:
        with path.open("rb") as handle:
            raw = handle.read(limits.max_archive_bytes + 1)
    except OSError as err:
        raise BundleError(f"bundle {label}: cannot read: {err.strerror or err}") from err
    return raw


def _clean_name(name: str, label: str) -> str:
    shown = json.dumps(name)
    if "\\" in name or "\x00" in name:
        raise BundleError(f"bundle {label}: member {shown}: backslash or NUL in its name")
    rest = name[1:] if name.startswith("/") else name[2:] if name.startswith("./") else name
    parts = rest.split("/")
    if parts and parts[-1] == "":
        parts.pop()  # a directory entry's trailing slash
    if not parts or parts == ["."]:
        return ""  # the archive's root directory, which `tar -C DIR .` writes first (OPA skips it too)
    if any(part in ("", ".", "..") for part in parts):
        raise BundleError(f"bundle {label}: member {shown}: path is absolute or escapes the bundle root")
    return "/".join(parts)


def _members(raw: bytes, limits: BundleLimits, label: str) -> dict[str, bytes]:
    # Imported here: a bundle whose members come from the cache (bundlecache.py) needs none of them.
    import gzip
    import io
    import tarfile
    import zlib

    from pyagent.engines.wasm.tarscan import BLOCK, Budget, ScanRefused, scan

    budget = Budget(
        # The members' bytes, plus a header and padding for each, plus tar's end-of-archive blocking.
        max_decompressed=limits.max_total_bytes + 2 * BLOCK * limits.max_members + 20 * BLOCK,
        max_members=limits.max_members,
        max_header_bytes=limits.max_header_bytes,
        max_member_bytes=limits.max_member_bytes,
        max_total_bytes=limits.max_total_bytes,
    )
    try:
        scan(raw, budget)
    except ScanRefused as err:
        raise BundleError(f"bundle {label}: {err}") from err
    files: dict[str, bytes] = {}
    total = count = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as archive:
            for member in archive:
                count += 1
                if count > limits.max_members:
                    raise BundleError(f"bundle {label}: more than {limits.max_members} members")
                if len(member.name) > limits.max_path_chars:
                    shown = json.dumps(member.name[:60])
                    raise BundleError(
                        f"bundle {label}: member {shown}...: path over {limits.max_path_chars} characters"
                    )
                name = _clean_name(member.name, label)
                if member.isdir():
                    continue
                if not name:
                    shown = json.dumps(member.name)
                    raise BundleError(f"bundle {label}: member {shown}: a file named as the bundle root")
                if not member.isreg() or member.issparse():
                    kind = "link" if member.issym() or member.islnk() else "special file"
                    raise BundleError(f"bundle {label}: member {name}: is a {kind}, not a regular file")
                total += member.size
                if member.size > limits.max_member_bytes:
                    raise BundleError(
                        f"bundle {label}: member {name}: {member.size} bytes, over {limits.max_member_bytes}"
                    )
                if total > limits.max_total_bytes:
                    raise BundleError(f"bundle {label}: member {name}: members total over the bound")
                if name in files:
                    raise BundleError(f"bundle {label}: member {name}: appears twice")
                handle = archive.extractfile(member)
                if handle is None:
                    raise BundleError(f"bundle {label}: member {name}: unreadable")
                content = handle.read(member.size + 1)
                if len(content) != member.size:
                    raise BundleError(f"bundle {label}: member {name}: truncated")
                files[name] = content
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError, OSError) as err:
        raise BundleError(f"bundle {label}: not a readable tar.gz: {err}") from err
    return files


def _json_member(files: Mapping[str, bytes], name: str, label: str, default: Any = None) -> Any:
    if name not in files:
        if default is None:
            raise BundleError(f"bundle {label}: {name}: missing")
        return default
    try:  # (NaN and Infinity, which Python's reader takes, are no JSON: OPA refuses them too)
        return json.loads(files[name], parse_constant=_not_a_number)
    except (ValueError, UnicodeDecodeError) as err:
        raise BundleError(f"bundle {label}: {name}: invalid JSON: {err}") from err
    except RecursionError as err:
        raise BundleError(f"bundle {label}: {name}: JSON nested too deeply") from err


def _not_a_number(word: str) -> NoReturn:
    raise ValueError(f"{word} is not a JSON number")


def _module_path(manifest: Mapping[str, Any], label: str) -> str:
    entries = manifest.get("wasm")
    if entries is None:
        return "policy.wasm"
    modules: set[str] = set()
    if isinstance(entries, list):
        modules = {str(e.get("module", "")) for e in entries if isinstance(e, dict)}
    if len(modules) != 1:
        raise BundleError(f"bundle {label}: .manifest: expected one wasm module, found {len(modules)}")
    return _clean_name(modules.pop(), label)


def bundle_data(files: Mapping[str, bytes], label: str) -> dict[str, Any]:
    """The data document of a bundle's members (every ``data.json``, merged at its path), whatever
    its target: a rego build's data is read as a wasm build's."""
    return _data(files, label)


def _data(files: Mapping[str, bytes], label: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in sorted(files):
        base = name.rsplit("/", 1)[-1]
        if base in ("data.yaml", "data.yml"):
            raise BundleError(f"bundle {label}: {name}: YAML data is not supported; use `opa build`")
        if base != "data.json":
            continue
        value = _json_member(files, name, label)
        path = name.split("/")[:-1]
        for key in reversed(path):
            value = {key: value}
        if not isinstance(value, dict):
            raise BundleError(f"bundle {label}: {name}: the root data document must be an object")
        _merge(data, value, name, label)
    return data


def _merge(into: dict[str, Any], value: Mapping[str, Any], name: str, label: str) -> None:
    for key, item in value.items():
        if key not in into:
            into[key] = item
        elif isinstance(into[key], dict) and isinstance(item, dict):
            _merge(into[key], item, name, label)
        else:
            raise BundleError(f"bundle {label}: {name}: data conflicts at key {key!r}")
