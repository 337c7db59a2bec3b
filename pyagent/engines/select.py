"""Choosing and building an engine from the command-line settings."""

from __future__ import annotations

from pyagent.engines.base import Engine, EngineName, EngineSettings
from pyagent.engines.registry import engine_class


def resolve(settings: EngineSettings) -> EngineName:
    """``auto`` is ``opa`` when a URL is configured, else ``embedded``."""
    if settings.engine == "auto":
        return EngineName.OPA if settings.opa_url else EngineName.EMBEDDED
    return EngineName(settings.engine)


def build_engine(settings: EngineSettings) -> Engine:
    """The engine the settings ask for, ready to evaluate."""
    name = resolve(settings)
    if settings.fallback_embedded and name is EngineName.OPA:
        from pyagent.engines.fallback import FallbackEngine

        engine: Engine = FallbackEngine.from_settings(settings)
    else:
        engine = engine_class(name).from_settings(settings)
    engine.expected_revision = settings.expect_revision
    return engine
