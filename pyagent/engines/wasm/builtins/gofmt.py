"""The part of Go's ``fmt.Sprintf`` that ``sprintf`` needs, over the operands as OPA converts them.

OPA hands ``fmt.Sprintf`` each value as a Go ``int64`` (a number whose text is one), a
``*big.Int`` (a longer integer), a ``float64`` (any other finite number), or a ``string`` (a string,
or the Rego text of any other value: ``[1, "a"]``, ``{1, 2}``, ``null``). Supported here: literal text,
``%%``, the verbs ``v``, ``s``, ``d``, ``x``/``X`` (strings and integers) and ``f``/``F``/``e``/``E``
(with a precision; numbers that are not integers) with an optional ``-`` flag and width, and Go's error texts
(``%!d(string=x)``, ``%!v(MISSING)``, ``%!(EXTRA int=1)``, ``%!(NOVERB)``). Any other flag, precision,
``*``, argument index or verb that would format a value raises :class:`UnsupportedBuiltinUse`: the
evaluation fails loudly instead of answering differently from OPA.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pyagent.engines.wasm.builtins._operands import INT64_MAX, INT64_MIN, UnsupportedBuiltinUse
from pyagent.engines.wasm.values import RegoNumber, rego_text

__all__ = ["GoArg", "go_sprintf", "sprintf_args"]

_GO_INT = re.compile(r"[+-]?[0-9]+\Z")
_MAX_WIDTH = 100_000
#: Verbs each Go type formats (any other is Go's "bad verb" text), and those implemented here.
_VALID = {
    "string": set("vsxXq"),
    "int64": set("vdboOxXcqU"),
    "float64": set("vbgGxXfFeE"),
    "*big.Int": set("bodsvxXO"),
}
_IMPLEMENTED = {
    "string": set("vsxX"),
    "int64": set("vdxX"),
    "float64": set("vfFeE"),
    "*big.Int": set("vdsxX"),
}
_MAX_PRECISION = 1_000


@dataclass(frozen=True)
class GoArg:
    """One operand as Go sees it: its type name and value."""

    type: str
    value: int | float | str


def sprintf_args(values: list[Any]) -> list[GoArg]:
    """OPA's conversion of the ``sprintf`` operands (``builtinSprintf``)."""
    args = []
    for value in values:
        if isinstance(value, RegoNumber):
            args.append(_number_arg(value.text))
        elif isinstance(value, str):
            args.append(GoArg("string", value))
        else:
            args.append(GoArg("string", rego_text(value)))
    return args


def _number_arg(text: str) -> GoArg:
    if _GO_INT.match(text):
        number = int(text)
        return GoArg("int64" if INT64_MIN <= number <= INT64_MAX else "*big.Int", number)
    value = float(Decimal(text))
    return GoArg("float64", value) if math.isfinite(value) else GoArg("string", text)


