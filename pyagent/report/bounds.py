"""A JSON Schema's size bounds, read from the schema itself and checked before the deep validation.

The reference validator (``jsonschema``, pure Python) visits every value of a document before it can list
its issues: on a report with 150,003 apps it took 13 s to say ``$.apps: too many items``, where the fast
path had said "invalid" at once and a valid report of the same size is accepted in well under a second.
A refusal must cost no more than an acceptance, so the size keywords come first:

- ``maxItems``, ``maxLength``, ``maxProperties``, and ``maxLength`` under ``propertyNames``, taken from
  the schema where they surely apply: the node itself, ``properties``, ``items``, ``additionalProperties``,
  through ``$ref`` (local) and ``allOf``. Under ``anyOf``, ``oneOf``, ``not`` or ``if``, as ``items``
  beside ``prefixItems`` or ``additionalProperties`` beside ``patternProperties``, a keyword may or may not
  apply: it is left to the reference validator.
- One walk over the document that never enters a container over its own bound (the 150,003 apps are
  counted, not visited) nor a value the schema says nothing more about (``extra``'s values).
- Every issue found is one the reference validator reports, with the same message (``issues.too_big``).
  When there is any, they are the refusal and the deep validation is skipped.

``x-max-document-bytes`` (the whole document, in bytes) and ``x-max-document-values`` (the JSON values it
holds) are read here too; the loader enforces both before parsing.

Within the bounds, one bad app among 100,000 still cost 8 s of the reference validator: :meth:`narrow`
keeps, in each array judged item by item, only the items where the fast validator sees errors, so that
the reference validator runs on those (and :func:`widen` puts the issues back at their own paths).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from pyagent.report.issues import Location, SchemaIssue, json_path, name_too_long, sorted_issues, too_big
from pyagent.report.schemas import REPORT_SCHEMA, SchemaFileError, load_schema

__all__ = [
    "Renumbering",
    "SchemaBounds",
    "report_bounds",
    "report_document_bytes",
    "report_document_values",
    "size_schema",
    "widen",
]

Schema = Mapping[str, Any]
#: For each array narrowed, by its location in the narrowed document: the indexes its items had.
Renumbering = dict[tuple[str | int, ...], list[int]]
_SIZE_KEYWORDS = (("maxLength", str), ("maxItems", list), ("maxProperties", dict))
#: The keywords of a schema under which a container may be narrowed (:meth:`SchemaBounds.narrow`): each
#: looks at the container's keys, or at one child at a time, or is an annotation. ``maxItems`` holds on
#: fewer items once the size check has passed. Not here: ``minItems``, ``uniqueItems``, ``contains``,
#: ``prefixItems``, ``const`` and ``enum`` (they see the whole array or value), and the applicators that
#: may or may not apply (``anyOf``, ``oneOf``, ``not``, ``if``, ``dependentSchemas``, ``unevaluated*``).
_PER_CHILD = frozenset(
    {
        "$schema",
        "$id",
        "$anchor",
        "$comment",
        "$defs",
        "definitions",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "format",
        "$ref",
        "allOf",
        "type",
        "properties",
        "additionalProperties",
        "required",
        "dependentRequired",
        "propertyNames",
        "minProperties",
        "maxProperties",
        "items",
        "maxItems",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
    }
)
_HERE = None  # in a trie of paths: a path ends here (no step of a path is None)
_MAX_NARROW_DEPTH = 64


def _limit(schema: Schema, keyword: str) -> int | None:
    value = schema.get(keyword)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Node:
    """The bounds that apply to one value: those of every schema in ``schemas`` (a ``$ref``/``allOf``
    closure), and how to find its children's nodes."""

    def __init__(self, owner: SchemaBounds, schemas: tuple[Schema, ...]) -> None:
        self._owner = owner
        self._schemas = schemas
        self.limits: list[tuple[str, type, int]] = [
            (keyword, kind, limit)
            for schema in schemas
            for keyword, kind in _SIZE_KEYWORDS
            if (limit := _limit(schema, keyword)) is not None
        ]
        lengths = [limit for keyword, _, limit in self.limits if keyword == "maxLength"]
        self.max_length = min(lengths) if lengths else None
        names = owner.closure(s.get("propertyNames") for s in schemas)
        name_limits = [limit for s in names if (limit := _limit(s, "maxLength")) is not None]
        self.max_name_length = min(name_limits) if name_limits else None
        self._named: dict[str, _Node | None] = {}
        self._names = {
            key for s in schemas if isinstance(s.get("properties"), Mapping) for key in s["properties"]
        }

    @property
    def schemas(self) -> tuple[Schema, ...]:
        """Every schema that applies here (the ``$ref``/``allOf`` closure)."""
        return self._schemas

    @functools.cached_property
    def per_child(self) -> bool:
        """Whether every schema here judges a container by its keys and each child alone."""
        return all(key in _PER_CHILD or key.startswith("x-") for s in self._schemas for key in s)

    @functools.cached_property
    def items(self) -> _Node | None:
        """The node of every item of an array (``items`` beside ``prefixItems`` may not apply to all)."""
        return self._owner.node(s.get("items") for s in self._schemas if "prefixItems" not in s)

    @functools.cached_property
    def others(self) -> _Node | None:
        """The node of every field no schema names."""
        return self._owner.node(self._subschemas(None))

    def child(self, key: str) -> _Node | None:
        """The node of field ``key``."""
        if key not in self._names:
            return self.others
        if key not in self._named:
            self._named[key] = self._owner.node(self._subschemas(key))
        return self._named[key]

    def _subschemas(self, key: str | None) -> list[Any]:
        found: list[Any] = []
        for schema in self._schemas:
            properties = schema.get("properties")
            if isinstance(properties, Mapping) and key in properties:
                found.append(properties[key])
            elif "patternProperties" not in schema:  # else additionalProperties may not apply to ``key``
                found.append(schema.get("additionalProperties"))
        return found


