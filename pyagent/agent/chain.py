"""The decision log's hash chain: canonical JSON, record digests, and the optional HMAC key.

Each record's digest is SHA-256 (or HMAC-SHA256 under a key) over the canonical JSON of the whole
record, which includes its sequence number, its id and the digest of the record before it
(``prev_hash``; the first record of a chain points at :data:`GENESIS`, 64 zeros). Canonical JSON is
UTF-8, keys sorted, no whitespace, no NaN: the same record always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyagent.config.files import read_secret
from pyagent.errors import InvalidInputError

GENESIS = "0" * 64
MAC_PLAIN = "sha256"
MAC_KEYED = "hmac-sha256"
MIN_KEY_CHARS = 32


def canonical_json(value: Any) -> bytes:
    """The canonical encoding hashed by the chain (and sent to the collector)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ChainKey:
    """How record digests are made: plain SHA-256 (``secret`` None) or HMAC-SHA256 under ``secret``."""

    secret: bytes | None = None

    @property
    def mac(self) -> str:
        return MAC_KEYED if self.secret is not None else MAC_PLAIN

    @property
    def key_id(self) -> str | None:
        """A short public fingerprint of the key, so that a wrong key is told apart from tampering."""
        if self.secret is None:
            return None
        return hmac.new(self.secret, b"pyagent decision log key id", hashlib.sha256).hexdigest()[:16]

    def digest(self, record: Any) -> str:
        data = canonical_json(record)
        if self.secret is None:
            return sha256_hex(data)
        return hmac.new(self.secret, data, hashlib.sha256).hexdigest()


def load_key(path: Path | None) -> ChainKey:
    """The chain key from ``hmac_key_file`` (one line, at least 32 characters), or no key."""
    if path is None:
        return ChainKey()
    secret = read_secret(path, what="decision log key (agent.hmac_key_file)")
    if len(secret) < MIN_KEY_CHARS:
        raise InvalidInputError(
            f"{path}: the decision log key must be at least {MIN_KEY_CHARS} characters "
            "(e.g. `openssl rand -hex 32`)"
        )
    return ChainKey(secret.encode("utf-8"))
