"""Validate documents against the shipped JSON Schemas: a fast path and a reference path.

- Fast path (every document): a ``jsonschema-rs`` (Rust) validator built once per process from the schema
  file as it is, no rewriting. It only answers valid / invalid.
- Reference path (invalid documents only): ``jsonschema``'s ``Draft202012Validator`` collects every error,
  which becomes a :class:`~pyagent.report.issues.SchemaIssue` with a JSON path and a readable message.
  So that a refusal costs about what an acceptance does (:mod:`pyagent.report.bounds`): values over the
  schema's size bounds are the refusal on their own, found without it; otherwise it runs on the document
  narrowed to the items where jsonschema-rs sees errors (the same issues, at the same paths).

Both paths must give the same verdict on every document (the test suite checks it on a generated corpus).
These settings make that hold by construction:

- Both use draft 2020-12, whatever ``$schema`` says.
- ``format`` is an annotation on both sides, as draft 2020-12 specifies by default (``validate_formats=False``
  for jsonschema-rs); the schemas enforce date-times with a ``pattern``.
- ``pattern`` uses ECMA-262 end-of-string semantics on both sides (``$`` matches only at the very end;
  Python's ``re`` would also match before a trailing newline). jsonschema-rs compiles patterns with Rust's
  ``regex`` crate (``RegexOptions``: linear time, no backtracking limit that could fail a match), where ``$``
  without the multi-line flag is the end of the text; the reference validator gets the same rule through an
  extended ``pattern`` keyword.
- A document jsonschema-rs cannot read raises ``ValueError`` there: a string that is not Unicode text (a lone
  surrogate such as ``"\\ud800"``; the loader rejects those before validation), a key that is not a
  string, a value of a type outside JSON (``bytes``, subclasses of ``str`` or ``int``). The reference
  validator then gives the verdict.

Documents are JSON values as :func:`json.loads` builds them. For other Python types the fast verdict may
differ: a ``tuple`` counts as an array and a ``decimal.Decimal`` as a number there, not in the reference.

jsonschema-rs is imported when the first validator is built (7-9 ms in ``pyagent check``, most of it
``email.utils``), so importing :mod:`pyagent.report` stays cheap for commands that never validate.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyagent.report.issues import (
    SchemaIssue,
    issues_from_errors,
    json_path,
    located_issues,
    printable,
    show_value,
    sorted_issues,
)
from pyagent.report.refs import DATA_KEYWORDS, inline_refs
from pyagent.report.schemas import DECISION_SCHEMA, REPORT_SCHEMA, SchemaFileError, load_schema

if TYPE_CHECKING:
    import jsonschema_rs

    from pyagent.report.bounds import Renumbering, SchemaBounds

__all__ = [
    "DecisionValidator",
    "ReportValidator",
    "SchemaValidator",
    "ValidationResult",
    "decision_validator",
    "report_validator",
]

_DOLLAR = re.compile(r"(?<!\\)\$")  # an unescaped "$"
#: On a refusal, the items with problems listed one by one in each long array; the others are counted.
MAX_LISTED_ITEMS = 100


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


# Keywords that check a value without descending into it and, when it fails, put repr() of the whole value
# in jsonschema's message: on a deeply nested array or object that repr() overflows the stack. Only a failure
# builds the message, and the issue text comes from issues.py, never from that message.
_LEAF_KEYWORDS = ("type", "enum", "minItems", "maxItems", "minProperties", "maxProperties")


def _bounded(name: str, original: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    def keyword(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
        try:
            yield from original(validator, value, instance, schema)
        except RecursionError:  # repr() of a deeply nested value, in a failure's message
            from jsonschema import ValidationError

            yield ValidationError(f"{show_value(instance)} does not match {name!r} {value!r}")

    return keyword


@functools.cache
def _reference_validator_class() -> Any:
    """jsonschema's 2020-12 validator with ECMA-262 "$" and leaf keywords that survive deep nesting;
    imported on first use (it is slow to import, and valid documents never need it)."""
    from jsonschema import Draft202012Validator, validators

    keywords = {name: _bounded(name, Draft202012Validator.VALIDATORS[name]) for name in _LEAF_KEYWORDS}
    return validators.extend(Draft202012Validator, {**keywords, "pattern": _ecma_pattern})


# ----------------------------------------------------------------------------------------------------
# Fast path: jsonschema-rs


def _fast_validator(schema: Mapping[str, Any]) -> jsonschema_rs.Validator:
    """A jsonschema-rs validator for ``schema`` (draft 2020-12, formats not asserted, Rust ``regex``
    patterns, no network; local ``$ref``s written in place, :mod:`pyagent.report.refs`). Raises
    :class:`SchemaFileError` when the schema cannot be compiled, e.g. a pattern with look-around or
    back-references (the ``regex`` crate has neither), or a ``$ref`` outside the schema."""
    import jsonschema_rs

    try:
        return jsonschema_rs.Draft202012Validator(
            inline_refs(schema),
            validate_formats=False,
            pattern_options=jsonschema_rs.RegexOptions(),
            offline=True,
        )
    except (ValueError, jsonschema_rs.ReferencingError) as err:
        message = printable(str(getattr(err, "message", err)).partition("\n")[0], 300)
        raise SchemaFileError(f"cannot compile schema {schema.get('$id', '')}: {message}") from err


NUL_FREE_PATTERN = "^[^\\u0000]+$"
"""The schemas' pattern for "no NUL character" (with ``minLength: 1`` beside it for "non-empty")."""
CONTROL_FREE_PATTERN = "^[^\\u0000-\\u001f\\u007f]+$"
"""The identifiers' pattern: no NUL, tab, line break or other control character."""
_CLEAN_PATTERNS = (NUL_FREE_PATTERN, CONTROL_FREE_PATTERN)


