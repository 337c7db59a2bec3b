"""The ``--format`` names of ``pyagent check`` and the class behind each.

Adding a format: write a module with an :class:`~pyagent.outputs.base.OutputFormat` subclass, add its name
to :class:`OutputFormatName` and the class to :data:`FORMATS`. A test checks that the two agree.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from pyagent.errors import InvalidInputError
from pyagent.outputs.base import OutputFormat
from pyagent.outputs.json_format import JsonFormat
from pyagent.outputs.junit import JunitFormat
from pyagent.outputs.sarif import SarifFormat
from pyagent.outputs.text import TextFormat


class OutputFormatName(enum.StrEnum):
    """Values of ``check --format`` (a ``str`` enum: members compare equal to their values)."""

    TEXT = "text"
    JSON = "json"
    JUNIT = "junit"
    SARIF = "sarif"


FORMATS: Mapping[OutputFormatName, type[OutputFormat]] = {
    OutputFormatName.TEXT: TextFormat,
    OutputFormatName.JSON: JsonFormat,
    OutputFormatName.JUNIT: JunitFormat,
    OutputFormatName.SARIF: SarifFormat,
}

MACHINE_FORMATS: frozenset[OutputFormatName] = frozenset(
    {OutputFormatName.JSON, OutputFormatName.JUNIT, OutputFormatName.SARIF}
)
"""Formats written to stdout (or ``-o``); ``text`` is for humans and goes to stderr (CONTRACT section 3)."""


class UnknownFormatError(InvalidInputError):
    """``--format`` names no known format. Exit code 2."""


def format_class(name: OutputFormatName | str) -> type[OutputFormat]:
    """The class of format ``name``; :class:`UnknownFormatError` if there is none."""
    try:
        key = OutputFormatName(name)
    except ValueError:
        known = ", ".join(member.value for member in OutputFormatName)
        raise UnknownFormatError(f"unknown output format {str(name)!r}; expected one of {known}") from None
    return FORMATS[key]


def get_format(name: OutputFormatName | str, *, color: bool = False) -> OutputFormat:
    """A ready format for ``name``. ``color`` only affects ``text`` (pass whether stderr is a terminal)."""
    cls = format_class(name)
    if cls is TextFormat:
        return TextFormat(color=color)
    return cls()
