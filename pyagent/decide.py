"""decide: one device report in, one decision document out (CONTRACT section 2)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from pyagent.engines.base import Engine, EngineError
from pyagent.errors import InvalidInputError, and_more

_ENTRY_LISTS = ("violations", "warnings", "exempted", "errors")

#: Policy error codes that are the user's input problem (exit 2), with the hint we give.
INPUT_ERROR_HINTS = {
    "missing_organization": "give --org, or set device.organization in the report",
    "unknown_organization": "give one of the organisations the policy data defines",
    "invalid_time": "give --at as an RFC 3339 timestamp",
}


class PolicyDecisionError(InvalidInputError):
    """The policy answered with errors instead of a decision (unknown organisation, bad data)."""

    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.errors = errors


def apply_org(report: Mapping[str, Any], org: str | None) -> tuple[dict[str, Any], list[str]]:
    """The report with ``--org`` applied, and notes to tell the user. Flags win over the report."""
    result = dict(report)  # shallow: only `device` is replaced, the report given is not modified
    notes: list[str] = []
    if org is None:
        return result, notes
    device = result.get("device")
    if isinstance(device, dict):
        device = result["device"] = dict(device)
        previous = device.get("organization")
        if previous is not None and previous != org:
            notes.append(f"--org {org} overrides the report's organization {previous}")
        device["organization"] = org
    return result, notes


def decide(engine: Engine, report: Mapping[str, Any], *, at: str) -> dict[str, Any]:
    """Evaluate ``report`` at ``at`` and return the full decision document.

    Raises :class:`EngineError` (exit 3) when the engine's answer is not a decision, and
    returns a decision with ``errors`` (and ``allow`` false) when the policy reports errors.
    ``decision_id`` is the engine's own when it gives one (an OPA server that logs decisions), so
    that OPA's decision log and pyagent's name the same decision; else a new UUID.
    """
    result = engine.evaluate({"at": at, "report": report})
    _check_shape(result, engine)
    device = report.get("device", {})
    device_id = device.get("id") if isinstance(device, Mapping) else None
    organization = device.get("organization") if isinstance(device, Mapping) else None
    check_answer(result, engine, device_id=device_id, at=at, organization=organization)
    errors = list(result["errors"])
    revision = str(result.get("policy_revision", "unversioned")) + engine.revision_suffix
    decision: dict[str, Any] = {
        "device_id": device_id,
        "organization": result.get("organization"),
        "allow": bool(result["allow"]) and not errors and not result["violations"],
        "violations": result["violations"],
        "warnings": result["warnings"],
        "exempted": result["exempted"],
        "errors": errors,
        "evaluated_at": at,
        "policy_revision": revision,
        "engine": engine.decided_by.value,
        "decision_id": engine.last_decision_id or str(uuid.uuid4()),
    }
    if engine.fallback_reason:
        decision["fallback_reason"] = engine.fallback_reason
    return decision


#: Policy error codes that say the policy's data is in error (a malformed value, organisations that
#: inherit in a cycle or from one that is not defined), whatever device asks.
DATA_ERROR_CODES = frozenset({"invalid_policy_data", "inheritance_cycle", "unknown_parent_organization"})
#: Policy error codes that say how the policy was loaded, not what the user gave: no decision could
#: be had from that policy (exit 3), whichever engine holds it, and no device is to blame for it.
SERVER_ERROR_CODES = frozenset({"misconfigured_data_root", "missing_policy_data", *DATA_ERROR_CODES})


def server_problem(decision: Mapping[str, Any]) -> str | None:
    """Why a decision is none (its policy loaded wrongly, without its data, or with data in error:
    :data:`SERVER_ERROR_CODES`; pyagent checks the data it loads itself, so the last comes from an OPA
    or a bundle built without those checks), or None when its errors, if any, are about the device."""
    errors = decision.get("errors") or []
    if errors and all(e.get("code") in SERVER_ERROR_CODES for e in errors):
        holder = "the OPA server's policy" if decision.get("engine") == "opa" else "the policy"
        fault = "has data in error" if errors[0].get("code") in DATA_ERROR_CODES else "is loaded wrongly"
        return f"{holder} {fault}: {errors[0].get('message')}{and_more(len(errors) - 1, 'error')}"
    return None


def raise_for_policy_errors(decision: Mapping[str, Any], *, source: str) -> None:
    """Turn a decision with policy errors into a :class:`PolicyDecisionError` (exit 2), or an
    :class:`EngineError` (exit 3) when they are an OPA server's own (:func:`server_problem`)."""
    errors = decision.get("errors") or []
    if not errors:
        return
    first = errors[0]
    problem = server_problem(decision)
    if problem is not None:
        raise EngineError(problem)
    hint = INPUT_ERROR_HINTS.get(str(first.get("code")), "fix the policy data")
    more = and_more(len(errors) - 1, "error")
    raise PolicyDecisionError(f"{source}: {first.get('message')}{more}; {hint}", list(errors))


def check_answer(
    result: Mapping[str, Any], engine: Engine, *, device_id: object, at: str, organization: object = None
) -> None:
    """Refuse (:class:`EngineError`, exit 3) an answer about another question: the policy echoes the
    device it decided for (``device_id``), its organisation, the instant (``evaluated_at``, which is
    ``input.at``) and its revision; each must be the one asked about, and the revision the expected
    one when configured. Every engine's answer goes through here, so a replayed or misrouted answer
    (another organisation's rules: another verdict) never decides."""
    where = f"{engine.name.value} engine"
    answered = result.get("device_id")
    if answered != device_id:
        raise EngineError(
            f"{where}: the answer is about device {_shown(answered)}, not {_shown(device_id)}; refused"
        )
    answered = result.get("organization")
    if answered != organization:
        raise EngineError(
            f"{where}: the answer is for organisation {_shown(answered)}, not {_shown(organization)}; refused"
        )
    instant = result.get("evaluated_at")
    if instant != at:
        raise EngineError(
            f"{where}: the answer is about the instant {_shown(instant)}, not {_shown(at)}; refused"
        )
    expected = engine.expected_revision
    revision = result.get("policy_revision")
    if expected is not None and revision != expected:
        raise EngineError(
            f"{where}: the answer is from policy revision {_shown(revision)}, not the expected "
            f"{_shown(expected)}; refused"
        )


def _shown(value: object) -> str:
    """A value from an answer, quoted and cut short, for an error message."""
    if value is None:
        return "(none)"
    text = json.dumps(value, ensure_ascii=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_shape(result: Mapping[str, Any], engine: Engine) -> None:
    if not isinstance(result.get("allow"), bool):
        raise EngineError(f"{engine.name.value} engine: the policy result has no boolean 'allow'")
    for key in _ENTRY_LISTS:
        value = result.get(key)
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise EngineError(f"{engine.name.value} engine: the policy result has no list of objects {key!r}")