def _without_nul_patterns(node: Any) -> Any:
    """``node`` with every ``"pattern": NUL_FREE_PATTERN`` (or ``CONTROL_FREE_PATTERN``) replaced by
    ``minLength`` of at least 1 (what is left of it without control characters): the schema for
    documents known to hold none, where the pattern costs a regular-expression search on every string
    (a third of the fast path's time on a 200-app report)."""
    if isinstance(node, list):
        return [_without_nul_patterns(value) for value in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: value if key in DATA_KEYWORDS else _without_nul_patterns(value) for key, value in node.items()
    }
    length = out.get("minLength", 0)
    if out.get("pattern") in _CLEAN_PATTERNS and type(length) is int:
        del out["pattern"]
        out["minLength"] = max(length, 1)
    return out


def _item_valid(validator: jsonschema_rs.Validator, item: object) -> bool:
    try:
        return bool(validator.is_valid(item))
    except ValueError:  # not readable by jsonschema-rs: kept, for the reference validator to judge
        return False


def _replaced(document: Any, where: tuple[str, ...], value: object) -> Any:
    """``document`` with the value at ``where`` (keys of nested objects) replaced; copies on the way."""
    if not where:
        return value
    copy = dict(document)
    copy[where[0]] = _replaced(document[where[0]], where[1:], value)
    return copy


# ----------------------------------------------------------------------------------------------------
# Validators


