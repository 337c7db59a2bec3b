"""Issue 17: each data mistake is exit 2 with FILE:LINE: PATH from `policy lint`, `policy bundle` and
`check --data`, where before it was "lint: clean", a bundle, and a compliant decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.policy_data.conftest import KNOWN_ORGS, MISTAKES, TIMESTAMP_MESSAGE, Mistake, mistakes, run

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / "examples" / "reports" / "eeas-personal-teams-douyin.json"
AT = "2023-03-16T09:30:00Z"


@mistakes
def test_policy_lint_names_the_mistake(policy_copy: Path, mistake: Mistake) -> None:
    problem = mistake.apply(policy_copy)
    result = run(["policy", "lint", str(policy_copy / "rego"), str(policy_copy / "data")])
    assert (result.exit_code, result.stderr) == (2, f"{problem}\nlint: problems found\n")


@mistakes
def test_policy_bundle_refuses_the_mistake(policy_copy: Path, mistake: Mistake, tmp_path: Path) -> None:
    problem = mistake.apply(policy_copy)
    out = tmp_path / "bundle.tar.gz"
    result = run(["policy", "bundle", str(policy_copy), "-o", str(out)])
    assert (result.exit_code, result.stderr) == (2, f"pyagent: error: {problem}\n")
    assert not out.exists()


def overlay(organizations: str) -> str:
    """An overlay adding organisations, one member per line (line 3 onwards)."""
    return '{"pyagent": {\n "organizations": {\n' + organizations + "\n }\n}}\n"


ACME = '  "acme": {"title": "Acme", "inherits": [], "rules": {"tiktok": %s}}'
RULE = '{"ban": "%s", "scopes": ["corporate"], "effective_from": "%s", "enforcement": "%s"}'
MANY_ORGS = ",\n".join(f'  "org-{n:02}": {{"title": "O"}}' for n in range(20))
OVERLAYS = {
    "second-eu-council-key": (
        overlay('  "acme": {"title": "A"},\n  "acme": {"title": "B"}'),
        "4: data.pyagent.organizations.acme: duplicate key (first at line 3); "
        "the second would replace the first",
    ),
    "rule-names-missing-ban": (
        overlay(ACME % (RULE % ("nope", "2023-03-15T00:00:00Z", "deny"))),
        "3: data.pyagent.organizations.acme.rules.tiktok.ban: rule names unknown ban 'nope'; "
        "known: capcut, lemon8, tiktok",
    ),
    "enforcement-block": (
        overlay(ACME % (RULE % ("tiktok", "2023-03-15T00:00:00Z", "block"))),
        '3: data.pyagent.organizations.acme.rules.tiktok.enforcement: expected one of "deny", "warn", '
        '"dryrun", got "block"',
    ),
    "effective-from-without-zone": (
        overlay(ACME % (RULE % ("tiktok", "2023-03-15T00:00:00", "deny"))),
        f"3: data.pyagent.organizations.acme.rules.tiktok.effective_from: {TIMESTAMP_MESSAGE}, "
        'got "2023-03-15T00:00:00"',
    ),
    "effective-from-beyond-opa": (  # valid RFC 3339, but past the nanoseconds OPA's clock counts in
        overlay(ACME % (RULE % ("tiktok", "2999-01-01T00:00:00Z", "deny"))),
        "3: data.pyagent.organizations.acme.rules.tiktok.effective_from: '2999-01-01T00:00:00Z' is outside "
        "the instants OPA can read (1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z)",
    ),
    "inherits-no-such-org": (
        overlay('  "acme": {"title": "Acme",\n   "inherits": ["no-such-org"]}'),
        "4: data.pyagent.organizations.acme.inherits[0]: inherits unknown organisation 'no-such-org'; "
        f"known: acme, {KNOWN_ORGS}",
    ),
    "inherits-no-such-org-among-many": (  # past twelve names, the rest are counted
        overlay(MANY_ORGS + ',\n  "zeta": {"title": "Z",\n   "inherits": ["no-such-org"]}'),
        "24: data.pyagent.organizations.zeta.inherits[0]: inherits unknown organisation 'no-such-org'; "
        "known: eeas, eu-commission, eu-council, eu-parliament, india, org-00, org-01, org-02, org-03, "
        "org-04, org-05, org-06 and 15 more",
    ),
    "inheritance-cycle": (
        overlay('  "a": {"inherits": ["b"]},\n  "b": {"inherits": ["a"]}'),
        "3: data.pyagent.organizations.a.inherits: inheritance cycle: a -> b -> a",
    ),
}


@pytest.mark.parametrize("name", list(OVERLAYS))
def test_check_data_refuses_the_mistake(policy_bundle: Path, tmp_path: Path, name: str) -> None:
    content, problem = OVERLAYS[name]
    data = tmp_path / "overlay.json"
    data.write_text(content, encoding="utf-8")
    result = run(["check", str(REPORT), "--at", AT, "--bundle", str(policy_bundle), "--data", str(data)])
    assert (result.exit_code, result.stderr) == (2, f"pyagent: error: {data}:{problem}\n")


def test_several_mistakes_are_all_listed(policy_copy: Path) -> None:
    """Several mistakes: all of them, one line each (schema first, then the cross-checks)."""
    problems = [
        m.apply(policy_copy) for m in MISTAKES if m.name in ("enforcement-block", "inherits-no-such-org")
    ]
    result = run(["policy", "lint", str(policy_copy)])
    assert (result.exit_code, result.stderr) == (2, "\n".join(problems) + "\nlint: problems found\n")


def test_a_bundle_refused_for_several_mistakes_counts_the_others_on_its_first_line(
    policy_copy: Path, tmp_path: Path
) -> None:
    first, second = (
        m.apply(policy_copy) for m in MISTAKES if m.name in ("enforcement-block", "inherits-no-such-org")
    )
    result = run(["policy", "bundle", str(policy_copy), "-o", str(tmp_path / "bundle.tar.gz")])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: {first} (and 1 more problem)\n  {second}\n",
    )


def test_a_clean_overlay_still_decides(policy_bundle: Path, tmp_path: Path) -> None:
    """The control: a well-formed overlay passes the checks and the decision is made (exit 1 here)."""
    data = tmp_path / "overlay.json"
    data.write_text(overlay(ACME % (RULE % ("tiktok", "2023-03-15T00:00:00Z", "deny"))), encoding="utf-8")
    args = ["check", str(REPORT), "--at", AT, "--bundle", str(policy_bundle), "--data", str(data)]
    result = run([*args, "--format", "json"])
    assert result.exit_code == 1, result.stderr
    assert [v["rule"] for v in json.loads(result.stdout)["violations"]] == ["eeas/tiktok-work-apps"]
