"""``semver.compare`` and ``semver.is_valid``, as OPA's ``internal/semver`` parses and orders versions.

A version is semver.org's ``MAJOR.MINOR.PATCH[-PRERELEASE][+METADATA]`` (no leading zeros in numbers),
optionally after a ``v``, with int64 parts. Metadata is ignored in the order; numeric pre-release
identifiers sort below others, compared as Go's saturating ``strconv.Atoi`` reads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyagent.engines.wasm.builtins._operands import (
    INT64_MAX,
    BuiltinError,
    UnsupportedBuiltinUse,
    string_operand,
)

__all__ = ["compare", "is_valid"]

_NUMBER = r"(?:0|[1-9][0-9]*)"
_PRE = rf"(?:{_NUMBER}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_VERSION = re.compile(
    rf"v?({_NUMBER})\.({_NUMBER})\.({_NUMBER})(?:-({_PRE}(?:\.{_PRE})*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)


@dataclass(frozen=True)
class _Version:
    major: int
    minor: int
    patch: int
    prerelease: str


def _parse(text: str) -> _Version | None:
    """The version ``text`` holds (semver.org's grammar, an optional ``v``, int64 parts), or None."""
    match = _VERSION.fullmatch(text)
    if match is None:
        return None
    major, minor, patch = (int(match.group(i)) for i in (1, 2, 3))
    if max(major, minor, patch) > INT64_MAX:
        return None
    return _Version(major, minor, patch, match.group(4) or "")


def _numeric(identifier: str) -> bool:
    return bool(identifier) and all("0" <= c <= "9" for c in identifier)


def _compare_prerelease(a: str, b: str) -> int:
    if a == b:
        return 0
    if not a or not b:
        return 1 if not a else -1  # a release sorts above its pre-releases
    left, right = a.split("."), b.split(".")
    for position, (x, y) in enumerate(zip(left, right, strict=False), 1):
        if _numeric(x) != _numeric(y):
            return -1 if _numeric(x) else 1
        if _numeric(x):
            ix, iy = min(int(x), INT64_MAX), min(int(y), INT64_MAX)  # Go's Atoi saturates
            if ix != iy:
                return 1 if ix > iy else -1
            if x != y and len(left) == len(right) == position:
                raise UnsupportedBuiltinUse("pre-release numbers both beyond int64 (OPA never answers)")
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