class SchemaValidator:
    """Validates documents against one JSON Schema (draft 2020-12).

    ``is_valid`` is the hot path; ``validate`` adds the full list of issues for an invalid document.

    ``nul_free=True`` tells the validator that no string anywhere in the document contains U+0000 or
    another control character (the loader passes it when the JSON text has no escape of one,
    :func:`~pyagent.report.load.control_free`: raw C0 controls are not valid JSON text, raw DEL is
    looked for). The
    first verdict then comes from the schema without its NUL and control patterns, which could only
    pass (0.021 instead of 0.032 ms for 200 apps); a document refused goes the same way as without it.
    That validator is compiled when the validator is made (a schema that does not compile is refused
    then); the one with the patterns when it is first needed."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        stripped = _without_nul_patterns(schema)
        self._fast_nul_free = _fast_validator(stripped)
        self._fast_all: jsonschema_rs.Validator | None = self._fast_nul_free if stripped == schema else None
        self._reference_instance: Any = None
        self._bounds: SchemaBounds | None = None
        self._item_validators: dict[tuple[int, ...], jsonschema_rs.Validator | None] = {}
        self._size_validator: jsonschema_rs.Validator | bool | None = None

    @property
    def _fast(self) -> jsonschema_rs.Validator:
        """The fast validator of the whole schema, NUL patterns included."""
        if self._fast_all is None:
            self._fast_all = _fast_validator(self.schema)
        return self._fast_all

    def _first(self, nul_free: bool) -> jsonschema_rs.Validator:
        return self._fast_nul_free if nul_free else self._fast

    def _reference(self) -> Any:
        if self._reference_instance is None:
            self._reference_instance = _reference_validator_class()(self.schema)
        return self._reference_instance

    def is_valid(self, document: object, *, nul_free: bool = False) -> bool:
        """The fast verdict: True when ``document`` matches the schema."""
        try:
            return self._first(nul_free).is_valid(document)
        except ValueError:  # not readable by jsonschema-rs (see the module docstring): the reference decides
            return bool(self._reference().is_valid(document))

    def reference_issues(self, document: object) -> list[SchemaIssue]:
        """Every violation found by the reference validator (slow; empty when the document is valid)."""
        return issues_from_errors(self._reference().iter_errors(document), self.schema)

    def _size_bounds(self) -> SchemaBounds:
        if self._bounds is None:
            from pyagent.report.bounds import SchemaBounds

            self._bounds = SchemaBounds(self.schema)
        return self._bounds

    def size_issues(self, document: object) -> list[SchemaIssue]:
        """The document's values over a size bound of the schema (cheap; see :mod:`pyagent.report.bounds`):
        a fast validator of the size keywords alone says whether there is any, then the walk lists them."""
        if self._size_validator is None:
            from pyagent.report.bounds import size_schema

            try:
                self._size_validator = _fast_validator(size_schema(self.schema))
            except SchemaFileError:
                self._size_validator = False
        if isinstance(self._size_validator, bool):  # the size keywords could not be compiled alone
            return self._size_bounds().check(document)
        if _item_valid(self._size_validator, document):
            return []
        return self._size_bounds().check(document)

    def narrowed_issues(self, document: object) -> list[SchemaIssue]:
        """:meth:`reference_issues`, found on the document narrowed to the items where the fast validator
        sees errors (one bad app of 100,000: 0.1 s instead of 8 s); the same issues, at the same paths.
        In a long array, only the first :data:`MAX_LISTED_ITEMS` items with problems are listed; the
        others are counted, in one last issue per array (100,000 bad apps: 0.2 s instead of 20 s)."""
        from pyagent.report.bounds import widen

        capped, cut, omitted = self._capped(document)
        renumbering: Renumbering = {}
        try:
            paths = [tuple(error.instance_path) for error in self._fast.iter_errors(capped)]
        except ValueError:  # not readable by jsonschema-rs (see the module docstring)
            narrowed = capped
        else:
            narrowed, renumbering = self._size_bounds().narrow(capped, paths)
        located = located_issues(self._reference().iter_errors(narrowed), self.schema)
        found = sorted_issues(
            (widen(widen(location, renumbering), cut), message) for location, message in located
        )
        listed = [SchemaIssue(json_path(location), message) for location, message in found]
        return listed + [
            SchemaIssue(
                json_path(where),
                f"and {count:,} more items with problems, not listed (the first {MAX_LISTED_ITEMS} are)",
                omitted=count,
            )
            for where, count in omitted
        ]

    def _capped(self, document: object) -> tuple[object, Renumbering, list[tuple[tuple[str, ...], int]]]:
        """``document`` with each long array judged item by item cut to its first
        :data:`MAX_LISTED_ITEMS` items with problems (found by a fast validator of the items' schema);
        the indexes those items had; and, per array, how many items with problems were left out."""
        capped: Any = document
        cut: Renumbering = {}
        omitted: list[tuple[tuple[str, ...], int]] = []
        for where, items, node in self._size_bounds().long_arrays(document, longer_than=MAX_LISTED_ITEMS):
            item_validator = self._item_validator(node.schemas)
            if item_validator is None:
                continue
            bad = [index for index, item in enumerate(items) if not _item_valid(item_validator, item)]
            kept = bad[:MAX_LISTED_ITEMS]
            capped = _replaced(capped, where, [items[index] for index in kept])
            cut[where] = kept
            if len(bad) > len(kept):
                omitted.append((where, len(bad) - len(kept)))
        return capped, cut, omitted

    def _item_validator(self, schemas: tuple[Mapping[str, Any], ...]) -> jsonschema_rs.Validator | None:
        """A fast validator of a value all of ``schemas`` (subschemas of this schema) apply to, or None
        when they cannot be compiled on their own (then nothing is cut)."""
        key = tuple(id(schema) for schema in schemas)
        if key not in self._item_validators:
            root = {k: self.schema[k] for k in ("$schema", "$defs") if k in self.schema}
            try:
                self._item_validators[key] = _fast_validator({**root, "allOf": list(schemas)})
            except SchemaFileError:
                self._item_validators[key] = None
        return self._item_validators[key]

    def validate(self, document: object, *, nul_free: bool = False) -> ValidationResult:
        """Fast path first; on failure, the size issues if there are any (then nothing more is checked, so
        that a refusal costs no more than an acceptance), else every issue from the reference validator."""
        fast: bool | None
        try:
            fast = bool(self._first(nul_free).is_valid(document))
        except ValueError:  # not readable by jsonschema-rs: the reference decides
            fast = None
        if fast:
            return ValidationResult(valid=True, issues=[])
        issues = self.size_issues(document) or (
            self.reference_issues(document) if fast is None else self.narrowed_issues(document)
        )
        if fast is None or issues:
            return ValidationResult(valid=not issues, issues=issues)
        # The two validators disagree: stay on the safe side, report the fast one's finding.
        return ValidationResult(valid=False, issues=[self._fast_issue(document)])

    def _fast_issue(self, document: object) -> SchemaIssue:
        """An issue from jsonschema-rs's first error."""
        try:
            error = next(iter(self._fast.iter_errors(document)), None)
        except ValueError:
            error = None
        if error is None:
            return SchemaIssue("$", "does not match the schema")
        return SchemaIssue(json_path(error.instance_path), printable(error.message or "does not match"))


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
    """The process-wide report validator (built on first use)."""
    return ReportValidator()


@functools.cache
def decision_validator() -> DecisionValidator:
    """The process-wide decision validator (built on first use)."""
    return DecisionValidator()
