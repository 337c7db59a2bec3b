"""Validate documents against the shipped JSON Schemas: a fast path and a reference path.

- Fast path (every document): ``fastjsonschema`` code compiled once per process from the schema file. It
  only answers valid / invalid.
- Reference path (invalid documents only): ``jsonschema``'s ``Draft202012Validator`` collects every error,
  which becomes a :class:`~pyagent.report.issues.SchemaIssue` with a JSON path and a readable message.

Both paths must give the same verdict on every document (the test suite checks it on a generated corpus). Two
settings make that hold by construction:

- ``pattern`` uses ECMA-262 end-of-string semantics on both sides (``$`` matches only at the very end;
  Python's ``re`` would also match before a trailing newline). ``fastjsonschema`` does this itself; the
  reference validator gets the same rule through an extended ``pattern`` keyword.
- ``format`` is an annotation on both sides, as draft 2020-12 specifies by default; the schemas enforce
  date-times with a ``pattern``.

For speed the fast path compiles a rewritten, equivalent copy of the schema: local ``$ref`` are inlined (no
function call per value) and the NUL-free pattern ``^[^\\u0000]+$`` becomes an equivalent predicate
(non-empty and no NUL) instead of a regular-expression search on every string.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import fastjsonschema

from pyagent.report.issues import SchemaIssue, issues_from_errors, json_path, printable
from pyagent.report.schemas import DECISION_SCHEMA, REPORT_SCHEMA, SchemaFileError, load_schema

__all__ = [
    "DecisionValidator",
    "ReportValidator",
    "SchemaValidator",
    "ValidationResult",
    "decision_validator",
    "fast_schema",
    "report_validator",
]

NUL_FREE_PATTERN = "^[^\\u0000]+$"
_NUL_FREE_FORMAT = "pyagent-nul-free"
_ANNOTATIONS = frozenset({"description", "title", "$comment", "examples", "format"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas"})
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_VALUES = frozenset(
    {
        "items",
        "additionalProperties",
        "propertyNames",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
_DOLLAR = re.compile(r"(?<!\\)\$")  # an unescaped "$", as fastjsonschema finds it


@dataclass(frozen=True)
class ValidationResult:
    """The verdict on one document; ``issues`` lists every violation, sorted by path (empty when valid)."""

    valid: bool
    issues: list[SchemaIssue] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------
# Reference path: jsonschema with ECMA-262 "$"


@functools.cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(_DOLLAR.sub(r"\\Z", pattern))


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema import ValidationError

    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def _reference_validator_class() -> Any:
    """jsonschema's 2020-12 validator with ECMA-262 "$"; imported on first use (it is slow to import,
    and valid documents never need it)."""
    from jsonschema import Draft202012Validator, validators

    return validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


# ----------------------------------------------------------------------------------------------------
# Fast path: an equivalent, flattened schema for fastjsonschema


def _nul_free(value: str) -> bool:
    return value != "" and "\x00" not in value


def fast_schema(schema: Mapping[str, Any], *, nul_checks: bool = True) -> dict[str, Any]:
    """An equivalent copy of ``schema`` for ``fastjsonschema``: local ``$ref`` inlined, annotations dropped,
    the NUL-free pattern replaced by the ``pyagent-nul-free`` format, or by nothing without ``nul_checks``
    (for documents known to hold no NUL). Only non-recursive ``#/$defs/...`` refs are supported; others
    raise :class:`SchemaFileError`."""
    defs = schema.get("$defs", {})

    def inline(node: Any, active: tuple[str, ...]) -> Any:
        if not isinstance(node, Mapping):  # a boolean schema
            return node
        out: dict[str, Any] = {}
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.removeprefix("#/$defs/")
            if name == ref or name not in defs or name in active:
                raise SchemaFileError(f"unsupported $ref {ref!r} (only non-recursive #/$defs/ refs)")
            out["allOf"] = [inline(defs[name], (*active, name))]
        for key, value in node.items():
            if key in _ANNOTATIONS or key in ("$ref", "$defs"):
                continue
            if key == "pattern" and value == NUL_FREE_PATTERN:
                if nul_checks:
                    out["format"] = _NUL_FREE_FORMAT
            elif key in _SCHEMA_MAPS:
                out[key] = {name: inline(sub, active) for name, sub in value.items()}
            elif key in _SCHEMA_LISTS:
                out[key] = [*out.get(key, []), *(inline(sub, active) for sub in value)]
            elif key in _SCHEMA_VALUES:
                out[key] = inline(value, active)
            else:
                out[key] = value
        if list(out) == ["allOf"] and len(out["allOf"]) == 1:  # a bare $ref: the target itself
            only: dict[str, Any] = out["allOf"][0]
            return only
        return out

    flat: dict[str, Any] = inline(schema, ())
    return flat


# ----------------------------------------------------------------------------------------------------
# Validators


class SchemaValidator:
    """Validates documents against one JSON Schema (draft 2020-12).

    ``is_valid`` is the hot path; ``validate`` adds the full list of issues for an invalid document.

    ``nul_free=True`` tells the validator that no string anywhere in the document contains U+0000, e.g.
    because the JSON text it was parsed from has no ``\\u0000`` escape (raw NUL bytes are not valid JSON
    text). The per-string NUL checks are then skipped; the verdict is the same."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self._fast = self._compile(nul_checks=True)
        self._fast_nul_free: Callable[[Any], Any] | None = None
        self._schema_for_reference = schema
        self._reference_instance: Any = None

    def _compile(self, *, nul_checks: bool) -> Callable[[Any], Any]:
        try:
            compiled: Callable[[Any], Any] = fastjsonschema.compile(
                fast_schema(self.schema, nul_checks=nul_checks),
                formats={_NUL_FREE_FORMAT: _nul_free},
                use_default=False,
            )
        except fastjsonschema.JsonSchemaDefinitionException as err:
            raise SchemaFileError(f"cannot compile schema {self.schema.get('$id', '')}: {err}") from err
        return compiled

    def _fast_for(self, nul_free: bool) -> Callable[[Any], Any]:
        if not nul_free:
            return self._fast
        if self._fast_nul_free is None:
            self._fast_nul_free = self._compile(nul_checks=False)
        return self._fast_nul_free

    def is_valid(self, document: object, *, nul_free: bool = False) -> bool:
        """The fast verdict: True when ``document`` matches the schema."""
        try:
            self._fast_for(nul_free)(document)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    def reference_issues(self, document: object) -> list[SchemaIssue]:
        """Every violation found by the reference validator (slow; empty when the document is valid)."""
        if self._reference_instance is None:
            self._reference_instance = _reference_validator_class()(self._schema_for_reference)
        return issues_from_errors(self._reference_instance.iter_errors(document), self.schema)

    def validate(self, document: object, *, nul_free: bool = False) -> ValidationResult:
        """Fast path first; on failure, every issue from the reference validator."""
        try:
            self._fast_for(nul_free)(document)
        except fastjsonschema.JsonSchemaValueException as err:
            issues = self.reference_issues(document)
            if not issues:
                # The two validators disagree: stay on the safe side, report the fast one's finding.
                issues = [_fast_issue(err)]
            return ValidationResult(valid=False, issues=issues)
        return ValidationResult(valid=True, issues=[])


