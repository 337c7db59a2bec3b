"""``--format text``: a short human summary of one decision, for a terminal (stderr).

Layout::

    NON-COMPLIANT: device fr-brussels-0042, organisation eu-commission, evaluated 2023-03-16T09:31:02Z
    violations (1):
      eu-commission/tiktok: TikTok (com.zhiliaoapp.musically), scope personal-enrolled
        TikTok (com.zhiliaoapp.musically) is banned on personal-enrolled devices of ...
        remediation: Uninstall the app ...
    policy revision 2023.03.15-1, engine embedded, decision 5f0c...

Every string taken from the decision goes through :func:`~pyagent.outputs.base.printable`, so a crafted
app name cannot inject terminal escape sequences or fake lines. ANSI colour is added only when the
format is built with ``color=True`` (the CLI passes whether stderr is a terminal).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pyagent.outputs.base import DISPLAY_NAME_NOTE, Decision, Entry, OutputFormat, parse_decision, printable

_RESET = "\x1b[0m"
_STYLES: Mapping[str, str] = {
    "ok": "\x1b[1;32m",
    "fail": "\x1b[1;31m",
    "violation": "\x1b[31m",
    "warning": "\x1b[33m",
    "exempted": "\x1b[36m",
    "error": "\x1b[31m",
    "dim": "\x1b[2m",
}

_SECTIONS: tuple[tuple[str, str], ...] = (
    ("violations", "violation"),
    ("warnings", "warning"),
    ("exempted", "exempted"),
)

INDENT = "  "


class TextFormat(OutputFormat):
    """A readable summary; colour only when ``color`` is true."""

    name: ClassVar[str] = "text"
    media_type: ClassVar[str] = "text/plain; charset=utf-8"

    def __init__(self, *, color: bool = False) -> None:
        self.color = color

    def _paint(self, style: str, text: str) -> str:
        return f"{_STYLES[style]}{text}{_RESET}" if self.color else text

    def render(self, decision: Mapping[str, Any], *, source: str) -> str:
        parsed = parse_decision(decision)
        lines = [self._headline(parsed)]
        for key, style in _SECTIONS:
            entries: tuple[Entry, ...] = getattr(parsed, key)
            if entries:
                lines.append(self._paint(style, f"{key} ({len(entries)}):"))
                for entry in entries:
                    lines.extend(self._entry(entry))
        if parsed.errors:
            lines.append(self._paint("error", f"errors ({len(parsed.errors)}):"))
            for err in parsed.errors:
                at = f" (at {printable(err.path)})" if err.path else ""
                lines.append(f"{INDENT}{printable(err.code)}: {printable(err.message)}{at}")
        if not parsed.entries and not parsed.errors:
            lines.append(
                "no ban applies to this device's apps"
                if parsed.allow  # (none installed, or out of scope)
                else "the decision denies the device without naming a violation"
            )
        lines.append(self._paint("dim", self._footer(parsed)))
        return "\n".join(lines) + "\n"

    def _headline(self, decision: Decision) -> str:
        verdict = self._paint("ok", "COMPLIANT") if decision.allow else self._paint("fail", "NON-COMPLIANT")
        device = printable(decision.device_id or "unknown")
        org = printable(decision.organization or "unknown")
        when = printable(decision.evaluated_at or "unknown")
        return f"{verdict}: device {device}, organisation {org}, evaluated {when}"

    def _entry(self, entry: Entry) -> list[str]:
        scope = f", scope {printable(entry.scope)}" if entry.scope else ""
        lines = [f"{INDENT}{printable(entry.rule)}: {printable(entry.app_label)}{scope}"]
        detail = INDENT * 2
        if entry.kind == "warning":
            lines.append(f"{detail}reason: {printable(entry.reason_text or 'unknown')}")
        if entry.exemption is not None:
            lines.append(detail + entry.exemption.describe("exemption"))
        if entry.message:
            lines.append(detail + printable(entry.message))
        if entry.remediation and entry.kind != "exempted":
            lines.append(f"{detail}remediation: {printable(entry.remediation)}")
        if entry.expired_exemptions:
            ids = ", ".join(printable(i) for i in entry.expired_exemptions)
            lines.append(f"{detail}expired exemptions: {ids}")
        if entry.needs_evidence_note:
            lines.append(self._paint("dim", f"{detail}note: {DISPLAY_NAME_NOTE}"))
        return lines

    @staticmethod
    def _footer(decision: Decision) -> str:
        parts = [
            f"policy revision {printable(decision.policy_revision or 'unknown')}",
            f"engine {printable(decision.engine or 'unknown')}",
        ]
        if decision.decision_id:
            parts.append(f"decision {printable(decision.decision_id)}")
        return ", ".join(parts)
