"""``regex.globs_match``: whether two globs have a non-empty intersection, as OPA decides it with the
``gintersect`` package (v0.2.0) it vendors.

A glob is a sequence of tokens: a character, ``.`` (any character) or a set ``[...]`` (characters and
``a-z`` ranges), each optionally followed by ``+`` or ``*``; ``\\`` escapes the next character. Adjacent
equal flagged tokens merge (``a*a+`` is ``a+``). Matching follows the package's own greedy algorithm
(trim the plain prefix and suffix, then walk both globs), quirks included, not a general automaton
intersection.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyagent.engines.wasm.builtins._operands import BuiltinError, string_operand

__all__ = ["globs_match"]

_NONE, _PLUS, _STAR = 0, 1, 2
_FLAGS = {"+": _PLUS, "*": _STAR}
_CHAR, _DOT, _SET = 0, 1, 2


@dataclass
class _Token:
    kind: int
    chars: frozenset[str] = frozenset()  # the character (one) or the set's characters
    flag: int = _NONE


class _Invalid(Exception):
    pass


def _rune(text: str, i: int) -> tuple[int, str, bool]:
    """gintersect's ``nextRune``: (next index, character, escaped); IndexError at the end."""
    if i >= len(text):
        raise IndexError
    if text[i] == "\\":
        if i == len(text) - 1:
            raise _Invalid("input ends with a \\ (escape) character")
        return i + 2, text[i + 1], True
    return i + 1, text[i], False


def _set(text: str, i: int) -> tuple[int, _Token]:
    chars: set[str] = set()
    prev, has_prev = "", False
    while True:
        try:
            i, r, escaped = _rune(text, i)
        except IndexError:
            raise _Invalid("found [ without matching ]") from None
        if escaped or r not in "-]":
            chars.add(r)
            prev, has_prev = r, True
            continue
        if r == "]":
            return i, _Token(_SET, frozenset(chars))
        if not has_prev:
            raise _Invalid("range character '-' must be preceded by a Unicode character")
        if i >= len(text) - 1:
            raise _Invalid("range character '-' must be followed by a Unicode character")
        i, r, escaped = _rune(text, i)
        if not escaped and r in "]-":
            raise _Invalid("range character '-' cannot be followed by a special symbol")
        if r < prev:
            raise _Invalid(f"range is out of order: {r!r} comes before {prev!r} in Unicode")
        chars.update(map(chr, range(ord(prev), ord(r) + 1)))
        has_prev = False


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        i, r, escaped = _rune(text, i)
        if escaped:
            token = _Token(_CHAR, frozenset(r))
        elif r == ".":
            token = _Token(_DOT)
        elif r == "[":
            i, token = _set(text, i)
        elif r == "]":
            raise _Invalid("set-close ']' with no preceding '['")
        elif r in _FLAGS:
            raise _Invalid(f"flag {r!r} must be preceded by a non-flag")
        else:
            token = _Token(_CHAR, frozenset(r))
        if i < len(text):
            after, flag, flag_escaped = _rune(text, i)
            if not flag_escaped and flag in _FLAGS:
                token.flag, i = _FLAGS[flag], after
        tokens.append(token)
    return _simplified(tokens)


def _simplified(tokens: list[_Token]) -> list[_Token]:
    simple: list[_Token] = []
    for token in tokens:
        latest = simple[-1] if simple else None
        if latest and token.flag and latest.flag and (token.kind, token.chars) == (latest.kind, latest.chars):
            latest.flag = _PLUS if _PLUS in (token.flag, latest.flag) else _STAR
        else:
            simple.append(token)
    return simple


def _match(a: _Token, b: _Token) -> bool:
    if _DOT in (a.kind, b.kind):
        return True
    return bool(a.chars & b.chars)


def _trim(g1: list[_Token], g2: list[_Token]) -> tuple[list[_Token], list[_Token]] | None:
    left = 0
    while left < len(g1) and left < len(g2) and not g1[left].flag and not g2[left].flag:
        if not _match(g1[left], g2[left]):
            return None
        left += 1
    left = max(left - 1, 0)
    r1, r2 = len(g1) - 1, len(g2) - 1
    while r1 >= left and r2 >= left and not g1[r1].flag and not g2[r2].flag:
        if not _match(g1[r1], g2[r2]):
            return None
        r1, r2 = r1 - 1, r2 - 1
    if r1 < len(g1) - 1:
        r1, r2 = r1 + 1, r2 + 1
    return g1[left : r1 + 1], g2[left : r2 + 1]


def _normal(g1: list[_Token], g2: list[_Token]) -> bool:
    i = 0
    while i < len(g1) and i < len(g2):
        if g1[i].flag or g2[i].flag:
            return _special(g1[i:], g2[i:])
        if not _match(g1[i], g2[i]):
            return False
        i += 1
    return i == len(g1) and i == len(g2)


def _special(g1: list[_Token], g2: list[_Token]) -> bool:
    flagged, other = (g1, g2) if g1[0].flag else (g2, g1)
    return _plus(flagged, other) if flagged[0].flag == _PLUS else _star(flagged, other)


def _plus(plussed: list[_Token], other: list[_Token]) -> bool:
    if not _match(plussed[0], other[0]):
        return False
    if _star(plussed, other[1:]):
        return True
    return bool(other[0].flag) and _normal(plussed[1:], other)


def _star(starred: list[_Token], other: list[_Token]) -> bool:
    star = starred[0]
    following = starred[1] if len(starred) > 1 else None
    for i, token in enumerate(other):
        if following is not None and _match(token, following) and _normal(starred[1:], other[i:]):
            return True
        if not _match(token, star):
            return False
    return following is None


def globs_match(glob1: object, glob2: object) -> bool:
    """``regex.globs_match(glob1, glob2)``: whether some non-empty string matches both."""
    first, second = string_operand(glob1, 1), string_operand(glob2, 2)
    try:
        g1, g2 = _tokens(first), _tokens(second)
    except _Invalid as err:
        raise BuiltinError(f"the input provided is invalid: {err}") from err
    trimmed = _trim(g1, g2)
    return trimmed is not None and _normal(*trimmed)
