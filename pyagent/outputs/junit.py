"""``--format junit``: the decision as a JUnit XML report, for CI test-report views.

One ``<testsuite name="pyagent">`` (inside ``<testsuites>``), one ``<testcase>`` per rule and app checked:
``classname`` is the rule (``eu-commission/tiktok``), ``name`` the app id, ``file`` the report (``source``).

- A violation is a failing testcase: ``<failure message="<message>" type="<rule>">`` whose text is the
  message, the remediation and any note.
- A warning is a *skipped* testcase: ``<skipped message="warning: <reason in words>: <message>">`` plus the
  details in ``<system-out>``. CI views (GitLab, Jenkins, GitHub report actions) list skipped tests with
  their message apart from the passing ones, where system-out alone would be hidden; and skipped never
  fails the build, just as a warning never changes ``allow``.
- An exempted breach is a passing testcase with ``<property name="exemption" value="<id>">`` (and
  ``exemption_until``) and a ``<system-out>`` line naming the exemption, its expiry, approver and reason.
- Each decision error (``errors``) is a testcase with ``<error message=... type="<code>">``.
- With no violation and no error, a ``compliance`` testcase says the verdict, so the suite is never empty
  (it fails if the decision denies without naming a violation).

Entries with ``evidence: display_name`` carry ``<property name="evidence" value="display_name">`` and the
weaker-evidence note in their text. Every string from the decision is passed through
:func:`~pyagent.outputs.base.printable`, which also keeps the XML well-formed (no control characters).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from pyagent.outputs.base import DISPLAY_NAME_NOTE, Decision, Entry, OutputFormat, parse_decision, printable

SUITE_NAME = "pyagent"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


@dataclass
class _Counts:
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0

    def attrs(self) -> dict[str, str]:
        return {
            "tests": str(self.tests),
            "failures": str(self.failures),
            "errors": str(self.errors),
            "skipped": str(self.skipped),
            "time": "0",
        }


def _timestamp(value: str | None) -> str | None:
    """``value`` (RFC 3339) as JUnit's zone-less ISO 8601 UTC timestamp, or ``None`` if unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _properties(parent: ET.Element, pairs: list[tuple[str, str]]) -> None:
    if pairs:
        props = ET.SubElement(parent, "properties")
        for name, value in pairs:
            ET.SubElement(props, "property", name=name, value=printable(value))


def _details(entry: Entry) -> list[str]:
    """The lines that explain one entry (message, remediation, notes), already escaped."""
    lines: list[str] = []
    if entry.exemption is not None:
        lines.append(entry.exemption.describe("exempted by"))
    if entry.kind == "warning":
        lines.append(f"warning: {printable(entry.reason_text or 'unknown')}")
    lines.append(printable(entry.message))
    if entry.remediation and entry.kind != "exempted":
        lines.append(f"remediation: {printable(entry.remediation)}")
    if entry.scope:
        lines.append(f"scope: {printable(entry.scope)}")
    if entry.expired_exemptions:
        lines.append("expired exemptions: " + ", ".join(printable(i) for i in entry.expired_exemptions))
    if entry.needs_evidence_note:
        lines.append(f"note: {DISPLAY_NAME_NOTE}")
    return lines


class JunitFormat(OutputFormat):
    """The decision as JUnit XML."""

    name: ClassVar[str] = "junit"
    media_type: ClassVar[str] = "application/xml"

    def render(self, decision: Mapping[str, Any], *, source: str) -> str:
        parsed = parse_decision(decision)
        counts = _Counts()
        suite = ET.Element("testsuite", name=SUITE_NAME)
        _properties(suite, self._suite_properties(parsed, source))
        for entry in parsed.entries:
            self._entry_case(suite, entry, source, counts)
        for err in parsed.errors:
            case = self._case(suite, "pyagent", f"error {printable(err.code)}", source, counts)
            text = f"at {printable(err.path)}" if err.path else None
            ET.SubElement(case, "error", message=printable(err.message), type=printable(err.code)).text = text
            counts.errors += 1
        if not parsed.violations and not parsed.errors and (not parsed.entries or not parsed.allow):
            case = self._case(suite, "pyagent", "compliance", source, counts)
            if parsed.allow:
                ET.SubElement(
                    case, "system-out"
                ).text = "compliant: no ban in force applies to this device's apps"
            else:
                ET.SubElement(
                    case,
                    "failure",
                    message="the decision denies the device without naming a violation",
                    type="compliance",
                )
                counts.failures += 1

        suite.attrib.update(counts.attrs())
        if parsed.device_id:
            suite.set("hostname", printable(parsed.device_id))
        stamp = _timestamp(parsed.evaluated_at)
        if stamp:
            suite.set("timestamp", stamp)
        root = ET.Element("testsuites", attrib={"name": SUITE_NAME, **counts.attrs()})
        root.append(suite)
        ET.indent(root)
        return XML_DECLARATION + ET.tostring(root, encoding="unicode") + "\n"

    @staticmethod
    def _suite_properties(decision: Decision, source: str) -> list[tuple[str, str]]:
        pairs = [
            ("device_id", decision.device_id),
            ("organization", decision.organization),
            ("allow", "true" if decision.allow else "false"),
            ("evaluated_at", decision.evaluated_at),
            ("policy_revision", decision.policy_revision),
            ("engine", decision.engine),
            ("decision_id", decision.decision_id),
            ("source", source),
        ]
        return [(name, value) for name, value in pairs if value is not None]

    @staticmethod
    def _case(suite: ET.Element, classname: str, name: str, source: str, counts: _Counts) -> ET.Element:
        counts.tests += 1
        return ET.SubElement(
            suite,
            "testcase",
            name=name,
            classname=classname,
            file=printable(source),
            time="0",
        )

    def _entry_case(self, suite: ET.Element, entry: Entry, source: str, counts: _Counts) -> None:
        case = self._case(suite, printable(entry.rule), printable(entry.app_id), source, counts)
        props: list[tuple[str, str]] = []
        if entry.app_name:
            props.append(("app_name", entry.app_name))
        if entry.evidence:
            props.append(("evidence", entry.evidence))
        if entry.exemption is not None:
            props.append(("exemption", entry.exemption.id))
            if entry.exemption.until:
                props.append(("exemption_until", entry.exemption.until))
        _properties(case, props)
        details = "\n".join(_details(entry))
        if entry.kind == "violation":
            failure = ET.SubElement(
                case, "failure", message=printable(entry.message), type=printable(entry.rule)
            )
            failure.text = details
            counts.failures += 1
        elif entry.kind == "warning":
            message = f"warning: {entry.reason_text or 'unknown'}: {entry.message}"
            ET.SubElement(case, "skipped", message=printable(message))
            ET.SubElement(case, "system-out").text = details
            counts.skipped += 1
        else:
            ET.SubElement(case, "system-out").text = details