class SchemaBounds:
    """The size bounds of one schema; :meth:`check` lists a document's size issues, cheaply."""

    def __init__(self, schema: Schema) -> None:
        self._root = schema
        self._nodes: dict[tuple[int, ...], _Node | None] = {}
        self.document_bytes = _limit(schema, "x-max-document-bytes")
        self._top = self.node([schema])

    def closure(self, schemas: Any) -> tuple[Schema, ...]:
        """``schemas`` and every schema they bring in through ``$ref`` and ``allOf``, each once."""
        found: dict[int, Schema] = {}
        pending = [s for s in schemas if isinstance(s, Mapping)]
        while pending:
            schema = pending.pop()
            if id(schema) in found:
                continue
            found[id(schema)] = schema
            if isinstance(schema.get("$ref"), str):
                pending.append(self._resolve(schema["$ref"]))
            pending.extend(s for s in schema.get("allOf", ()) if isinstance(s, Mapping))
        return tuple(found.values())

    def node(self, schemas: Any) -> _Node | None:
        """The node for a value that all of ``schemas`` apply to; None when they bound nothing in it."""
        closure = self.closure(schemas)
        key = tuple(sorted(id(s) for s in closure))
        if key not in self._nodes:  # children are built when first needed, so a recursive schema ends here
            self._nodes[key] = self._build(closure)
        return self._nodes[key]

    def _build(self, closure: tuple[Schema, ...]) -> _Node | None:
        descends = ("items", "properties", "additionalProperties", "propertyNames")
        if not any(k in s for s in closure for k in descends) and not any(
            _limit(s, k) is not None for s in closure for k, _ in _SIZE_KEYWORDS
        ):
            return None
        return _Node(self, closure)

    def _resolve(self, ref: str) -> Schema:
        node: Any = self._root
        if ref.startswith("#"):
            for part in filter(None, ref[1:].split("/")):
                part = part.replace("~1", "/").replace("~0", "~")
                node = node.get(part) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping):
            raise SchemaFileError(f"schema {self._root.get('$id', '')}: cannot resolve $ref {ref}")
        return node

    def check(self, document: object) -> list[SchemaIssue]:
        """Every size issue of ``document``, sorted by path; a container over its bound is not entered."""
        found: list[tuple[Location, str]] = []
        if self._top is None or _over(document, self._top, (), found):
            return self._sorted(found)
        stack: list[tuple[object, _Node, tuple[str | int, ...]]] = [(document, self._top, ())]
        while stack:  # each container on the stack is within its own bounds; its children are checked here
            value, node, where = stack.pop()
            children: list[tuple[str | int, object, _Node | None]]
            if isinstance(value, dict):
                keys = [key for key in value if isinstance(key, str)]
                children = [(key, value[key], node.child(key)) for key in keys]
                if node.max_name_length is not None:
                    limit = node.max_name_length
                    found.extend((where, name_too_long(key, limit)) for key in keys if len(key) > limit)
            elif isinstance(value, list) and (items := node.items) is not None:
                children = [(index, item, items) for index, item in enumerate(value)]
            else:
                continue
            for step, child, inner in children:
                if inner is None:
                    continue
                if isinstance(child, str):  # the common case, without a tuple for its path
                    if inner.max_length is not None and len(child) > inner.max_length:
                        _over(child, inner, (*where, step), found)
                elif not _over(child, inner, (*where, step), found) and isinstance(child, (dict, list)):
                    stack.append((child, inner, (*where, step)))
        return self._sorted(found)

    def narrow(self, document: object, paths: Iterable[Location]) -> tuple[object, Renumbering]:
        """``document`` with only the items on ``paths`` (where the fast validator found errors) kept in each
        array where that changes no verdict: every schema from the top down judges by keys and one child at
        a time (``_PER_CHILD``). The reference validator then finds the same issues on far less. Also, for
        each array narrowed (by its location in the result), the indexes its items had."""
        trie: dict[Any, Any] = {}
        for path in paths:
            level = trie
            for step in path:
                level = level.setdefault(step, {})
            level[_HERE] = {}
        renumbering: Renumbering = {}
        return self._narrow(document, self._top, trie, (), renumbering), renumbering

    def long_arrays(
        self, document: object, *, longer_than: int
    ) -> list[tuple[tuple[str, ...], list[Any], _Node]]:
        """The arrays reached from the top through objects alone, with more than ``longer_than`` items,
        where every schema from the top down judges item by item (``_PER_CHILD``, as :meth:`narrow`
        needs): each with its location and the node of its items. Dropping valid items from one of them
        changes no verdict, so a refusal may list the first items with problems and count the others."""
        found: list[tuple[tuple[str, ...], list[Any], _Node]] = []
        stack: list[tuple[object, _Node | None, tuple[str, ...]]] = [(document, self._top, ())]
        while stack:
            value, node, where = stack.pop()
            if node is None or not node.per_child or len(where) > _MAX_NARROW_DEPTH:
                continue
            if isinstance(value, dict):
                stack.extend(
                    (child, node.child(key), (*where, key))
                    for key, child in value.items()
                    if isinstance(key, str) and isinstance(child, dict | list)
                )
            elif isinstance(value, list) and len(value) > longer_than and (items := node.items) is not None:
                found.append((where, value, items))
        return found

    def _narrow(
        self,
        value: object,
        node: _Node | None,
        trie: dict[Any, Any],
        where: tuple[str | int, ...],
        out: Renumbering,
    ) -> object:
        if node is None or _HERE in trie or not node.per_child or len(where) > _MAX_NARROW_DEPTH:
            return value
        if isinstance(value, dict):
            narrowed = dict(value)
            for key, below in trie.items():
                if isinstance(key, str) and key in value:
                    narrowed[key] = self._narrow(value[key], node.child(key), below, (*where, key), out)
            return narrowed
        if isinstance(value, list) and (items := node.items) is not None:
            kept = sorted(k for k in trie if isinstance(k, int) and 0 <= k < len(value))
            out[where] = kept
            return [self._narrow(value[k], items, trie[k], (*where, j), out) for j, k in enumerate(kept)]
        return value

    @staticmethod
    def _sorted(found: list[tuple[Location, str]]) -> list[SchemaIssue]:
        return [SchemaIssue(json_path(location), message) for location, message in sorted_issues(found)]


