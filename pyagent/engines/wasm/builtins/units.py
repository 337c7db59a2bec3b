"""``units.parse`` and ``units.parse_bytes``, as OPA's ``topdown/parse_units.go`` and ``parse_bytes.go``.

Both split the text into a number and a unit at the first character that cannot continue a number
(digits, ``.``, and an exponent ``e``/``E`` followed by a digit or sign; an exponent over six digits is
refused). ``units.parse`` multiplies exactly (Go's ``big.Rat``; its milli is the float64 0.001, as in
OPA) and answers an integer or ten decimals; ``units.parse_bytes`` multiplies in 64-bit-mantissa binary
floating point (Go's ``big.Float``) and truncates to an integer.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

from pyagent.engines.wasm.builtins._operands import BuiltinError, UnsupportedBuiltinUse, string_operand

__all__ = ["parse_bytes", "parse_units"]

_MAX_EXPONENT_DIGITS = 6
_SI = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15, "e": 10**18}
_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50, "e": 1 << 60}
_GO_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_MANTISSA_BITS = 64
_MAX_DIGITS = 4000
_UNITS: dict[str, Fraction] = {
    "": Fraction(1),
    "m": Fraction(0.001),  # the float64 nearest 0.001, as OPA's big.Rat.SetFloat64(0.001)
    "M": Fraction(10**6),
    "mi": Fraction(1 << 20),
    "Mi": Fraction(1 << 20),
    **{u: Fraction(_SI[u.lower()]) for u in ("k", "K", "g", "G", "t", "T", "p", "P", "e", "E")},
    **{u + "i": Fraction(_BINARY[u.lower()]) for u in ("k", "K", "g", "G", "t", "T", "p", "P", "e", "E")},
}


def _split(text: str, error: str) -> tuple[str, str]:
    """OPA's ``extractNumAndUnit`` (byte-wise; only ASCII digits count as digits)."""
    s = text.encode("utf-8", "surrogatepass")
    cut = -1
    i = 0
    while i < len(s):
        c = s[i]
        if not (48 <= c <= 57 or c in b".eE+-"):
            cut = i
            break
        if c in b"eE":
            if i == len(s) - 1 or not (48 <= s[i + 1] <= 57 or s[i + 1] in b"+-"):
                cut = i
                break
            if s[i + 1] in b"+-":
                i += 1
            end = i + 1
            while end < len(s) and 48 <= s[end] <= 57:
                end += 1
            if end - (i + 1) > _MAX_EXPONENT_DIGITS:
                raise BuiltinError(f"{error}: exponent too large")
        i += 1
    if cut == -1:
        return text, ""
    return s[:cut].decode("utf-8", "surrogatepass"), s[cut:].decode("utf-8", "surrogatepass")


def _go_number(text: str) -> Fraction | None:
    """The exact value of a decimal Go's ``big.Rat``/``big.Float`` ``SetString`` reads, or None.

    A magnitude past 10**4000 is refused (:class:`UnsupportedBuiltinUse`): OPA would answer a number of
    thousands of digits; one below 10**-4000 is read as a signed zero (both built-ins round it to 0).
    """
    if not _GO_NUMBER.match(text):
        return None
    exact = Decimal(text)
    if exact and exact.adjusted() > _MAX_DIGITS:
        raise UnsupportedBuiltinUse(f"amount {text[:40]!r} (over {_MAX_DIGITS} digits)")
    if exact and exact.adjusted() < -_MAX_DIGITS:
        return Fraction(-1 if exact < 0 else 1, 10**_MAX_DIGITS * 2**64)  # far below any rounding step
    return Fraction(exact)


def _round_mantissa(value: Fraction) -> Fraction:
    """``value`` rounded to a 64-bit binary mantissa, to nearest even (Go's ``big.Float`` default)."""
    if value == 0:
        return value
    sign = -1 if value < 0 else 1
    value = abs(value)
    shift = _MANTISSA_BITS - (value.numerator.bit_length() - value.denominator.bit_length())
    while value * Fraction(2) ** shift >= 1 << _MANTISSA_BITS:
        shift -= 1
    while value * Fraction(2) ** shift < 1 << (_MANTISSA_BITS - 1):
        shift += 1
    scaled = value * Fraction(2) ** shift
    mantissa = round(scaled)  # Fraction rounds half to even
    return sign * Fraction(mantissa) / Fraction(2) ** shift


def parse_bytes(value: object) -> int:
    """``units.parse_bytes(s)``: bytes in SI or binary units (case-insensitive), truncated."""
    name = "units.parse_bytes"
    text = string_operand(value, 1).lower().replace('"', "")
    if " " in text:
        raise BuiltinError(f"{name}: spaces not allowed in resource strings")
    number, unit = _split(text, name)
    if not number:
        raise BuiltinError(f"{name}: no byte amount provided")
    base = unit[:1]
    if unit == "":
        factor = 1
    elif unit in (base, base + "b") and base in _SI:
        factor = _SI[base]
    elif unit in (base + "i", base + "ib") and base in _BINARY:
        factor = _BINARY[base]
    else:
        raise BuiltinError(f"{name}: byte unit {unit} not recognized")
    amount = _go_number(number)
    if amount is None:
        raise BuiltinError(f"{name}: could not parse byte amount to a number")
    product = _round_mantissa(_round_mantissa(amount) * factor)
    return int(product)  # truncated toward zero, as big.Float.Int


def parse_units(value: object) -> int | Decimal:
    """``units.parse(s)``: a quantity in SI or binary units (``m`` is milli, ``M`` mega)."""
    name = "units.parse"
    text = string_operand(value, 1).replace('"', "")
    if " " in text:
        raise BuiltinError(f"{name}: spaces not allowed in resource strings")
    number, unit = _split(text, name)
    if not number:
        raise BuiltinError(f"{name}: no amount provided")
    if len(unit) > 1:
        unit = unit[0] + unit[1:].lower()
    factor = _UNITS.get(unit)
    if factor is None:
        raise BuiltinError(f"{name}: unit {unit} not recognized")
    amount = _go_number(number)
    if amount is None:
        raise BuiltinError(f"{name}: could not parse amount to a number")
    product = amount * factor
    if product.denominator == 1:
        return product.numerator
    # big.Rat.FloatString(10): ten decimals, halves rounded away from zero
    quotient, remainder = divmod(abs(product.numerator) * 10**10, product.denominator)
    if 2 * remainder >= product.denominator:
        quotient += 1
    return Decimal(quotient if product >= 0 else -quotient).scaleb(-10)
