"""``semver.compare`` and ``semver.is_valid``, as OPA's ``internal/semver`` parses and orders versions.

A version is ``MAJOR.MINOR.PATCH`` (optionally after a ``v``; each part a base-10 int64, leading
zeros allowed), then ``-PRERELEASE`` and ``+METADATA`` of dot-separated ``[0-9A-Za-z-]+`` identifiers.
Metadata is ignored in the order; numeric pre-release identifiers sort below others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyagent.engines.wasm.builtins._operands import INT64_MAX, INT64_MIN, BuiltinError, string_operand

__all__ = ["compare", "is_valid"]

_IDENTIFIERS = re.compile(r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*")
_GO_INT = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class _Version:
    major: int
    minor: int
    patch: int
    prerelease: str


def _go_int(text: str) -> int | None:
    """Go's ``strconv.ParseInt(text, 10, 64)``, or None when it fails."""
    if not _GO_INT.fullmatch(text):
        return None
    value = int(text)
    return value if INT64_MIN <= value <= INT64_MAX else None


def _parse(text: str) -> _Version | None:
    version = text.removeprefix("v")
    version, _, metadata = version.partition("+")
    if metadata and not _IDENTIFIERS.fullmatch(metadata):
        return None
    version, _, prerelease = version.partition("-")
    if prerelease and not _IDENTIFIERS.fullmatch(prerelease):
        return None
    if version.count(".") != 2:
        return None
    parts = [_go_int(part) for part in version.split(".")]
    if None in parts:
        return None
    major, minor, patch = (p for p in parts if p is not None)
    return _Version(major, minor, patch, prerelease)


def _numeric(identifier: str) -> bool:
    return bool(identifier) and all("0" <= c <= "9" for c in identifier)


def _compare_prerelease(a: str, b: str) -> int:
    if a == b:
        return 0
    if not a or not b:
        return 1 if not a else -1  # a release sorts above its pre-releases
    left, right = a.split("."), b.split(".")
    for x, y in zip(left, right, strict=False):
        if _numeric(x) != _numeric(y):
            return -1 if _numeric(x) else 1
        if _numeric(x):
            ix, iy = min(int(x), INT64_MAX), min(int(y), INT64_MAX)  # Go's Atoi saturates
            if ix != iy:
                return 1 if ix > iy else -1
        elif x != y:
            return 1 if x > y else -1
    return (len(left) > len(right)) - (len(left) < len(right))


def _sign(a: int, b: int) -> int:
    return (a > b) - (a < b)


def compare(a: object, b: object) -> int:
    """``semver.compare(a, b)``: -1, 0 or 1."""
    first, second = string_operand(a, 1), string_operand(b, 2)
    va = _parse(first)
    if va is None:
        raise BuiltinError(f"operand 1: string {first} is not a valid SemVer")
    vb = _parse(second)
    if vb is None:
        raise BuiltinError(f"operand 2: string {second} is not a valid SemVer")
    for x, y in ((va.major, vb.major), (va.minor, vb.minor), (va.patch, vb.patch)):
        if x != y:
            return _sign(x, y)
    return _compare_prerelease(va.prerelease, vb.prerelease)


def is_valid(value: object) -> bool:
    """``semver.is_valid(v)``: whether ``v`` is a string holding a valid version (never an error)."""
    return isinstance(value, str) and _parse(value) is not None
