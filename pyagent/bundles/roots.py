"""A bundle's ``roots`` (its ``.manifest``), checked as OPA checks them before it activates a bundle.

``roots`` lists the paths under ``data`` that the bundle owns (default ``[""]``: all of it). They must
be strings that do not overlap one another, and every data document, Rego package and wasm entrypoint
of the bundle must lie under one of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pyagent.bundles.errors import BundleRejected, RejectionKind, reject

_PACKAGE = re.compile(rb"^[ \t]*package[ \t]+([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)", re.M)


def bundle_roots(manifest: Mapping[str, Any], label: str) -> list[str]:
    roots = manifest.get("roots", [""])
    if not isinstance(roots, list) or not all(isinstance(root, str) for root in roots):
        raise reject(RejectionKind.OUTSIDE_ROOTS, label, ".manifest: roots must be a list of strings")
    clean = [root.strip("/") for root in roots]
    for i, first in enumerate(clean):
        for second in clean[i + 1 :]:
            if _under(first, second) or _under(second, first):
                raise reject(
                    RejectionKind.OUTSIDE_ROOTS, label, f".manifest: roots {first!r} and {second!r} overlap"
                )
    return clean


def _under(path: str, root: str) -> bool:
    return root == "" or path == root or path.startswith(root + "/")


def check_roots(files: Mapping[str, bytes], label: str) -> list[str]:
    """The bundle's roots, after checking that every file of ``files`` (clean path to bytes) lies
    under them; raise ``BundleRejected`` (``outside-roots``) otherwise."""
    try:
        manifest = json.loads(files.get(".manifest", b"{}"))
    except (ValueError, RecursionError):
        raise reject(RejectionKind.OUTSIDE_ROOTS, label, ".manifest: not JSON") from None
    if not isinstance(manifest, dict):
        raise reject(RejectionKind.OUTSIDE_ROOTS, label, ".manifest: not a JSON object")
    roots = bundle_roots(manifest, label)
    if "" in roots:
        return roots
    for name, content in files.items():
        base = name.rsplit("/", 1)[-1]
        directory = name[: -len(base)].strip("/")
        if base == "data.json":
            try:
                value = json.loads(content)
            except (ValueError, RecursionError):
                raise reject(RejectionKind.OUTSIDE_ROOTS, label, f"{name}: not JSON") from None
            _data_inside(directory, value, roots, label, name)
        elif base.endswith(".rego"):
            match = _PACKAGE.search(content)
            package = match.group(1).decode().replace(".", "/") if match else ""
            _inside(package, roots, label, f"{name}: package {package.replace('/', '.') or '?'}")
    wasm = manifest.get("wasm")
    for entry in wasm if isinstance(wasm, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("entrypoint"), str):
            _inside(entry["entrypoint"], roots, label, f"entrypoint {entry['entrypoint']}")
    return roots


def _inside(path: str, roots: list[str], label: str, what: str) -> None:
    if not any(_under(path, root) for root in roots):
        raise _outside(label, what, roots)


def _outside(label: str, what: str, roots: list[str]) -> BundleRejected:
    return reject(
        RejectionKind.OUTSIDE_ROOTS, label, f"{what}: outside the bundle's roots {json.dumps(roots)}"
    )


def _data_inside(path: str, value: Any, roots: list[str], label: str, name: str) -> None:
    if any(_under(path, root) for root in roots):
        return
    if isinstance(value, dict) and any(_under(root, path) for root in roots):
        for key, item in value.items():  # an ancestor of a root: each key must lead into a root
            _data_inside(f"{path}/{key}" if path else str(key), item, roots, label, name)
        return
    raise _outside(label, f"{name}: data at /{path}", roots)
