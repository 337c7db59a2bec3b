"""``--format sarif``: valid against the official SARIF 2.1.0 schema, and the structure CI viewers read."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pyagent import __version__
from pyagent.outputs.sarif import SARIF_SCHEMA_URI, SarifFormat, artifact_uri

Decision = dict[str, Any]

SCHEMA_PATH = Path(__file__).parent.parent / "fixtures" / "sarif" / "sarif-schema-2.1.0.json"
MESSAGE = (
    "TikTok (com.zhiliaoapp.musically) is banned on personal-enrolled devices of European Commission "
    "from 2023-03-15T00:00:00Z: cybersecurity"
)
REMEDIATION = "Uninstall TikTok (com.zhiliaoapp.musically) from this device."
FIXTURES = [
    "compliant",
    "non_compliant",
    "with_warnings",
    "with_exemption",
    "display_name_evidence",
    "with_errors",
    "crafted_name",
]


@cache
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def render(decision: Decision, source: str = "reports/device.json") -> dict[str, Any]:
    text = SarifFormat().render(decision, source=source)
    assert text.endswith("\n")
    assert text.isascii()
    log: dict[str, Any] = json.loads(text)
    errors = sorted(validator().iter_errors(log), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    assert log["$schema"] == SARIF_SCHEMA_URI
    assert log["version"] == "2.1.0"
    assert len(log["runs"]) == 1
    return log["runs"][0]  # type: ignore[no-any-return]


def test_schema_is_the_official_one() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    assert schema["properties"]["version"]["enum"] == ["2.1.0"]


def test_format_checking_is_active() -> None:
    """The uri, uri-reference and date-time formats are checked (their checker packages are installed)."""
    checker = jsonschema.Draft7Validator.FORMAT_CHECKER
    assert not checker.conforms("this machine", "uri-reference")
    assert not checker.conforms("not a uri", "uri")
    assert not checker.conforms("2023-13-45T00:00:00Z", "date-time")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("level",), "fatal"),
        (("suppressions", 0, "kind"), "exemption"),
        (("locations", 0, "physicalLocation", "artifactLocation", "uri"), "reports/a b.json"),
        (("message",), {"markdown": "no text"}),
    ],
)
def test_the_schema_rejects_broken_logs(non_compliant: Decision, path: tuple[Any, ...], value: Any) -> None:
    """The vendored schema and format checks really bite: small breakages of a valid log are caught."""
    log = json.loads(SarifFormat().render(non_compliant, source="reports/device.json"))
    result = log["runs"][0]["results"][0]
    result["suppressions"] = [{"kind": "external"}]
    assert validator().is_valid(log)
    target = result
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert not validator().is_valid(log)


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("source", ["reports/device.json", "-", "this machine", "C:\\My Reports\\a#1.json"])
def test_valid_against_the_schema(name: str, source: str, request: pytest.FixtureRequest) -> None:
    run = render(request.getfixturevalue(name), source=source)
    for result in run["results"]:
        (location,) = result["locations"]
        assert ("physicalLocation" in location) == (source not in ("-", "this machine"))


def test_compliant(compliant: Decision) -> None:
    run = render(compliant)
    driver = run["tool"]["driver"]
    assert driver == {"name": "pyagent", "version": __version__, "semanticVersion": __version__, "rules": []}
    assert run["results"] == []
    assert run["invocations"] == [{"executionSuccessful": True, "endTimeUtc": "2023-03-16T09:31:02Z"}]
    assert run["properties"] == {
        "device_id": "fr-brussels-0042",
        "organization": "eu-commission",
        "allow": True,
        "decision_id": "5f0c2a9e-1111-4222-8333-444455556666",
        "policy_revision": "2023.03.15-1",
        "evaluated_at": "2023-03-16T09:31:02Z",
        "engine": "embedded",
        "source": "reports/device.json",
    }


def test_non_compliant(non_compliant: Decision) -> None:
    run = render(non_compliant)
    assert run["tool"]["driver"]["rules"] == [
        {
            "id": "eu-commission/tiktok",
            "shortDescription": {"text": "Ban tiktok (rule eu-commission/tiktok)"},
            "help": {"text": REMEDIATION},
            "properties": {"ban": "tiktok", "tags": ["app-ban"]},
        }
    ]
    (result,) = run["results"]
    fingerprint = result.pop("partialFingerprints")
    key = "fr-brussels-0042\0eu-commission/tiktok\0com.zhiliaoapp.musically"  # device, rule, app: stable
    assert fingerprint == {"pyagentDeviceRuleApp/v1": hashlib.sha256(key.encode()).hexdigest()}
    assert fingerprint["pyagentDeviceRuleApp/v1"].startswith("0d9a24f9d811bfc8")  # the same across releases
    assert result == {
        "ruleId": "eu-commission/tiktok",
        "ruleIndex": 0,
        "kind": "fail",
        "level": "error",
        "message": {"text": MESSAGE},
        "locations": [
            {
                "physicalLocation": {"artifactLocation": {"uri": "reports/device.json"}},
                "logicalLocations": [
                    {"name": "TikTok", "fullyQualifiedName": "com.zhiliaoapp.musically", "kind": "module"}
                ],
            }
        ],
        "properties": {
            "app_id": "com.zhiliaoapp.musically",
            "app_name": "TikTok",
            "ban": "tiktok",
            "scope": "personal-enrolled",
            "enforcement": "deny",
            "effective_from": "2023-03-15T00:00:00Z",
            "remediation": REMEDIATION,
            "expired_exemptions": ["EX-2022-009"],
        },
    }
    assert run["properties"]["allow"] is False


def test_warnings_of_all_three_reasons(with_warnings: Decision) -> None:
    run = render(with_warnings)
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [
        "eu-council/tiktok",
        "eu-commission/tiktok-lite",
        "eu-commission/tiktok-dryrun",
    ]
    results = run["results"]
    assert [(r["ruleId"], r["ruleIndex"], r["level"], r["properties"]["reason"]) for r in results] == [
        ("eu-council/tiktok", 0, "warning", "not_yet_effective"),
        ("eu-commission/tiktok-lite", 1, "warning", "enforcement_warn"),
        ("eu-commission/tiktok-dryrun", 2, "warning", "enforcement_dryrun"),
    ]
    assert [r["message"]["text"].splitlines()[1] for r in results] == [
        "Warning: not in force yet: takes effect 2023-04-01T00:00:00Z.",
        "Warning: enforcement is warn: reported, not enforced.",
        "Warning: enforcement is dryrun: a trial run, not enforced.",
    ]
    assert all("suppressions" not in r for r in results)
    # app_name null: the logical location is named by the id
    assert results[2]["locations"][0]["logicalLocations"][0]["name"] == "com.ss.android.ugc.trill"
    assert "app_name" not in results[2]["properties"]
    assert "effective_from" not in results[2]["properties"]


def test_exempted_is_a_suppressed_result(with_exemption: Decision) -> None:
    (result,) = render(with_exemption)["results"]
    assert result["level"] == "error"
    assert result["suppressions"] == [
        {
            "kind": "external",
            "status": "accepted",
            "justification": "official communications account",
            "properties": {
                "exemption_id": "EX-2023-001",
                "until": "2023-06-30T00:00:00Z",
                "approved_by": "DIGIT.S",
            },
        }
    ]
    assert result["message"]["text"] == f"{MESSAGE}\nExempted by EX-2023-001."


def test_display_name_evidence(display_name_evidence: Decision) -> None:
    (result,) = render(display_name_evidence)["results"]
    assert result["properties"]["evidence"] == "display_name"
    assert result["message"]["text"].splitlines() == [
        MESSAGE,
        "Note: matched from a display name, not a package ID: weaker evidence.",
    ]


def test_errors_are_tool_notifications(with_errors: Decision) -> None:
    run = render(with_errors)
    assert run["invocations"] == [
        {
            "executionSuccessful": False,
            "endTimeUtc": "2023-03-16T09:31:02Z",
            "toolExecutionNotifications": [
                {
                    "level": "error",
                    "message": {"text": "organisation 'nope' is not known"},
                    "descriptor": {"id": "unknown_organization"},
                }
            ],
        }
    ]
    assert "organization" not in run["properties"]


def test_one_rule_per_distinct_rule_id(non_compliant: Decision, with_exemption: Decision) -> None:
    lite = dict(non_compliant["violations"][0], app_id="com.zhiliaoapp.musically.go", remediation="Other.")
    mixed = dict(non_compliant, violations=[*non_compliant["violations"], lite])
    mixed["exempted"] = with_exemption["exempted"]
    run = render(mixed)
    (rule,) = run["tool"]["driver"]["rules"]
    assert rule["help"] == {"text": f"{REMEDIATION}\nOther."}
    assert [r["ruleIndex"] for r in run["results"]] == [0, 0, 0]
    fingerprints = [r["partialFingerprints"]["pyagentDeviceRuleApp/v1"] for r in run["results"]]
    assert fingerprints[0] != fingerprints[1]
    assert fingerprints[0] == fingerprints[2]  # same device, rule and app


def test_crafted_strings_are_kept_exactly(crafted_name: Decision) -> None:
    (result,) = render(crafted_name)["results"]
    logical = result["locations"][0]["logicalLocations"][0]
    assert logical["fullyQualifiedName"] == "com.evil\x1b]0;pwned\x07"
    assert logical["name"] == "TikTok\x1b[2J\rCOMPLIANT\u202e"


@pytest.mark.parametrize(
    ("source", "uri"),
    [
        ("reports/device.json", "reports/device.json"),
        ("/var/lib/pyagent/r 1.json", "/var/lib/pyagent/r%201.json"),
        ("C:\\reports\\a#1.json", "C%3A/reports/a%231.json"),
        ("-", None),
        ("<stdin>", None),  # as check names stdin
        ("this machine", None),
    ],
)
def test_artifact_uri(source: str, uri: str | None) -> None:
    assert artifact_uri(source) == uri