def _over(value: object, node: _Node, where: Location, found: list[tuple[Location, str]]) -> bool:
    """Adds to ``found`` an issue for each size bound of ``node`` that ``value`` exceeds; True if any."""
    size = len(value) if isinstance(value, (str, list, dict)) else 0
    over = [
        (keyword, limit) for keyword, kind, limit in node.limits if isinstance(value, kind) and size > limit
    ]
    found.extend((where, too_big(keyword, limit, value)) for keyword, limit in over)
    return bool(over)


_SIZE_SCHEMA_KEYS = frozenset({"$schema", "$id", "$ref", "maxItems", "maxLength", "maxProperties"})


def size_schema(schema: object) -> Any:
    """``schema`` with the size keywords alone, where :class:`SchemaBounds` finds them (``properties``,
    ``items``, ``additionalProperties``, ``propertyNames``, ``$ref``, ``allOf``, ``$defs``): a document
    is valid against it exactly when :meth:`SchemaBounds.check` finds nothing, so that a fast validator
    answers "no size issue" without the walk, which visits every value."""
    if not isinstance(schema, Mapping):
        return True
    out: dict[str, Any] = {k: v for k, v in schema.items() if k in _SIZE_SCHEMA_KEYS}
    for keyword in ("properties", "$defs"):
        if isinstance(schema.get(keyword), Mapping):
            out[keyword] = {name: size_schema(sub) for name, sub in schema[keyword].items()}
    if isinstance(schema.get("allOf"), list):
        out["allOf"] = [size_schema(sub) for sub in schema["allOf"]]
    if "prefixItems" not in schema and "items" in schema:
        out["items"] = size_schema(schema["items"])
    if "patternProperties" not in schema and "additionalProperties" in schema:
        out["additionalProperties"] = size_schema(schema["additionalProperties"])
    if "propertyNames" in schema:
        out["propertyNames"] = size_schema(schema["propertyNames"])
    return out


