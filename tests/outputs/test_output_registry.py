"""The format registry and the shared decision checks."""

from __future__ import annotations

from typing import Any

import pytest

from pyagent.errors import InvalidInputError, PyagentError
from pyagent.outputs import FORMATS, MACHINE_FORMATS, OutputError, OutputFormat, OutputFormatName, get_format
from pyagent.outputs.registry import format_class
from pyagent.outputs.text import TextFormat

Decision = dict[str, Any]


def test_every_name_maps_to_a_class_of_that_name() -> None:
    assert set(FORMATS) == set(OutputFormatName)
    for member in OutputFormatName:
        cls = FORMATS[member]
        assert issubclass(cls, OutputFormat)
        assert cls.name == member.value
        assert format_class(member.value) is cls
    assert {member.value: FORMATS[member].media_type for member in OutputFormatName} == {
        "text": "text/plain; charset=utf-8",
        "json": "application/json",
        "junit": "application/xml",
        "sarif": "application/sarif+json",
        "github": "text/plain; charset=utf-8",
        "table": "text/plain; charset=utf-8",
    }


def test_values() -> None:
    assert [m.value for m in OutputFormatName] == ["text", "json", "junit", "sarif", "github", "table"]
    assert OutputFormatName("sarif") is OutputFormatName.SARIF
    assert set(OutputFormatName) - {OutputFormatName.TEXT} == MACHINE_FORMATS


def test_get_format() -> None:
    text = get_format("text", color=True)
    assert isinstance(text, TextFormat)
    assert text.color is True
    assert isinstance(get_format(OutputFormatName.TEXT), TextFormat)
    assert get_format(OutputFormatName.TEXT).color is False  # type: ignore[attr-defined]
    assert get_format("sarif").name == "sarif"


def test_unknown_format_is_invalid_input() -> None:
    with pytest.raises(
        InvalidInputError, match="unknown output format 'xml'; expected one of text, json"
    ) as info:
        get_format("xml")
    assert info.value.exit_code == 2


@pytest.mark.parametrize("name", [m.value for m in OutputFormatName])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"allow": None}, "allow must be true or false"),
        ({"allow": "yes"}, "allow must be true or false"),
        ({"violations": {"a": 1}}, "violations must be a list"),
        ({"warnings": ["x"]}, r"warnings\[0\] must be an object"),
        ({"violations": [{"app_id": "a"}]}, r"violations\[0\].rule is missing"),
        ({"exempted": [{"rule": "o/r", "app_id": "a", "exemption": "EX"}]}, "exemption must be an object"),
        ({"exempted": [{"rule": "o/r", "app_id": "a", "exemption": {}}]}, r"exemption.id is missing"),
        ({"violations": [{"rule": "o/r", "app_id": 7}]}, "app_id must be a string, not int"),
        ({"violations": [{"rule": "o/r", "app_id": "a", "expired_exemptions": "EX"}]}, "list of strings"),
        ({"device_id": ["x"]}, "device_id must be a string"),
    ],
)
def test_malformed_decision_is_an_output_error(
    compliant: Decision, name: str, change: Decision, message: str
) -> None:
    compliant.update(change)
    with pytest.raises(OutputError, match=message) as info:
        get_format(name).render(compliant, source="-")
    assert isinstance(info.value, PyagentError)
    assert info.value.exit_code == 3


@pytest.mark.parametrize("name", [m.value for m in OutputFormatName])
def test_missing_optional_fields(name: str) -> None:
    """A minimal decision (only allow, one entry with rule and app_id) still renders."""
    minimal = {"allow": False, "violations": [{"rule": "o/r", "app_id": "a.b"}]}
    assert get_format(name).render(minimal, source="-").endswith("\n")
