"""The engines, by name. Explicit: adding an engine means adding a line here. Each engine's module is
imported when the engine is asked for, so that a command using one engine does not load the other."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType

from pyagent.engines.base import Engine, EngineName

#: Each engine's class, as ``module:Class``.
ENGINE_CLASSES: Mapping[EngineName, str] = MappingProxyType(
    {
        EngineName.OPA: "pyagent.engines.opa_server:OpaServerEngine",
        EngineName.EMBEDDED: "pyagent.engines.embedded:EmbeddedEngine",
    }
)


def engine_class(name: EngineName) -> type[Engine]:
    """The class of engine ``name``, its module imported now."""
    module, _, attribute = ENGINE_CLASSES[name].partition(":")
    cls: type[Engine] = getattr(importlib.import_module(module), attribute)
    return cls
