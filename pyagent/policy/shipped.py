"""Where pyagent's own files are: in a checkout, or inside an installed package.

A checkout (this repository, or an editable install of it) has ``versions.mk``, ``policies/`` and
``build/bundle.tar.gz`` (from ``make policy``) beside the ``pyagent`` package. A wheel has none of
that: its build hook (``setup.py``) stages the compiled policy, the policy sources, the docs and the
pinned OPA version under ``pyagent/share/`` instead.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
SHARE = PACKAGE / "share"


def checkout() -> Path | None:
    """The repository this package runs from, when it does (not an installed copy)."""
    root = PACKAGE.parent
    if (root / "versions.mk").is_file() and (root / "policies").is_dir():
        return root
    return None


def policy_sources() -> tuple[Path, Path]:
    """The shipped policy's Rego and data directories: the checkout's, else the installed copy."""
    root = checkout()
    base = root / "policies" if root else SHARE / "policies"
    return base / "rego", base / "data"


def checkout_bundle() -> Path | None:
    """``build/bundle.tar.gz`` of the checkout (``make policy``), when this is one."""
    root = checkout()
    return root / "build" / "bundle.tar.gz" if root else None


def packaged_bundle() -> Path:
    """The compiled default policy inside an installed package (built with the wheel)."""
    return SHARE / "bundle.tar.gz"


def default_bundle() -> Path:
    """The bundle decided with when none is named: the checkout's build, else the package's."""
    return checkout_bundle() or packaged_bundle()


@functools.cache
def pinned_opa_version() -> str | None:
    """The OPA version pinned in versions.mk (a checkout), or the one the wheel was built with."""
    root = checkout()
    if root is not None:
        try:
            text = (root / "versions.mk").read_text(encoding="utf-8")
        except OSError:
            return None
        match = re.search(r"^OPA_VERSION\s*:=\s*(\S+)", text, re.MULTILINE)
        return match.group(1) if match else None
    try:
        info = json.loads((SHARE / "build.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = info.get("opa_version") if isinstance(info, dict) else None
    return version if isinstance(version, str) else None
