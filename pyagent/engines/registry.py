"""The engines, by name. Explicit: adding an engine means adding a line here."""

from __future__ import annotations

from pyagent.engines.base import Engine, EngineName
from pyagent.engines.embedded import EmbeddedEngine
from pyagent.engines.opa_server import OpaServerEngine

ENGINES: dict[EngineName, type[Engine]] = {
    EngineName.OPA: OpaServerEngine,
    EngineName.EMBEDDED: EmbeddedEngine,
}