def _go_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(value, 'g', -1, 64)`` (what ``%v`` prints)."""
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    assert isinstance(exponent, int)
    point = len(digit_tuple) + exponent  # digits before the decimal point
    exp = point - 1
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    whole = digits[:point].ljust(point, "0")
    return sign + whole + ("." + digits[point:] if len(digits) > point else "")


def _text(arg: GoArg) -> str:
    if arg.type == "float64":
        assert isinstance(arg.value, float)
        return _go_float(arg.value)
    return str(arg.value)


@dataclass
class _Spec:
    minus: bool = False
    width: int | None = None
    precision: int | None = None

    def pad(self, text: str) -> str:
        if self.width is None or len(text) >= self.width:
            return text
        return text.ljust(self.width) if self.minus else text.rjust(self.width)


def _bad_verb_text(arg: GoArg, precision: int | None) -> str:
    """The operand as Go's ``%v`` shows it with a precision (what a "bad verb" text holds): a string
    cut to that many characters, an integer with at least that many digits."""
    if precision is None:
        return _text(arg)
    if arg.type == "string":
        assert isinstance(arg.value, str)
        return arg.value[:precision]
    if arg.type == "int64":
        assert isinstance(arg.value, int)
        digits = "" if precision == 0 and arg.value == 0 else str(abs(arg.value)).zfill(precision)
        return ("-" if arg.value < 0 else "") + digits
    raise UnsupportedBuiltinUse(f"sprintf precision with a bad verb for a {arg.type} operand")


def _format_arg(arg: GoArg, verb: str, spec: _Spec) -> str:
    if verb not in _VALID[arg.type]:
        if arg.type == "*big.Int":
            return f"%!{verb}(big.Int={arg.value})"
        return f"%!{verb}({arg.type}={spec.pad(_bad_verb_text(arg, spec.precision))})"
    if verb not in _IMPLEMENTED[arg.type]:
        raise UnsupportedBuiltinUse(f"sprintf verb %{verb} for a {arg.type} operand")
    if verb == "d" and arg.type == "int64" and spec.precision is not None:
        return spec.pad(_bad_verb_text(arg, spec.precision))  # at least that many digits
    if spec.precision is not None and not (arg.type == "float64" and verb in "fFeE"):
        raise UnsupportedBuiltinUse(f"sprintf precision with %{verb} for a {arg.type} operand")
    value = arg.value
    if verb in "fFeE":
        assert isinstance(value, float)
        precision = 6 if spec.precision is None else spec.precision
        return spec.pad(format(value, f".{precision}{'f' if verb in 'fF' else verb}"))
    if verb in "xX":
        hexed = value.encode().hex() if isinstance(value, str) else format(value, "x")
        return spec.pad(hexed.upper() if verb == "X" else hexed)
    return spec.pad(_text(arg))


def _parse_spec(fmt: str, i: int) -> tuple[_Spec, int]:
    """Flags and width after a ``%`` (Go's ``doPrintf``); only ``-`` and a plain width are supported."""
    spec = _Spec()
    while i < len(fmt) and fmt[i] in "#0+- ":
        if fmt[i] != "-":
            raise UnsupportedBuiltinUse(f"sprintf flag {fmt[i]!r}")
        spec.minus = True
        i += 1
    if i < len(fmt) and fmt[i] in "[*":
        raise UnsupportedBuiltinUse(f"sprintf {fmt[i]!r} (argument index or *)")
    spec.width, i = _number(fmt, i)
    if i < len(fmt) and fmt[i] == ".":
        precision, i = _number(fmt, i + 1)
        spec.precision = precision or 0  # "%.f": precision 0, as in Go
    if i < len(fmt) and fmt[i] in "[*":
        raise UnsupportedBuiltinUse(f"sprintf {fmt[i]!r} (argument index or *)")
    return spec, i


def _number(fmt: str, i: int) -> tuple[int | None, int]:
    start = i
    while i < len(fmt) and "0" <= fmt[i] <= "9":
        i += 1
    if i == start:
        return None, i
    number = int(fmt[start:i])
    if number > min(_MAX_WIDTH, _MAX_PRECISION):
        raise UnsupportedBuiltinUse(f"sprintf width or precision {number}")
    return number, i


def go_sprintf(fmt: str, args: list[GoArg]) -> str:
    """Go's ``fmt.Sprintf(fmt, args...)`` for the supported subset (see the module doc)."""
    out: list[str] = []
    arg_num = i = 0
    while i < len(fmt):
        percent = fmt.find("%", i)
        if percent < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:percent])
        spec, i = _parse_spec(fmt, percent + 1)
        if i >= len(fmt):
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
        elif arg_num >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            out.append(_format_arg(args[arg_num], verb, spec))
            arg_num += 1
    if arg_num < len(args):
        extra = (f"{arg.type}={_text(arg)}" for arg in args[arg_num:])
        out.append("%!(EXTRA " + ", ".join(extra) + ")")
    return "".join(out)
