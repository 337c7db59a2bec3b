"""Attacks on a signed bundle, shared by the embedded-engine, CLI and OPA-server tests.

Each builder takes the path of a genuine signed bundle and writes the attacker's version next to
``out``. The payload of most attacks is the same: drop the European Commission's TikTok rule from
the policy data, so that a banned app is allowed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pyagent.policy import index
from tests.bundles import forge
from tests.bundles.forge import Members


def without_tiktok_rule(data_json: bytes) -> bytes:
    """The data without the rule, and its ban index rebuilt to match, as an attacker would (the index
    is no secret: only the signature stands in the way)."""
    data: dict[str, Any] = json.loads(data_json)
    del data["pyagent"]["organizations"]["eu-commission"]["rules"]["tiktok"]
    if index.ROOT in data:
        data[index.ROOT] = index.build({k: v for k, v in data.items() if k != index.ROOT})
    return json.dumps(data).encode()


def tampered_members(genuine: Path) -> Members:
    """The genuine members with the TikTok rule dropped from data.json (signature untouched)."""
    members = forge.read_tar(genuine)
    return forge.replaced(members, "data.json", without_tiktok_rule(forge.member(members, "data.json")))


def tampered(genuine: Path, out: Path) -> Path:
    return forge.write_tar(out, tampered_members(genuine))


def extra_exemption(genuine: Path, out: Path) -> Path:
    """An extra data file that exempts the device, next to the untouched signed files."""
    exemption = {
        "EX-EVIL": {
            "device_id": "fr-brussels-0042",
            "organization": "eu-commission",
            "ban": "tiktok",
            "until": "2099-01-01T00:00:00Z",
            "reason": "attacker",
            "approved_by": "nobody",
        }
    }
    members = forge.read_tar(genuine)
    return forge.write_tar(
        out, [*members, ("/pyagent/exemptions/evil/data.json", json.dumps(exemption).encode())]
    )


def stripped(genuine: Path, out: Path) -> Path:
    """The tampered bundle with its signature file removed."""
    return forge.write_tar(out, forge.without(tampered_members(genuine), ".signatures.json"))


def alg_none(genuine: Path, out: Path) -> Path:
    """The tampered bundle with a fresh, correct file list under an unsigned (``alg: none``) JWT."""
    members = tampered_members(genuine)
    return forge.write_tar(out, forge.resigned(members, {"alg": "none", "typ": "JWT"}, lambda _: b""))


def hs256_with_public_key(genuine: Path, out: Path, public_pem: bytes) -> Path:
    """The classic confusion: an HS256 JWT whose HMAC secret is the verifier's public key PEM."""
    members = tampered_members(genuine)
    header = {"alg": "HS256", "typ": "JWT"}
    return forge.write_tar(out, forge.resigned(members, header, forge.hmac_signer(public_pem)))


def resigned_with(genuine: Path, out: Path, sign: forge.Signer, alg: str = "RS256") -> Path:
    """The tampered bundle re-signed, correctly, with a key of the attacker's."""
    members = tampered_members(genuine)
    return forge.write_tar(out, forge.resigned(members, {"alg": alg, "typ": "JWT"}, sign))


PATCH = b'{"data": [{"op": "upsert", "path": "/pyagent/exemptions/EX-EVIL", "value": {"device_id": "x"}}]}'


def delta(out: Path) -> Path:
    """A delta bundle (a JSON patch to the data, no signature): OPA before v1.21.3 skipped signature
    checks for delta bundles; OPA v1.22.4 refuses them when verifying."""
    manifest = json.dumps({"revision": "evil", "roots": ["pyagent"]}).encode()
    return forge.write_tar(out, [("/.manifest", manifest), ("/patch.json", PATCH)])


def signed_plus_patch(genuine: Path, out: Path) -> Path:
    """The genuine signed bundle with a patch.json added."""
    return forge.write_tar(out, [*forge.read_tar(genuine), ("/patch.json", PATCH)])
