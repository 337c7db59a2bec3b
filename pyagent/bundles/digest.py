"""File digests computed the way OPA computes them for bundle signatures.

OPA's bundle signing spec hashes two kinds of file differently:

* **structured** files, named ``data.json``, ``data.yaml``, ``.manifest`` or ``.signatures.json``
  (by base name), are parsed as JSON (numbers kept as written) and the hash is taken over a canonical
  text: objects as ``{`` + ``key:value`` pairs sorted by key, joined by ``,`` + ``}``; arrays as ``[`` +
  values joined by ``,`` + ``]``; strings, numbers, ``true``/``false``/``null`` as Go's JSON encoder
  writes them without HTML escaping. So whitespace and key order do not change the digest.
* every other file (``policy.wasm``, ``*.rego``) is hashed as its raw bytes.

This is an independent implementation of that description, checked in the tests against digests
written by the pinned ``opa build``. It is stricter than OPA where strictness can only refuse a
bundle, never accept one OPA would refuse: invalid UTF-8, unpaired surrogates, ``NaN``/``Infinity``
and duplicate object keys are errors here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from pyagent.jsonio import unique_keys

__all__ = [
    "ACCEPTED_HASHES",
    "DigestError",
    "file_digest",
    "is_structured",
]

STRUCTURED_NAMES = frozenset({"data.json", "data.yaml", ".manifest", ".signatures.json"})

#: Hash algorithms accepted in a signature's file list, by OPA's names.
ACCEPTED_HASHES: dict[str, Callable[[], Any]] = {
    "SHA-256": hashlib.sha256,
    "SHA-384": hashlib.sha384,
    "SHA-512": hashlib.sha512,
}
#: Names OPA accepts that are refused here: broken (MD5, SHA-1) or truncated variants nobody uses.
REFUSED_HASHES = frozenset({"MD5", "SHA-1", "SHA-224", "SHA-512-224", "SHA-512-256"})

_BOM = b"\xef\xbb\xbf"


class DigestError(ValueError):
    """The file cannot be hashed as OPA would (unparseable structured file, unknown algorithm)."""


class TooDeepToHash(DigestError):
    """A JSON file nested deeper than can be read: unreadable here, which says nothing of tampering."""


class NotCanonicalJson(DigestError):
    """A JSON file OPA would read otherwise than this host (a key twice, NaN, not UTF-8): edited."""


class _Number(str):
    """A JSON number kept as its literal text, as Go's ``json.Number`` keeps it."""

    __slots__ = ()


def is_structured(name: str) -> bool:
    """True for the files OPA hashes in canonical JSON form."""
    return name.rsplit("/", 1)[-1] in STRUCTURED_NAMES


def file_digest(name: str, content: bytes, algorithm: str) -> str:
    """The lower-case hex digest of one bundle file, as it appears in ``.signatures.json``."""
    factory = ACCEPTED_HASHES.get(algorithm)
    if factory is None:
        why = "too weak" if algorithm in REFUSED_HASHES else "unknown"
        raise DigestError(f"{name}: hash algorithm {algorithm!r} refused ({why})")
    hasher = factory()
    if is_structured(name):
        hasher.update(canonical_json(name, content))
    else:
        hasher.update(content)
    return str(hasher.hexdigest())


def canonical_json(name: str, content: bytes) -> bytes:
    """The canonical text OPA hashes for a structured file."""
    if content.startswith(_BOM):
        content = content[len(_BOM) :]
    try:
        text = content.decode("utf-8")
        value = json.loads(
            text,
            parse_int=_Number,
            parse_float=_Number,
            parse_constant=_refuse_constant,
            object_pairs_hook=unique_keys,
        )
        out: list[str] = []
        _walk(value, out)
    except RecursionError as err:
        raise TooDeepToHash(f"{name}: JSON nested too deeply to read") from err
    except (UnicodeError, ValueError) as err:
        raise NotCanonicalJson(f"{name}: not canonical JSON: {err}") from err
    return "".join(out).encode("utf-8")


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _walk(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for index, key in enumerate(sorted(value)):
            if index:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _walk(value[key], out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _walk(item, out)
        out.append("]")
    elif isinstance(value, _Number):
        out.append(str.__str__(value))
    elif isinstance(value, str):
        out.append(_string(value))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    else:  # pragma: no cover - json.loads makes nothing else
        raise ValueError(f"unexpected JSON value {value!r}")


def _string(text: str) -> str:
    """A string as Go's encoder writes it with HTML escaping off.

    Python's ``json.dumps(ensure_ascii=False)`` escapes exactly what Go escapes (``"``, ``\\``, control
    characters, with ``\\b``/``\\f``/``\\n``/``\\r``/``\\t`` short forms and lower-case ``\\u00XX``
    otherwise) except U+2028 and U+2029, which Go always escapes.
    """
    if any("\ud800" <= char <= "\udfff" for char in text):
        raise ValueError("unpaired UTF-16 surrogate in a string")
    encoded = json.dumps(text, ensure_ascii=False)
    return encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