def _fast_issue(err: fastjsonschema.JsonSchemaValueException) -> SchemaIssue:
    """An issue from fastjsonschema's first error (``data.apps[1].id must be ...``)."""
    steps: list[str | int] = [int(s) if s.isdigit() else s for s in map(str, (err.path or [])[1:])]
    message = str(err.message).removeprefix(str(err.name or "")).strip()
    return SchemaIssue(json_path(steps), printable(message or "does not match the schema"))


class ReportValidator(SchemaValidator):
    """Validates device reports against ``schemas/device-report.schema.json``."""

    def __init__(self, schema: Mapping[str, Any] | None = None) -> None:
        super().__init__(load_schema(REPORT_SCHEMA) if schema is None else schema)


class DecisionValidator(SchemaValidator):
    """Validates decision documents against ``schemas/decision.schema.json``."""

    def __init__(self, schema: Mapping[str, Any] | None = None) -> None:
        super().__init__(load_schema(DECISION_SCHEMA) if schema is None else schema)


@functools.cache
def report_validator() -> ReportValidator:
    """The process-wide report validator (compiled on first use)."""
    return ReportValidator()


@functools.cache
def decision_validator() -> DecisionValidator:
    """The process-wide decision validator (compiled on first use)."""
    return DecisionValidator()
