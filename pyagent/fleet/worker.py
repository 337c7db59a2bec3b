"""Deciding fleet items, in worker processes (or in-process for small runs).

Each process builds its engines once (``init``); items travel as bytes and come back as compact
device results. A bad report or an engine failure becomes that device's ``errors``; it never stops
the run and never reads as allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyagent.decide import apply_org, decide, server_problem
from pyagent.engines.base import Engine, EngineError, EngineSettings
from pyagent.engines.select import build_engine
from pyagent.errors import InvalidInputError, NoDecisionError
from pyagent.fleet.sources import Item
from pyagent.report.load import ReportInvalidError, parse_report

_engines: list[Engine] = []


def init(settings: Sequence[EngineSettings]) -> None:
    """Build this process's engines (one per policy version being compared)."""
    for engine in _engines:
        engine.close()
    _engines[:] = [build_engine(s) for s in settings]


def decide_batch(batch: Sequence[Item], at: str, org: str | None) -> list[list[dict[str, Any]]]:
    """For every item, one device result per engine."""
    return [decide_item(item, at, org) for item in batch]


def decide_item(item: Item, at: str, org: str | None) -> list[dict[str, Any]]:
    if item.error:
        return [_invalid(item.source, None, [{"code": "invalid_report", "message": item.error}], org)] * len(
            _engines
        )
    try:
        report = parse_report(item.data, item.source)
    except ReportInvalidError as err:
        errors = [{"code": "invalid_report", "path": i.path, "message": i.message} for i in err.issues]
    except InvalidInputError as err:
        return [_invalid(item.source, None, [{"code": "invalid_report", "message": str(err)}], org)] * len(
            _engines
        )
    else:
        report, _notes = apply_org(report, org)
        return [_decide_one(engine, report, at, item.source) for engine in _engines]
    # Out of the except clause, its traceback (and the parsed document in it) is gone: one at a time.
    return [_invalid(item.source, _peek_device(item.data, item.source), errors, org)] * len(_engines)


def _decide_one(engine: Engine, report: dict[str, Any], at: str, source: str) -> dict[str, Any]:
    device = report["device"]
    try:
        decision = decide(engine, report, at=at)
        problem = server_problem(decision)  # an OPA loaded wrongly: the server's fault, not the report's
        if problem is not None:
            raise EngineError(problem)
    except NoDecisionError as err:  # (also a policy that aborts for this device alone: the others go on)
        return {
            **_base(source, device),
            "allow": False,
            "violations": [],
            "warnings": [],
            "exempted": [],
            "errors": [{"code": "no_decision", "message": str(err)}],
        }
    return {
        **_base(source, device),
        "organization": decision["organization"],
        "allow": decision["allow"],
        "violations": decision["violations"],
        "warnings": decision["warnings"],
        "exempted": decision["exempted"],
        "errors": decision["errors"],
    }


def _base(source: str, device: dict[str, Any] | None) -> dict[str, Any]:
    device = device or {}
    return {
        "device_id": device.get("id") if isinstance(device.get("id"), str) else None,
        "organization": device.get("organization") if isinstance(device.get("organization"), str) else None,
        "platform": device.get("platform") if isinstance(device.get("platform"), str) else None,
        "source": source,
    }


def _invalid(
    source: str, device: dict[str, Any] | None, errors: list[dict[str, Any]], org: str | None = None
) -> dict[str, Any]:
    """An invalid report's result; under ``org`` when one is given (``--org`` wins over the report's)."""
    base = _base(source, device)
    if org is not None:
        base["organization"] = org
    return {
        **base,
        "allow": False,
        "violations": [],
        "warnings": [],
        "exempted": [],
        "errors": errors,
    }


def _peek_device(data: bytes, source: str) -> dict[str, Any] | None:
    """The device part of a schema-invalid report, for naming it in the output."""
    try:
        document = parse_report(data, source, validate=False)
    except InvalidInputError:
        return None
    device = document.get("device")
    return device if isinstance(device, dict) else None
