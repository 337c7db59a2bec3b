"""YAML scalars as OPA resolves them: the YAML 1.2 core schema of OPA's loader (go.yaml.in/yaml/v3).

PyYAML resolves YAML 1.1: ``yes``, ``no``, ``on`` and ``off`` are booleans (``labels: {country: NO}``
became ``False``, and a key ``on:`` the key ``True``), ``2023-01-01`` is a date and ``1:30`` the number
90. OPA reads all of them as strings. Policy data (:mod:`pyagent.policy.yamlload`) and OPA-style config
files (:mod:`pyagent.config.files`) resolve with :class:`CoreResolver` instead, so that pyagent reads
those as the real OPA does. Not mirrored: Go's integers with ``_`` separators or a ``0b`` prefix
(``1_000``, ``0b101``), strings here, and ``.inf``, a float here and an error in OPA: a config key
that wants a number refuses either with a one-line error.
"""

from __future__ import annotations

import re

import yaml


class CoreResolver(yaml.resolver.BaseResolver):  # type: ignore[misc]
    """YAML 1.2 core schema: ``true``/``false``, ``null``/``~``, decimal, ``0o`` and ``0x`` integers,
    floats with ``.inf`` and ``.nan``; everything else plain is a string (no timestamps, no yes/no)."""


_CORE = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
]
for _tag, _pattern, _first in _CORE:
    CoreResolver.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


class CoreComposer(
    yaml.reader.Reader,  # type: ignore[misc]
    yaml.scanner.Scanner,  # type: ignore[misc]
    yaml.parser.Parser,  # type: ignore[misc]
    yaml.composer.Composer,  # type: ignore[misc]
    CoreResolver,
):
    """PyYAML's reading up to the node graph, resolving with :class:`CoreResolver`: the base of the
    policy data loader (which builds values itself) and of the config loader (which adds PyYAML's
    safe constructor)."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        CoreResolver.__init__(self)
