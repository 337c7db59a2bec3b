"""The ``--format`` names of ``pyagent check`` and the class behind each.

Adding a format: write a module with an :class:`~pyagent.outputs.base.OutputFormat` subclass, add its name
to :class:`OutputFormatName` and the class to :data:`FORMATS`. A test checks that the two agree.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from pyagent.errors import InvalidInputError
from pyagent.outputs.base import OutputError

if TYPE_CHECKING:
    from pyagent.outputs.base import OutputFormat


class OutputFormatName(enum.StrEnum):
    """Values of ``check --format`` (a ``str`` enum: members compare equal to their values)."""

    TEXT = "text"
    JSON = "json"
    JUNIT = "junit"
    SARIF = "sarif"
    GITHUB = "github"
    TABLE = "table"


class _LazyFormats(Mapping[OutputFormatName, "type[OutputFormat]"]):
    """Each format's class, its module imported on first use (a check imports only the one it prints)."""

    _where: Mapping[OutputFormatName, str] = {
        OutputFormatName.TEXT: "pyagent.outputs.text:TextFormat",
        OutputFormatName.JSON: "pyagent.outputs.json_format:JsonFormat",
        OutputFormatName.JUNIT: "pyagent.outputs.junit:JunitFormat",
        OutputFormatName.SARIF: "pyagent.outputs.sarif:SarifFormat",
        OutputFormatName.GITHUB: "pyagent.outputs.github:GithubFormat",
        OutputFormatName.TABLE: "pyagent.outputs.table:TableFormat",
    }

    def __getitem__(self, name: OutputFormatName) -> type[OutputFormat]:
        module, _, attribute = self._where[name].partition(":")
        cls: type[OutputFormat] = getattr(importlib.import_module(module), attribute)
        return cls

    def __iter__(self) -> Iterator[OutputFormatName]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


FORMATS: Mapping[OutputFormatName, type[OutputFormat]] = _LazyFormats()

MACHINE_FORMATS: frozenset[OutputFormatName] = frozenset(
    {
        OutputFormatName.JSON,
        OutputFormatName.JUNIT,
        OutputFormatName.SARIF,
        OutputFormatName.GITHUB,
        OutputFormatName.TABLE,
    }
)
"""Formats written to stdout (or ``-o``); ``text`` is for humans and goes to stderr (CONTRACT section 3).

``github`` goes to stdout because that is where the Actions runner reads workflow commands; ``table``,
as conftest prints it, for CI logs and pipes (``| grep violation``)."""


class UnknownFormatError(OutputError, InvalidInputError):
    """``--format`` names no known format: a usage error of the output area. Exit code 2."""

    exit_code = 2


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
    if OutputFormatName(name) is OutputFormatName.TEXT:
        return cls(color=color)  # type: ignore[call-arg]
    return cls()
