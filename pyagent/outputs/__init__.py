"""Output formats of ``pyagent check``: one small module per format behind :class:`OutputFormat`."""

from pyagent.outputs.base import OutputError, OutputFormat
from pyagent.outputs.registry import FORMATS, MACHINE_FORMATS, OutputFormatName, format_class, get_format

__all__ = [
    "FORMATS",
    "MACHINE_FORMATS",
    "OutputError",
    "OutputFormat",
    "OutputFormatName",
    "format_class",
    "get_format",
]
