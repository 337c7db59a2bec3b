"""Untrusted text made safe for a terminal: shown, never obeyed.

Report fields, server messages, bundle file names and anything else pyagent did not write itself can
carry ESC sequences (OSC/CSI: retitle the window, move the cursor, clear the screen, hyperlinks),
C0/C1 controls, bidirectional overrides or zero-width characters. :func:`printable` shows each of
them as a visible escape; :func:`safe_line` also redacts secrets (:mod:`pyagent.redact`), for the
one place every message goes through on its way to stderr.
"""

from __future__ import annotations

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


def first_hidden(text: str) -> str | None:
    """The first character of ``text`` a terminal would not show as itself (a control or format
    character, a line separator, a space other than U+0020), or None: an identifier holding one names
    nothing a device reports."""
    return None if text.isprintable() else next(c for c in text if not c.isprintable())


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
