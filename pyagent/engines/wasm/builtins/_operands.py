"""What every host built-in shares: OPA's two failure kinds and its operand checks (``topdown/builtins``)."""

from __future__ import annotations

from decimal import Decimal

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "BuiltinError",
    "UnsupportedBuiltinUse",
    "int_operand",
    "string_operand",
    "type_name",
]

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


class BuiltinError(ValueError):
    """OPA's built-in error: bad operand or unparsable value. Undefined unless errors are strict."""


class UnsupportedBuiltinUse(Exception):
    """A use of a built-in this host cannot answer exactly as OPA would (e.g. a named time zone)."""


def type_name(value: object) -> str:
    """OPA's ``ast.ValueName`` of a decoded operand."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def string_operand(value: object, pos: int) -> str:
    """OPA's ``builtins.StringOperand``."""
    if not isinstance(value, str):
        raise BuiltinError(f"operand {pos} must be string but got {type_name(value)}")
    return value


def int_operand(value: object, pos: int) -> int:
    """OPA's ``builtins.IntOperand``: a number whose JSON text is an integer that fits int64."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        raise BuiltinError(f"operand {pos} must be number but got {type_name(value)}")
    if not isinstance(value, int) or not INT64_MIN <= value <= INT64_MAX:
        raise BuiltinError(f"operand {pos} must be integer number but got floating-point number")
    return value