def widen(location: Location, renumbering: Renumbering) -> tuple[str | int, ...]:
    """A location in a narrowed document (:meth:`SchemaBounds.narrow`) as a location in the document."""
    narrowed: tuple[str | int, ...] = ()
    original: list[str | int] = []
    for step in location:
        kept = renumbering.get(narrowed)
        original.append(kept[step] if kept is not None and isinstance(step, int) else step)
        narrowed = (*narrowed, step)
    return tuple(original)


@functools.cache
def report_bounds() -> SchemaBounds:
    """The bounds of the shipped device-report schema (read once per process)."""
    return SchemaBounds(load_schema(REPORT_SCHEMA))


@functools.cache
def report_document_bytes() -> int:
    """The largest report, in bytes: the shipped schema's ``x-max-document-bytes``, read without building
    the bounds (every check reads it; the bounds are needed only to refuse)."""
    return _document_bound("x-max-document-bytes")


@functools.cache
def report_document_values() -> int:
    """The most JSON values a report may hold: the shipped schema's ``x-max-document-values``."""
    return _document_bound("x-max-document-values")


def _document_bound(keyword: str) -> int:
    bound = _limit(load_schema(REPORT_SCHEMA), keyword)
    if bound is None:
        raise SchemaFileError(f"schema {REPORT_SCHEMA}: {keyword} is missing")
    return bound
