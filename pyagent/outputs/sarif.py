"""``--format sarif``: the decision as a SARIF 2.1.0 log, for code-scanning and security dashboards.

One run. ``tool.driver`` is pyagent (name, version; no ``informationUri``: the project has no site of its
own) with one ``rules`` entry per distinct rule id in the decision (in order of first appearance:
violations, warnings, exempted): ``shortDescription`` names the ban and the rule, ``help.text`` is the
remediation. Results, one per entry:

- a violation: ``level: "error"``;
- a warning: ``level: "warning"``, ``properties.reason`` = ``not_yet_effective`` / ``enforcement_warn`` /
  ``enforcement_dryrun`` / ``not_listed``, the reason in words in the message;
- an exempted breach: ``level: "error"`` with ``suppressions: [{"kind": "external", "status": "accepted",
  "justification": <exemption reason>, "properties": {"exemption_id", "until", "approved_by"}}]``, so SARIF
  viewers list it as suppressed.

Each result's location is the report: ``physicalLocation.artifactLocation.uri`` = ``source`` as a relative
URI reference (percent-encoded), left out when the report came from stdin or this machine, and a
``logicalLocation`` for the app: ``fullyQualifiedName`` = the app id, ``kind: "module"``. (The spec's kind
list, section 3.33.7, has no "package"; a module, a unit of installed code, is the closest fit.)
``partialFingerprints`` keep a result stable across runs of the same device, rule and app. The run's
``properties`` carry device_id, organization, allow, decision_id, policy_revision, evaluated_at, engine and
source; decision ``errors`` become ``invocations[0].toolExecutionNotifications``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

from pyagent import __version__
from pyagent.outputs.base import (
    DISPLAY_NAME_NOTE,
    Decision,
    Entry,
    OutputError,
    OutputFormat,
    parse_decision,
    report_file,
)

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
TOOL_NAME = "pyagent"
FINGERPRINT_KEY = "pyagentDeviceRuleApp/v1"
APP_LOCATION_KIND = "module"

JsonObject = dict[str, Any]


def artifact_uri(source: str) -> str | None:
    """``source`` (a report file name) as a URI reference; ``None`` for stdin and this machine."""
    file = report_file(source)
    return None if file is None else quote(file.replace("\\", "/"), safe="/")


def _is_timestamp(value: str | None) -> bool:
    if not value:
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _present(pairs: Mapping[str, Any]) -> JsonObject:
    """``pairs`` without the ``None`` values and empty lists."""
    return {key: value for key, value in pairs.items() if value is not None and value != []}


def _rules(decision: Decision) -> list[JsonObject]:
    by_rule: dict[str, list[Entry]] = {}
    for entry in decision.entries:
        by_rule.setdefault(entry.rule, []).append(entry)
    rules: list[JsonObject] = []
    for rule_id, entries in by_rule.items():
        first = entries[0]
        remediations = list(dict.fromkeys(e.remediation for e in entries if e.remediation))
        subject = f"Ban {first.ban}" if first.ban else "App ban"
        descriptor: JsonObject = {
            "id": rule_id,
            "shortDescription": {"text": f"{subject} (rule {rule_id})"},
        }
        if remediations:
            descriptor["help"] = {"text": "\n".join(remediations)}
        descriptor["properties"] = _present({"ban": first.ban, "tags": ["app-ban"]})
        rules.append(descriptor)
    return rules


def _message(entry: Entry) -> str:
    lines = [entry.message or f"{entry.app_label} breaks rule {entry.rule}"]
    if entry.kind == "warning":
        lines.append(f"Warning: {entry.reason_text or 'unknown reason'}.")
    if entry.exemption is not None:
        lines.append(f"Exempted by {entry.exemption.id}.")
    if entry.needs_evidence_note:
        lines.append(f"Note: {DISPLAY_NAME_NOTE}.")
    return "\n".join(lines)


def _location(entry: Entry, uri: str | None) -> JsonObject:
    location: JsonObject = {}
    if uri is not None:
        location["physicalLocation"] = {"artifactLocation": {"uri": uri}}
    logical: JsonObject = {"name": entry.app_name or entry.app_id, "fullyQualifiedName": entry.app_id}
    logical["kind"] = APP_LOCATION_KIND
    location["logicalLocations"] = [logical]
    return location


def _fingerprint(decision: Decision, entry: Entry) -> str:
    key = "\0".join((decision.device_id or "", entry.rule, entry.app_id))
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _result(decision: Decision, entry: Entry, rule_index: int, uri: str | None) -> JsonObject:
    result: JsonObject = {
        "ruleId": entry.rule,
        "ruleIndex": rule_index,
        "kind": "fail",
        "level": "warning" if entry.kind == "warning" else "error",
        "message": {"text": _message(entry)},
        "locations": [_location(entry, uri)],
        "partialFingerprints": {FINGERPRINT_KEY: _fingerprint(decision, entry)},
    }
    if entry.exemption is not None:
        ex = entry.exemption
        suppression: JsonObject = {"kind": "external", "status": "accepted"}
        if ex.reason:
            suppression["justification"] = ex.reason
        suppression["properties"] = _present(
            {"exemption_id": ex.id, "until": ex.until, "approved_by": ex.approved_by}
        )
        result["suppressions"] = [suppression]
    result["properties"] = _present(
        {
            "app_id": entry.app_id,
            "app_name": entry.app_name,
            "ban": entry.ban,
            "scope": entry.scope,
            "enforcement": entry.enforcement,
            "effective_from": entry.effective_from,
            "reason": entry.reason,
            "evidence": entry.evidence,
            "remediation": entry.remediation,
            "expired_exemptions": list(entry.expired_exemptions),
        }
    )
    return result


def _invocation(decision: Decision) -> JsonObject:
    invocation: JsonObject = {"executionSuccessful": not decision.errors}
    if _is_timestamp(decision.evaluated_at):
        invocation["endTimeUtc"] = decision.evaluated_at
    if decision.errors:
        invocation["toolExecutionNotifications"] = [
            {
                "level": "error",
                "message": {"text": err.message},
                "descriptor": {"id": err.code},
                **({"properties": {"path": err.path}} if err.path else {}),
            }
            for err in decision.errors
        ]
    return invocation


def sarif_log(decision: Decision, source: str) -> JsonObject:
    """The SARIF log of one decision, as a JSON-ready dict."""
    rules = _rules(decision)
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    uri = artifact_uri(source)
    run: JsonObject = {
        "tool": {
            "driver": {
                "name": TOOL_NAME,
                "version": __version__,
                "semanticVersion": __version__,
                "rules": rules,
            }
        },
        "invocations": [_invocation(decision)],
        "results": [_result(decision, e, index[e.rule], uri) for e in decision.entries],
        "properties": _present(
            {
                "device_id": decision.device_id,
                "organization": decision.organization,
                "allow": decision.allow,
                "decision_id": decision.decision_id,
                "policy_revision": decision.policy_revision,
                "evaluated_at": decision.evaluated_at,
                "engine": decision.engine,
                "source": source,
            }
        ),
    }
    return {"$schema": SARIF_SCHEMA_URI, "version": SARIF_VERSION, "runs": [run]}


class SarifFormat(OutputFormat):
    """The decision as a SARIF 2.1.0 log."""

    name: ClassVar[str] = "sarif"
    media_type: ClassVar[str] = "application/sarif+json"

    def render(self, decision: Mapping[str, Any], *, source: str) -> str:
        log = sarif_log(parse_decision(decision), source)
        try:
            return json.dumps(log, indent=2, ensure_ascii=True, allow_nan=False) + "\n"
        except (TypeError, ValueError) as exc:  # pragma: no cover - parse_decision admits only JSON types
            raise OutputError(f"decision cannot be written as SARIF: {exc}") from exc
