"""``--format github``: GitHub Actions workflow commands, one annotation per entry (as conftest's github).

Layout::

    ::group::pyagent check report.json: device fr-brussels-0042, organisation eu-commission
    ::error file=report.json,title=eu-commission/tiktok::TikTok (com.zhiliaoapp.musically) is banned ...%0A...
    ::warning file=report.json,title=eu-council/tiktok (not in force yet%3A takes effect ...)::...
    ::notice file=report.json,title=eu-commission/tiktok (exempted by EX-2023-001)::...
    ::endgroup::
    NON-COMPLIANT: device fr-brussels-0042, organisation eu-commission: 1 violation, 1 warning, 1 exempted

A violation is an ``error``, a warning a ``warning``, an exempted breach a ``notice``; a decision error an
``error`` titled with its code. ``file`` is the report (left out for stdin and this machine). Values are
escaped as the runner expects (``@actions/core``): in a message ``%``, CR and LF become ``%25``, ``%0D``,
``%0A``; in a property ``:`` and ``,`` too (``%3A``, ``%2C``). A crafted app name therefore cannot end the
annotation or start another workflow command on a new line. Other control characters (ESC, bidirectional
overrides, ...) are shown escaped (:func:`~pyagent.termsafe.printable`): the log viewer renders ANSI codes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pyagent.outputs.base import (
    DISPLAY_NAME_NOTE,
    Entry,
    OutputFormat,
    parse_decision,
    printable,
    report_file,
    verdict_line,
)

_LEVELS: Mapping[str, str] = {"violation": "error", "warning": "warning", "exempted": "notice"}
_LINE_BREAK = re.compile(r"(\r\n|\r|\n)")


def _visible(text: str) -> str:
    """``text`` with every control character but the line breaks escaped (line breaks are %-escaped next)."""
    return "".join(
        part if _LINE_BREAK.fullmatch(part) else printable(part) for part in _LINE_BREAK.split(text)
    )


def escape_data(text: str) -> str:
    """A workflow command's message: ``%``, CR and LF escaped."""
    return _visible(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: as a message, and ``:`` and ``,`` too."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, **properties: str | None) -> str:
    """``::name key=value,...::message`` with every part escaped; ``None`` properties left out."""
    props = ",".join(
        f"{key}={escape_property(value)}" for key, value in properties.items() if value is not None
    )
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def _title(entry: Entry) -> str:
    if entry.kind == "warning":
        return f"{entry.rule} ({entry.reason_text or 'warning'})"
    if entry.exemption is not None:
        return f"{entry.rule} (exempted by {entry.exemption.id})"
    return entry.rule


def _message(entry: Entry) -> str:
    lines = [entry.message or f"{entry.app_label} breaks rule {entry.rule}"]
    if entry.exemption is not None:
        ex = entry.exemption
        lines.append(
            f"exemption {ex.id}"
            + (f" until {ex.until}" if ex.until else "")
            + (f": {ex.reason}" if ex.reason else "")
        )
    elif entry.remediation:
        lines.append(f"remediation: {entry.remediation}")
    if entry.expired_exemptions:
        lines.append(f"expired exemptions: {', '.join(entry.expired_exemptions)}")
    if entry.needs_evidence_note:
        lines.append(f"note: {DISPLAY_NAME_NOTE}")
    return "\n".join(lines)


class GithubFormat(OutputFormat):
    """Workflow commands that GitHub Actions shows as annotations on the run and the pull request."""

    name: ClassVar[str] = "github"
    media_type: ClassVar[str] = "text/plain; charset=utf-8"

    def render(self, decision: Mapping[str, Any], *, source: str) -> str:
        parsed = parse_decision(decision)
        file = report_file(source)
        device = parsed.device_id or "unknown"
        org = parsed.organization or "unknown"
        lines = [f"::group::{escape_data(f'pyagent check {source}: device {device}, organisation {org}')}"]
        for entry in parsed.entries:
            lines.append(command(_LEVELS[entry.kind], _message(entry), file=file, title=_title(entry)))
        for err in parsed.errors:
            message = err.message + (f" (at {err.path})" if err.path else "")
            lines.append(command("error", message, file=file, title=err.code))
        lines.append("::endgroup::")
        lines.append(verdict_line(parsed))
        return "\n".join(lines) + "\n"

    def render_refusal(
        self, problems: Sequence[str], *, source: str, title: str = "invalid input"
    ) -> str | None:
        """One ``error`` annotation per problem, on the report's file, titled ``title``: a refused
        report, or a run no engine decided, shows on the pull request like a violation does."""
        file = report_file(source)
        lines = [command("error", problem, file=file, title=title) for problem in problems]
        return "\n".join(lines) + "\n" if lines else None
