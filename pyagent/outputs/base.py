"""What every output format of ``pyagent check`` implements, and the decision model they share.

A format is a small class behind one interface (conftest-style): :class:`OutputFormat` turns one decision
document (CONTRACT section 2, as the engine returned it) into the text printed to stdout or stderr. The
registry (:mod:`pyagent.outputs.registry`) maps ``--format`` names to these classes.

Formats other than ``json`` read the decision through :func:`parse_decision`, which checks its shape and
gives typed :class:`Decision` / :class:`Entry` objects, so a malformed decision fails with one clear
:class:`OutputError` instead of a ``KeyError`` halfway through printing.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pyagent.errors import PyagentError
from pyagent.termsafe import printable as printable
from pyagent.userfile import STDIN_NAME

STDIN_SOURCE = "-"
"""``source`` when the report was read from standard input."""
THIS_MACHINE_SOURCE = "this machine"
"""``source`` when ``check`` collected this machine itself (no report file)."""
STDIN_LABEL = STDIN_NAME
"""``source`` as ``check`` names standard input in its messages."""

WARNING_REASONS: Mapping[str, str] = {
    "not_yet_effective": "not in force yet",
    "enforcement_warn": "enforcement is warn: reported, not enforced",
    "enforcement_dryrun": "enforcement is dryrun: a trial run, not enforced",
    "not_listed": "not checked: the inventory cannot list this kind of app",
}
"""The ``reason`` of a warning entry, in words."""

DISPLAY_NAME_NOTE = "matched from a display name, not a package ID: weaker evidence"
"""Printed with every entry whose ``evidence`` is ``display_name``, unless its message says it."""

EntryKind = Literal["violation", "warning", "exempted"]


class OutputError(PyagentError):
    """The decision cannot be rendered: it is not the shape CONTRACT section 2 describes.

    Such a decision comes from a failed or misbehaving engine, so the exit code is 3 (no decision could be
    obtained), never 0.
    """

    exit_code = 3


class OutputFormat(abc.ABC):
    """One ``--format`` of ``pyagent check``."""

    name: ClassVar[str]
    """The ``--format`` value, e.g. ``"sarif"``."""
    media_type: ClassVar[str]
    """The IANA media type of the rendered text."""

    @abc.abstractmethod
    def render(self, decision: Mapping[str, Any], *, source: str) -> str:
        """The decision as this format's text, ending with a newline.

        ``source`` says where the report came from: its file name, :data:`STDIN_SOURCE` or
        :data:`THIS_MACHINE_SOURCE`. Raises :class:`OutputError` when the decision is malformed.
        """

    def render_refusal(
        self, problems: Sequence[str], *, source: str, title: str = "invalid input"
    ) -> str | None:
        """What this format says where no decision was made: the input was refused (exit 2), or, with
        ``title`` "no decision", no engine answered (exit 3). ``problems`` are one-line reasons (a
        schema error each). None: nothing beyond the error on stderr (the default; a format read by a
        machine that shows problems where they are, such as GitHub's annotations, says more)."""
        return None


@dataclass(frozen=True)
class Exemption:
    """The exemption that waived an ``exempted`` entry."""

    id: str
    reason: str | None = None
    until: str | None = None
    approved_by: str | None = None

    def describe(self, lead: str) -> str:
        """``lead``, the id, then what is known of it, for a line of text (escaped):
        ``exempted by EX-1 until 2023-06-30T00:00:00Z, approved by CISO: reason``."""
        text = f"{lead} {printable(self.id)}"
        if self.until:
            text += f" until {printable(self.until)}"
        if self.approved_by:
            text += f", approved by {printable(self.approved_by)}"
        if self.reason:
            text += f": {printable(self.reason)}"
        return text


@dataclass(frozen=True)
class Entry:
    """One rule broken by one app: a violation, a warning or an exempted breach."""

    kind: EntryKind
    rule: str
    app_id: str
    message: str
    ban: str | None = None
    app_name: str | None = None
    remediation: str | None = None
    effective_from: str | None = None
    scope: str | None = None
    enforcement: str | None = None
    reason: str | None = None
    """Warnings only: ``not_yet_effective``, ``enforcement_warn``, ``enforcement_dryrun`` or ``not_listed``
    (a rule not checked: the inventory cannot list its apps)."""
    evidence: str | None = None
    exemption: Exemption | None = None
    expired_exemptions: tuple[str, ...] = ()

    @property
    def weak_evidence(self) -> bool:
        """The app id was derived from a display name."""
        return self.evidence == "display_name"

    @property
    def needs_evidence_note(self) -> bool:
        """A weak-evidence entry whose message does not say so itself (the shipped policy's does)."""
        return self.weak_evidence and DISPLAY_NAME_NOTE not in self.message

    @property
    def app_label(self) -> str:
        """``TikTok (com.zhiliaoapp.musically)``, or the bare id when the name is unknown."""
        return f"{self.app_name} ({self.app_id})" if self.app_name else self.app_id

    @property
    def reason_text(self) -> str:
        """A warning's reason in words (with the date for ``not_yet_effective``); ``""`` otherwise."""
        if self.reason is None:
            return ""
        words = WARNING_REASONS.get(self.reason, self.reason)
        if self.reason == "not_yet_effective" and self.effective_from:
            words = f"{words}: takes effect {self.effective_from}"
        return words


@dataclass(frozen=True)
class DecisionError:
    """A problem that prevented a complete decision (``errors`` of the decision)."""

    code: str
    message: str
    path: str | None = None


@dataclass(frozen=True)
class Decision:
    """A decision document, checked and typed."""

    allow: bool
    device_id: str | None
    organization: str | None
    violations: tuple[Entry, ...]
    warnings: tuple[Entry, ...]
    exempted: tuple[Entry, ...]
    errors: tuple[DecisionError, ...]
    evaluated_at: str | None
    policy_revision: str | None
    engine: str | None
    decision_id: str | None

    @property
    def entries(self) -> tuple[Entry, ...]:
        """Violations, then warnings, then exempted breaches."""
        return self.violations + self.warnings + self.exempted


def _text(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise OutputError(f"decision: {where}.{key} must be a string, not {type(value).__name__}")
    return value


def _required_text(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = _text(obj, key, where)
    if value is None:
        raise OutputError(f"decision: {where}.{key} is missing")
    return value


def _objects(decision: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = decision.get(key, [])
    if value is None:
        return []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise OutputError(f"decision: {key} must be a list, not {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise OutputError(f"decision: {key}[{i}] must be an object, not {type(item).__name__}")
    return list(value)


def _exemption(value: object, where: str) -> Exemption | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise OutputError(f"decision: {where}.exemption must be an object, not {type(value).__name__}")
    sub = f"{where}.exemption"
    return Exemption(
        id=_required_text(value, "id", sub),
        reason=_text(value, "reason", sub),
        until=_text(value, "until", sub),
        approved_by=_text(value, "approved_by", sub),
    )


def _expired(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or not all(isinstance(v, str) for v in value)
    ):
        raise OutputError(f"decision: {where}.expired_exemptions must be a list of strings")
    return tuple(value)


def _entry(kind: EntryKind, obj: Mapping[str, Any], where: str) -> Entry:
    return Entry(
        kind=kind,
        rule=_required_text(obj, "rule", where),
        app_id=_required_text(obj, "app_id", where),
        message=_text(obj, "message", where) or "",
        ban=_text(obj, "ban", where),
        app_name=_text(obj, "app_name", where),
        remediation=_text(obj, "remediation", where),
        effective_from=_text(obj, "effective_from", where),
        scope=_text(obj, "scope", where),
        enforcement=_text(obj, "enforcement", where),
        reason=_text(obj, "reason", where) if kind == "warning" else None,
        evidence=_text(obj, "evidence", where),
        exemption=_exemption(obj.get("exemption"), where) if kind == "exempted" else None,
        expired_exemptions=_expired(obj.get("expired_exemptions"), where),
    )


def _error(obj: Mapping[str, Any], where: str) -> DecisionError:
    message = obj.get("message")
    if not isinstance(message, str):
        message = json.dumps(obj, sort_keys=True, default=str)
    return DecisionError(
        code=_text(obj, "code", where) or "error", message=message, path=_text(obj, "path", where)
    )


def parse_decision(decision: Mapping[str, Any]) -> Decision:
    """The decision document as a :class:`Decision`; :class:`OutputError` when its shape is wrong."""
    if not isinstance(decision, Mapping):
        raise OutputError(f"decision must be an object, not {type(decision).__name__}")
    allow = decision.get("allow")
    if not isinstance(allow, bool):
        raise OutputError("decision: allow must be true or false")

    def entries(key: str, kind: EntryKind) -> tuple[Entry, ...]:
        return tuple(_entry(kind, obj, f"{key}[{i}]") for i, obj in enumerate(_objects(decision, key)))

    return Decision(
        allow=allow,
        device_id=_text(decision, "device_id", "decision"),
        organization=_text(decision, "organization", "decision"),
        violations=entries("violations", "violation"),
        warnings=entries("warnings", "warning"),
        exempted=entries("exempted", "exempted"),
        errors=tuple(_error(obj, f"errors[{i}]") for i, obj in enumerate(_objects(decision, "errors"))),
        evaluated_at=_text(decision, "evaluated_at", "decision"),
        policy_revision=_text(decision, "policy_revision", "decision"),
        engine=_text(decision, "engine", "decision"),
        decision_id=_text(decision, "decision_id", "decision"),
    )


def report_file(source: str) -> str | None:
    """The report's file name; ``None`` when the report came from stdin or this machine."""
    if not source or source in (STDIN_SOURCE, STDIN_LABEL, THIS_MACHINE_SOURCE):
        return None
    return source


def counted(count: int, noun: str) -> str:
    """``1 violation``, ``2 violations``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def verdict_line(decision: Decision) -> str:
    """``NON-COMPLIANT: device D, organisation O: 1 violation, 0 warnings, 0 exempted``, safe to print."""
    verdict = "COMPLIANT" if decision.allow else "NON-COMPLIANT"
    counts = (
        f"{counted(len(decision.violations), 'violation')}, {counted(len(decision.warnings), 'warning')}, "
        f"{len(decision.exempted)} exempted"
    )
    if decision.errors:
        counts += f", {counted(len(decision.errors), 'error')}"
    device = decision.device_id or "unknown"
    org = decision.organization or "unknown"
    return printable(f"{verdict}: device {device}, organisation {org}: {counts}")
