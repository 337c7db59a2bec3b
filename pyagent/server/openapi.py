"""The OpenAPI 3.1 document of the server's HTTP API, served at ``/api/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from pyagent import __version__

_COUNTS: dict[str, Any] = {
    "type": "object",
    "properties": {
        k: {"type": "integer"}
        for k in ("devices", "compliant", "non_compliant", "invalid", "undecided", "stale")
    },
}
_ERROR = {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}
_TOO_LONG = {
    "description": "the query ran past query_timeout_seconds and was stopped (code query_timeout), or "
    "waited that long for one of the process's reader_queries slots (code busy, with Retry-After)",
    "content": {"application/json": {"schema": _ERROR}},
}


def _param(name: str, description: str, where: str = "query", **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _op(
    summary: str,
    role: str,
    params: list[dict[str, Any]] | None = None,
    ok: dict[str, Any] | None = None,
    status: str = "200",
    reports: bool = False,
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        status: {"description": "OK", "content": {"application/json": {"schema": ok or {"type": "object"}}}},
        "400": {"description": "bad parameter", "content": {"application/json": {"schema": _ERROR}}},
    }
    if role == "reader":
        responses["503"] = _TOO_LONG
    if role != "anyone":
        responses["401"] = {"description": "no valid bearer token"}
        bound = ", or it is bound to another device" if reports else ""  # (token add --device)
        responses["403"] = {"description": f"the token's role is not {role}{bound}"}
    return {
        "summary": summary,
        "description": f"Role: {role}.",
        "parameters": params or [],
        "responses": responses,
        "security": [] if role == "anyone" else [{"bearer": []}],
    }


def _publish_op(params: list[dict[str, Any]]) -> dict[str, Any]:
    """``PUT /api/v1/bundles/{name}``: 201 a revision stored; 200 a retry of the current one, byte for
    byte (``stored`` false); 409 a revision that is not newer."""
    operation = _op(
        "Publish a revision: multipart bundle files, or one bundle as application/gzip or "
        "application/vnd.openpolicyagent.bundles (its target read from its contents)",
        "admin",
        params,
        status="201",
    )
    published = operation["responses"]["201"]
    operation["responses"]["200"] = {
        **published,
        "description": "the current revision again, byte for byte: nothing stored",
    }
    operation["responses"]["409"] = {
        "description": "not newer than the current revision",
        "content": {"application/json": {"schema": _ERROR}},
    }
    return operation


def document() -> dict[str, Any]:
    at = _param(
        "at", "RFC 3339 instant: answer from the history as of then (default: now)", format="date-time"
    )
    org = _param("organization", "only this organisation")
    orgless = _param(
        "no_organization",
        'true: only the devices whose decisions name no organisation (by_organization key ""); '
        "not with organization",
    )
    device = _param("device_id", "device id", "path")
    name = _param("name", "bundle name", "path")
    partition = _param("partition", "OPA's partition_name (accepted, not kept)", "path")
    summary = {
        **_COUNTS,
        "properties": {
            **_COUNTS["properties"],
            "at": {"type": "string"},
            "by_organization": {"type": "object", "additionalProperties": _COUNTS},
            "by_platform": {"type": "object", "additionalProperties": _COUNTS},
            "by_ban": {"type": "object"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pyagent server",
            "version": __version__,
            "description": "OPA management APIs (Bundles, Decision Logs, Status) and the fleet API.",
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/health": {"get": _op("200 when the database answers", "anyone")},
            "/bundles/{name}": {
                "get": _op(
                    "OPA Bundle API: the Rego build (ETag, If-None-Match, Prefer: wait=N)", "agent", [name]
                )
            },
            "/bundles/{name}/wasm": {
                "get": _op("The same revision for the embedded engine", "agent", [name])
            },
            "/logs": {
                "post": _op(
                    "OPA Decision Log API: a JSON array of events, gzip or identity", "agent", reports=True
                )
            },
            "/logs/{partition}": {
                "post": _op("The same, from an OPA with partition_name", "agent", [partition], reports=True)
            },
            "/status": {"post": _op("OPA Status API", "agent", status="204", reports=True)},
            "/status/{partition}": {
                "post": _op(
                    "The same, from an OPA with partition_name",
                    "agent",
                    [partition],
                    status="204",
                    reports=True,
                )
            },
            "/api/v1/bundles/{name}": {"put": _publish_op([name])},
            "/api/v1/summary": {
                "get": _op(
                    "Fleet summary, now or as of ?at=",
                    "reader",
                    [at, org, orgless, _param("format", "json (default) or csv")],
                    summary,
                )
            },
            "/api/v1/devices": {
                "get": _op(
                    "A page of devices' current states",
                    "reader",
                    [
                        org,
                        orgless,
                        _param("platform", "only this platform"),
                        _param("allow", "true or false: the last decision's allow"),
                        _param("compliant", "true or false: allowed, without errors, and not stale"),
                        _param("stale", "true or false"),
                        _param("ban", "devices violating this ban"),
                        _param("cursor", "next_cursor of the previous page"),
                        _param("limit", "page size, 1-1000", type="integer"),
                        _param("format", "json (default) or csv"),
                    ],
                )
            },
            "/api/v1/devices/{device_id}": {
                "get": _op(
                    "A device's current state and decision history (newest first; history_truncated: older "
                    "ones were left out); verdict_since: the first decision of the run with its verdict; "
                    "chain: the head of its decision-log chain and its breaks (null: no chained record)",
                    "reader",
                    [device, _param("history", "decisions listed (100 by default)", type="integer")],
                )
            },
            "/api/v1/devices/{device_id}/compliance": {
                "get": _op(
                    "For access gating: unknown, stale or non-compliant devices are not compliant",
                    "reader",
                    [
                        device,
                        _param(
                            "at",
                            "RFC 3339 instant: as of then, from the device's history (default: now)",
                            format="date-time",
                        ),
                    ],
                    {
                        "type": "object",
                        "properties": {
                            "device_id": {"type": "string"},
                            "compliant": {"type": "boolean"},
                            "stale": {"type": "boolean"},
                            "as_of": {"type": ["string", "null"]},
                            "decision_id": {"type": ["string", "null"]},
                        },
                        "required": ["device_id", "compliant", "stale", "as_of", "decision_id"],
                        "additionalProperties": False,
                    },
                )
            },
            "/api/v1/rollout/{name}": {
                "get": _op(
                    "Devices per active revision; refusals of the newest and errors on it, with reasons",
                    "reader",
                    [name, org, orgless],
                )
            },
            "/api/v1/history": {
                "get": _op(
                    "Counts at from, each step after it, and to, for charts",
                    "reader",
                    [
                        _param("from", "RFC 3339", format="date-time"),
                        _param("to", "RFC 3339", format="date-time"),
                        _param("step", "e.g. 3600, 15m, 1h, 1d, PT1H"),
                        org,
                        orgless,
                    ],
                )
            },
        },
    }
