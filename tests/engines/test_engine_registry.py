"""The engine registry: every :class:`EngineName` (``--engine`` but ``auto``, which picks one of
them) maps to an engine class of that name, whose module is imported only when it is asked for."""

from __future__ import annotations

import subprocess
import sys

from pyagent.engines.base import Engine, EngineName
from pyagent.engines.registry import ENGINE_CLASSES, engine_class


def test_every_engine_name_maps_to_an_engine_of_that_name() -> None:
    assert set(ENGINE_CLASSES) == set(EngineName)
    for member in EngineName:
        cls = engine_class(member)
        assert (issubclass(cls, Engine), cls.name) == (True, member)
    assert {member.value: engine_class(member).__name__ for member in EngineName} == {
        "opa": "OpaServerEngine",
        "embedded": "EmbeddedEngine",
    }


def test_asking_for_one_engine_does_not_import_the_other() -> None:
    probe = (
        "import sys\n"
        "from pyagent.engines.base import EngineName\n"
        "from pyagent.engines.registry import engine_class\n"
        "engine_class(EngineName.OPA)\n"
        "engines = ('pyagent.engines.opa_server', 'pyagent.engines.embedded')\n"
        "print([name for name in engines if name in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout == "['pyagent.engines.opa_server']\n"


def test_engine_choices_are_auto_then_every_engine_of_the_registry() -> None:
    from pyagent.cli.options import ENGINE_CHOICES

    assert ENGINE_CHOICES == ("auto", "opa", "embedded")
    assert set(ENGINE_CHOICES[1:]) == set(ENGINE_CLASSES)
