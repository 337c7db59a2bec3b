"""How an inventory file is written, told from its first bytes: one report, JSONL, a stream of documents
written over several lines each, or binary (:func:`pyagent.fleet.sources.iter_items` reads each)."""

from __future__ import annotations

import json

__all__ = ["one_document", "opens_jsonl", "starts_a_stream"]


def one_document(line: bytes) -> bool:
    """Whether ``line`` (or a whole file's bytes) is one JSON document on its own."""
    try:
        json.loads(line)
    except ValueError:  # not JSON on its own (UnicodeDecodeError is a ValueError too)
        return False
    except RecursionError:  # nested too deeply to tell: one report, refused when it is read
        return True
    return True


def opens_jsonl(start: bytes) -> bool:
    """Whether a file's first bytes open (blank lines and a BOM aside, as the reader skips them) with a
    whole line that is a JSON object without a NUL: then
    a NUL further on is the line's that holds it (that report is invalid, the others are read), where a
    binary file's first "line" is no JSON (a PNG's is ``\\x89PNG\\r``)."""
    line, newline, _ = start.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n").partition(b"\n")
    if not newline or b"\0" in line:
        return False
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):  # (UnicodeDecodeError is a ValueError)
        return False


_DECODER = json.JSONDecoder()


def starts_a_stream(head: bytes) -> bool:
    """Whether ``head`` opens with a JSON document written over more than its first line: then the
    file is a stream of such documents (reports printed by ``jq .`` one after another), which no
    JSONL file is."""
    try:
        text = head.decode("utf-8-sig")
        start = len(text) - len(text.lstrip())
        _, end = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):  # (UnicodeDecodeError is a ValueError)
        return False
    return 0 <= text.find("\n", start) < end
