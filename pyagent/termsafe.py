"""Untrusted text made safe for a terminal: shown, never obeyed.

Report fields, server messages, bundle file names and anything else pyagent did not write itself can
carry ESC sequences (OSC/CSI: retitle the window, move the cursor, clear the screen, hyperlinks),
C0/C1 controls, bidirectional overrides or zero-width characters. :func:`printable` shows each of
them as a visible escape; :func:`safe_line` also redacts secrets (:mod:`pyagent.redact`), for the
one place every message goes through on its way to stderr.
"""

from __future__ import annotations

import re

from pyagent.redact import redact

__all__ = ["printable", "safe_line", "safe_lines", "shorten"]


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped, so it is safe to print on a terminal.

    Control characters (ESC, CR, LF, DEL, the C1 range), format characters (bidirectional overrides,
    zero-width characters) and line or paragraph separators come out as ``\\xNN``, ``\\uNNNN`` or
    ``\\UNNNNNNNN``; a crafted app name cannot move the cursor, clear the screen or reorder the text.
    """
    if text.isprintable():
        return text
    out: list[str] = []
    for char in text:
        if char.isprintable():
            out.append(char)
        else:
            code = ord(char)
            out.append(
                f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
    return "".join(out)


#: Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): characters shown as nothing. Most
#: are format characters (not ``isprintable``); these are also letters or marks that Python calls
#: printable: the combining grapheme joiner U+034F, the Hangul fillers, the Khmer inherent vowels, the
#: Mongolian and other variation selectors.
_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
#: Variation selectors: after a character other than ASCII they choose its glyph (an emoji's U+FE0F in
#: an app's name, "Weather \u2600\ufe0f", from which a collector makes a ``name:`` id), as they do in
#: a keycap ("1\ufe0f\u20e3"); after an ASCII letter they select nothing and only hide.
_SELECTOR = re.compile("[\u180b-\u180d\u180f\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_KEYCAP = "\u20e3"


def first_hidden(text: str) -> str | None:
    """The first character of ``text`` a terminal would not show as itself (a control or format
    character, a line separator, a space other than U+0020, a default-ignorable character other than
    a variation selector that selects a glyph), or None: an identifier holding one names nothing a
    device reports."""
    if text.isascii():
        return None if text.isprintable() else next(c for c in text if not c.isprintable())
    for index, char in enumerate(text):
        if char.isprintable() and not _IGNORABLE.match(char):
            continue
        if (
            _SELECTOR.match(char)
            and index > 0
            and (not text[index - 1].isascii() or text[index + 1 : index + 2] == _KEYCAP)
        ):
            continue
        return char
    return None


def unmatchable(text: str) -> str | None:
    """Why no tool would report ``text`` as an id (it begins or ends with white space, or holds a
    character :func:`first_hidden` finds), or None: a shell's quoting slip, a copy from a web page."""
    if text.strip() != text:
        return "begins or ends with white space"
    hidden = first_hidden(text)
    return None if hidden is None else f"contains U+{ord(hidden):04X}, which no tool shows"


def shorten(text: str, limit: int = 200) -> str:
    """``text`` on one line (runs of whitespace made one space), at most ``limit`` characters.

    A longer text is cut at the last word boundary that fits and ends with ``…``, so a message never
    stops mid-word and a reader sees that something was left out.
    """
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    head = line[: limit - 1]
    space = head.rfind(" ")
    if space > limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:") + "…"


def safe_line(text: str) -> str:
    """``text`` for a person's terminal: secrets redacted, every non-printable character escaped."""
    return printable(redact(text))


def safe_lines(text: str) -> str:
    """Several lines, each made safe by :func:`safe_line`; the line breaks between them kept."""
    return "\n".join(safe_line(line) for line in text.split("\n"))
