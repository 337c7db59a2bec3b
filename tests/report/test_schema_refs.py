"""The fast validators' schemas have their local ``$ref``s written in place (``pyagent.report.refs``):
only where that cannot change a verdict, and the shipped report schema then accepts and refuses exactly
what it did."""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest

from pyagent.report.refs import inline_refs
from pyagent.report.schemas import REPORT_SCHEMA, load_schema

NAME = {"type": "string", "minLength": 1}


def schema_with(properties: dict[str, Any], defs: dict[str, Any], **root: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "$defs": defs, **root}


def test_a_reference_with_only_annotations_beside_it_becomes_its_definition() -> None:
    schema = schema_with({"name": {"$ref": "#/$defs/name", "description": "shown"}}, {"name": NAME})
    assert inline_refs(schema)["properties"] == {"name": NAME}


def test_a_reference_with_a_keyword_beside_it_stays_a_reference() -> None:
    beside = {"$ref": "#/$defs/name", "maxLength": 3}  # both apply: neither may replace the other
    schema = schema_with({"name": beside}, {"name": NAME})
    assert inline_refs(schema)["properties"] == {"name": beside}


def test_references_inside_definitions_are_followed_and_a_cycle_is_kept_as_a_reference() -> None:
    node = {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}}}
    schema = schema_with({"app": {"$ref": "#/$defs/app"}, "tree": {"$ref": "#/$defs/node"}}, {
        "app": {"type": "object", "properties": {"id": {"$ref": "#/$defs/name"}}},
        "name": NAME,
        "node": node,
    })  # fmt: skip
    properties = inline_refs(schema)["properties"]
    assert properties["app"] == {"type": "object", "properties": {"id": NAME}}
    assert properties["tree"] == node  # written once; the reference within it to itself stays


@pytest.mark.parametrize(
    "ref", ["#/$defs/missing", "#/$defs/name/type", "#/$defs/na~1me", "other.json#/$defs/name", "#", 7]
)
def test_references_to_no_whole_local_definition_are_left_alone(ref: object) -> None:
    schema = schema_with({"name": {"$ref": ref}}, {"name": NAME})
    assert inline_refs(schema)["properties"] == {"name": {"$ref": ref}}


def test_an_escaped_name_is_left_to_the_validator_that_unescapes_it() -> None:
    # "#/$defs/na%6De" names the definition "name" (a percent-escaped "m"), not one called "na%6De"
    schema = schema_with({"name": {"$ref": "#/$defs/na%6De"}}, {"name": NAME, "na%6De": {"type": "integer"}})
    assert inline_refs(schema)["properties"] == {"name": {"$ref": "#/$defs/na%6De"}}


@pytest.mark.parametrize("keyword", ["$id", "$anchor", "$dynamicAnchor"])
def test_nothing_is_inlined_where_a_subschema_changes_what_references_resolve_to(keyword: str) -> None:
    schema = schema_with({"name": {"$ref": "#/$defs/name"}}, {"name": {**NAME, keyword: "inner"}})
    assert inline_refs(schema) == schema


def test_an_identifier_under_a_property_named_like_a_data_keyword_still_stops_the_inlining() -> None:
    schema = schema_with(
        {"name": {"$ref": "#/$defs/name"}, "const": {"$id": "inner.json", "$ref": "#/$defs/name"}},
        {"name": NAME},
    )
    assert inline_refs(schema) == schema


def test_data_that_looks_like_a_reference_is_data() -> None:
    constant = {"$ref": "#/$defs/name"}
    schema = schema_with({"tag": {"const": constant}, "kind": {"enum": [constant]}}, {"name": NAME})
    assert inline_refs(schema)["properties"] == {"tag": {"const": constant}, "kind": {"enum": [constant]}}


def test_a_schema_without_definitions_is_returned_as_it_is() -> None:
    schema = {"$id": "https://example.test/s.json", "type": "string"}
    assert inline_refs(schema) == schema


def test_the_report_schema_inlined_has_no_reference_left_and_judges_reports_alike() -> None:
    schema = load_schema(REPORT_SCHEMA)
    inlined = inline_refs(schema)
    assert "$ref" not in json.dumps({k: v for k, v in inlined.items() if k != "$defs"})
    original = jsonschema_rs.Draft202012Validator(schema, validate_formats=False)
    fast = jsonschema_rs.Draft202012Validator(inlined, validate_formats=False)
    app = {"id": "com.example.notes", "name": "Notes", "version": "1.0", "source": "android-pm"}
    device = {"id": "d-1", "platform": "android", "ownership": "corporate", "mdm": {"enrolled": True}}
    good = {"schema_version": 1, "collected_at": "2023-03-16T09:30:00Z", "device": device, "apps": [app]}
    bad_apps: list[Any] = [
        {**app, "id": ""},
        {**app, "id": "x" * 513},
        {**app, "name": ""},
        {**app, "version": "v" * 1025},
        {**app, "user": -1},
        {**app, "evidence": "guess"},
        {**app, "extra_field": 1},
        {"name": "no id"},
    ]
    reports = [good, {**good, "collected_at": "2023-02-29T00:00:00Z"}]
    reports += [{**good, "device": {**device, "id": ""}}]
    reports += [{**good, "apps": [app, bad]} for bad in bad_apps]
    verdicts = [(original.is_valid(r), fast.is_valid(r)) for r in reports]
    assert verdicts == [(True, True)] + [(False, False)] * (len(reports) - 1)
