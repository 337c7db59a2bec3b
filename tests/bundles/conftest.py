"""Fixtures for signed-bundle tests: keys, bundles signed by the pinned ``opa build``, a trusting agent.

The signer's key pair is the organisation's; the attacker has write access to the bundle and a key
pair of their own, never the signer's private key (tests that need a legitimately signed oddity sign
with the signer's key explicitly, and say so).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyagent.bundles.build import build_signed_bundle
from pyagent.bundles.errors import BundleRejected
from pyagent.engines.base import EngineSettings
from pyagent.engines.embedded import EmbeddedEngine
from tests.bundles import tally
from tests.helpers.opa_server import POLICY_DIRS

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / "examples" / "reports" / "eu-commission-personal-enrolled-tiktok.json"
AT = "2023-03-16T09:30:00Z"
TRUST_VARS = (
    "PYAGENT_BUNDLE_VERIFICATION_KEY",
    "PYAGENT_BUNDLE_VERIFICATION_ALG",
    "PYAGENT_BUNDLE_VERIFICATION_KEY_ID",
    "PYAGENT_BUNDLE_SCOPE",
    "PYAGENT_BUNDLE_FALLBACK",
    "PYAGENT_STATE_DIR",
)


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path
    key: Any


@dataclass(frozen=True)
class Keys:
    signer: KeyPair
    attacker: KeyPair
    signer_ec: KeyPair


def _write_pair(directory: Path, name: str, key: Any) -> KeyPair:
    private = directory / f"{name}.pem"
    public = directory / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return KeyPair(private, public, key)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    directory = tmp_path_factory.mktemp("keys")
    return Keys(
        signer=_write_pair(directory, "signer", rsa.generate_private_key(65537, 2048)),
        attacker=_write_pair(directory, "attacker", rsa.generate_private_key(65537, 2048)),
        signer_ec=_write_pair(directory, "signer-ec", ec.generate_private_key(ec.SECP256R1())),
    )


Build = Callable[..., Path]


@pytest.fixture(scope="session")
def signed(keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Build:
    """``signed(serial, target=, scope=, key=, alg=, revision=, dirs=)``: a bundle signed by the pinned
    ``opa build`` through :func:`build_signed_bundle`, built once per distinct set of arguments."""
    directory = tmp_path_factory.mktemp("signed")
    cache: dict[tuple[Any, ...], Path] = {}

    def build(
        serial: int,
        *,
        target: str = "wasm",
        scope: str | None = None,
        key: KeyPair | None = None,
        alg: str = "RS256",
        revision: str | None = "2023.03.15-signed",
        dirs: tuple[Path, ...] = POLICY_DIRS,
    ) -> Path:
        pair = key or keys.signer
        args = (serial, target, scope, pair.private, alg, revision, dirs)
        if args not in cache:
            out = directory / f"bundle-{len(cache)}-{serial}-{target}.tar.gz"
            build_signed_bundle(
                [str(d) for d in dirs],
                out,
                signing_key=pair.private,
                algorithm=alg,
                revision=revision,
                serial=serial,
                scope=scope,
                target=target,
            )
            cache[args] = out
        return cache[args]

    return build


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def trusting(keys: Keys, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The agent trusts the signer's public key (RS256, no scope), with its state in ``state_dir``."""
    for name in TRUST_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYAGENT_BUNDLE_VERIFICATION_KEY", str(keys.signer.public))
    monkeypatch.setenv("PYAGENT_STATE_DIR", str(state_dir))
    yield


@pytest.fixture(autouse=True)
def _no_ambient_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TRUST_VARS:
        monkeypatch.delenv(name, raising=False)


def load(bundle: Path) -> EmbeddedEngine:
    """The embedded engine on ``bundle``, configured from the environment as the CLI would be."""
    return EmbeddedEngine.from_settings(EngineSettings(engine="embedded", bundle=str(bundle)))


def refused(bundle: Path, surface: str = "embedded") -> BundleRejected:
    """Load ``bundle`` expecting a refusal; count it; return the error for exact assertions."""
    with pytest.raises(BundleRejected) as caught:
        load(bundle)
    tally.record(surface, str(caught.value.kind))
    return caught.value


def report() -> dict[str, Any]:
    return dict(json.loads(REPORT.read_text()))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not tally.REJECTIONS:
        return
    path = tally.write_report()
    terminalreporter.section("bundles rejected, by kind")
    for surface, kinds in tally.summary().items():
        for kind, count in kinds.items():
            terminalreporter.write_line(f"{surface:<11} {kind:<20} {count}")
    terminalreporter.write_line(f"total {sum(tally.REJECTIONS.values())}; written to {path}")
