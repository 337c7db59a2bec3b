"""``policy docs`` says which rules bind each organisation as the policy resolves them: inherited
transitively, less those a lower organisation overrides with a rule of the same id, and with the work
apps that decide the scope ``personal-with-work-apps``."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pyagent.cli import cli
from pyagent.fleet.timeline import rules_timeline
from pyagent.policy.orgindex import rules_in_force
from tests.helpers.opa_server import REPO

RULE = {"ban": "tiktok", "scopes": ["corporate"], "effective_from": "2023-03-15T00:00:00Z"}
UNDATED = {"ban": "tiktok", "scopes": ["corporate"]}
ORGS = {
    "parent": {"title": "Parent", "rules": {"tiktok": RULE, "extra": UNDATED}},
    "child": {"title": "Child", "inherits": ["parent"], "work_apps": {"android": ["eu.child.mail"]}},
    "grandchild": {"title": "Grandchild", "inherits": ["child"]},
    "overrider": {"title": "Overrider", "inherits": ["parent"],
                  "rules": {"tiktok": {**RULE, "enforcement": "warn"}}},
    "below-overrider": {"title": "Below", "inherits": ["overrider"]},
    "cycle-a": {"title": "A", "inherits": ["cycle-b"]},
    "cycle-b": {"title": "B", "inherits": ["cycle-a"]},
}  # fmt: skip


def test_rules_in_force_are_inherited_transitively_less_overrides() -> None:
    assert rules_in_force(ORGS) == {
        "parent": [("parent", "extra"), ("parent", "tiktok")],
        "child": [("parent", "extra"), ("parent", "tiktok")],
        "grandchild": [("parent", "extra"), ("parent", "tiktok")],
        "overrider": [("overrider", "tiktok"), ("parent", "extra")],
        "below-overrider": [("overrider", "tiktok"), ("parent", "extra")],
    }  # the cycle is the policy's error to report, not a set of rules


def test_the_timeline_names_every_organisation_a_rule_binds() -> None:
    data = {"pyagent": {"organizations": ORGS}}
    adopted = {e["rule"]: e["inherited_by"] for e in rules_timeline(data)}
    assert adopted == {
        "parent/tiktok": ["child", "grandchild"],
        "parent/extra": ["below-overrider", "child", "grandchild", "overrider"],
        "overrider/tiktok": ["below-overrider"],
    }


def test_policy_docs_shows_inherited_rules_and_work_apps(tmp_path: Path) -> None:
    overlay = tmp_path / "pyagent"  # data.pyagent, merged with the shipped data
    overlay.mkdir()
    extra = {k: v for k, v in ORGS.items() if not k.startswith("cycle")}
    (overlay / "data.json").write_text(json.dumps({"organizations": extra}))
    result = CliRunner().invoke(cli, ["policy", "docs", str(REPO / "policies"), str(tmp_path)])
    assert result.exit_code == 0, result.stderr
    page = result.stdout
    grandchild = "### grandchild: Grandchild\n\nInherits from: child.\n\n"
    assert f"{grandchild}Inherited rules: parent/extra, parent/tiktok (from 2023-03-15T00:00:00Z).\n" in page
    below = "Inherited rules: overrider/tiktok (from 2023-03-15T00:00:00Z), parent/extra.\n"
    assert f"### below-overrider: Below\n\nInherits from: overrider.\n\n{below}" in page
    # (a ban an author may not know they dropped: said, where it was not)
    overrider = "### overrider: Overrider\n\nInherits from: parent.\n\nInherited rules: parent/extra.\n\n"
    assert f"{overrider}Inherited rules overridden: parent/tiktok (by overrider/tiktok).\n" in page
    assert page.count("Inherited rules overridden: parent/tiktok (by overrider/tiktok).") == 2  # and below it
    assert "| 2023-03-15T00:00:00Z | parent/tiktok | corporate | deny | child, grandchild |" in page
    assert "| child | android | `eu.child.mail` |" in page
    assert "| shared | android | `com.microsoft.office.outlook`," in page


def test_the_timeline_orders_rules_by_instant_whatever_their_offsets() -> None:
    dated = {
        "utc": {**UNDATED, "effective_from": "2023-03-15T00:00:00Z"},
        "east": {**UNDATED, "effective_from": "2023-03-15T01:00:00+02:00"},  # 2023-03-14T23:00Z
        "west": {**UNDATED, "effective_from": "2023-03-14T20:00:00-05:00"},  # 2023-03-15T01:00Z
        "fraction": {**UNDATED, "effective_from": "2023-03-15T00:00:00.5Z"},
        "always": UNDATED,
    }
    data = {"pyagent": {"organizations": {"org": {"title": "Org", "rules": dated}}}}
    assert [e["rule"] for e in rules_timeline(data)] == [
        "org/always",
        "org/east",
        "org/utc",
        "org/fraction",
        "org/west",
    ]
