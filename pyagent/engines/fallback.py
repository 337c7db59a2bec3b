"""Opt-in fallback: when the OPA server gives no decision, the embedded engine decides with the last
verified bundle, but only while that bundle is younger than ``max_policy_age``; after that it fails
closed too. Off by default: without it, no decision means exit 3."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pyagent.engines.base import Engine, EngineError, EngineName, EngineSettings
from pyagent.engines.embedded import EmbeddedEngine, default_bundle_path
from pyagent.engines.opa_server import OpaServerEngine
from pyagent.logsetup import get_logger
from pyagent.termsafe import shorten

log = get_logger(__name__)


#: How far ahead of this machine's clock a bundle's build time may be (the building machine's clock
#: may run ahead) and still be a time it was built.
MAX_AHEAD_SECONDS = 300
#: 9999-12-31T23:59:59Z: a build time past it is no instant a clock reads (nor a float holds exactly).
LAST_UNIX_SECOND = 253_402_300_799


def bundle_age(path: Path, manifest: Mapping[str, Any], now: float) -> float:
    """Seconds since the bundle was built: since the manifest's ``metadata.pyagent.built_at`` (Unix
    seconds, an integer, as ``pyagent policy bundle`` writes it) when present, else since the file's
    modification time. A build time that is no instant (NaN, infinity, a string) or lies ahead of
    ``now`` by more than :data:`MAX_AHEAD_SECONDS` is refused (:class:`EngineError`): a bundle could
    otherwise keep itself young for ever, and ``age > limit`` would never hold."""
    metadata = manifest.get("metadata")
    ours = metadata.get("pyagent") if isinstance(metadata, Mapping) else None
    if isinstance(ours, Mapping) and "built_at" in ours:
        stamp = ours["built_at"]
        if isinstance(stamp, bool) or not isinstance(stamp, int) or not 0 <= stamp <= LAST_UNIX_SECOND:
            raise EngineError(
                f"the fallback bundle {path}: metadata.pyagent.built_at is {_shown(stamp)}, not Unix "
                "seconds: its age is unknown, failing closed"
            )
        built, what = float(stamp), "metadata.pyagent.built_at"
    else:
        built, what = path.stat().st_mtime, "modification time"
    age = now - built
    if age < -MAX_AHEAD_SECONDS:
        raise EngineError(
            f"the fallback bundle {path}: its {what} is {-age:.0f} s ahead of this clock: its age is "
            "unknown, failing closed"
        )
    return age


def _shown(value: object) -> str:
    return shorten(repr(value), 40)


class FallbackEngine(Engine):
    """The ``opa`` engine first; the embedded engine when it fails, within the policy-age limit."""

    name: ClassVar[EngineName] = EngineName.OPA

    def __init__(self, primary: Engine, settings: EngineSettings) -> None:
        self._primary = primary
        self._settings = settings
        self._fallback: EmbeddedEngine | None = None
        self.decided_by = primary.name
        self.fallback_reason: str | None = None

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> FallbackEngine:
        path = Path(settings.bundle) if settings.bundle else default_bundle_path()
        if not path.is_file():
            raise EngineError(f"--fallback-embedded: {path}: no compiled policy bundle to fall back to")
        return cls(OpaServerEngine.from_settings(settings), settings)

    @property
    def revision_suffix(self) -> str:
        if self.decided_by is EngineName.EMBEDDED and self._fallback is not None:
            return self._fallback.revision_suffix
        return self._primary.revision_suffix

    def evaluate(self, policy_input: Mapping[str, Any]) -> dict[str, Any]:
        self.decided_by, self.fallback_reason = self._primary.name, None
        self.last_decision_id = self.last_bundles = None
        try:
            result = self._primary.evaluate(policy_input)
            self.last_decision_id = self._primary.last_decision_id
            self.last_bundles = self._primary.last_bundles
            return result
        except EngineError as err:
            engine = self._embedded(reason=str(err))
            log.warning("OPA gave no decision (%s); deciding with the embedded engine", err)
            result = engine.evaluate(policy_input)
            self.decided_by, self.fallback_reason = EngineName.EMBEDDED, str(err)
            self.last_bundles = engine.last_bundles
            return result

    def _embedded(self, *, reason: str) -> EmbeddedEngine:
        if self._fallback is None:
            self._fallback = EmbeddedEngine.from_settings(self._settings)
        limit = self._settings.max_policy_age
        if limit is not None:
            try:
                age = bundle_age(Path(self._fallback.source), self._fallback.manifest, time.time())
            except EngineError as err:
                raise EngineError(f"{reason}; {err}") from err
            if age > limit:
                raise EngineError(
                    f"{reason}; the fallback bundle {self._fallback.source} is {age:.0f} s old, "
                    f"over --max-policy-age {limit:g} s: failing closed"
                )
        return self._fallback

    def close(self) -> None:
        self._primary.close()
        if self._fallback is not None:
            self._fallback.close()
