"""String built-ins: ``strings.any_prefix_match``, ``strings.count``, ``sprintf`` (``topdown/strings.go``)
and ``regex.globs_match`` (``topdown/regex.go``, in ``globs.py``)."""

from __future__ import annotations

from pyagent.engines.wasm.builtins._operands import BuiltinError, string_operand, type_name
from pyagent.engines.wasm.builtins.gofmt import go_sprintf, sprintf_args
from pyagent.engines.wasm.values import RegoValueError, decode_value, parse_rego

__all__ = ["any_prefix_match", "count", "sprintf"]


def _strings(value: object, pos: int) -> list[str]:
    """A string, or an array or set of strings (OPA's ``StringSliceOperand``)."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise BuiltinError(f"operand {pos} must be one of {{string, set, array}} but got {type_name(value)}")
    for item in value:
        if not isinstance(item, str):
            raise BuiltinError(f"operand {pos} must be string but got {type_name(item)}")
    return value


def any_prefix_match(search: object, prefixes: object) -> bool:
    """``strings.any_prefix_match(search, base)``: whether any of ``search`` starts with any of ``base``."""
    texts, starts = _strings(search, 1), _strings(prefixes, 2)
    bounded = tuple(starts)
    return any(text.startswith(bounded) for text in texts) if bounded else False


def count(search: object, substring: object) -> int:
    """``strings.count(search, substring)``: non-overlapping occurrences (Go's ``strings.Count``)."""
    return string_operand(search, 1).count(string_operand(substring, 2))


def sprintf(format_text: bytes, values_text: bytes) -> str:
    """``sprintf(format, values)``: Go's ``fmt.Sprintf`` over the values as OPA converts them."""
    try:
        format_value = decode_value(format_text)
        values = parse_rego(values_text)
    except (RegoValueError, UnicodeDecodeError) as err:
        raise BuiltinError(f"sprintf: cannot read an operand: {err}") from err
    fmt = string_operand(format_value, 1)
    if not isinstance(values, list):
        raise BuiltinError(f"operand 2 must be array but got {type_name(decode_value(values_text))}")
    return go_sprintf(fmt, sprintf_args(values))
