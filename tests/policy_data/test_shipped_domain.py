"""The shipped policy data is domain.md's, exactly: every identifier and rule it names, and nothing
more (an extra banned id is a false positive on devices that are compliant). The Rego test beside the
policy holds only the first half, so that an author's copy may grow the ban list by editing data."""

from __future__ import annotations

from pathlib import Path

from pyagent.policy.datacheck import check_dirs
from tests.helpers.domain import TIKTOK_FAMILY
from tests.policy_data.conftest import run

DATA = Path(__file__).resolve().parents[2] / "policies" / "data"
EU_DATE = "2023-03-15T00:00:00Z"
WORK_APPS_ONLY = ("personal-with-work-apps",)
SHIPPED_ORGS = {"eu-commission", "eu-council", "eeas", "eu-parliament", "us-federal", "india"}


def test_the_shipped_tiktok_ban_lists_exactly_the_domains_identifiers() -> None:
    bans = check_dirs([str(DATA)]).data["pyagent"]["bans"]
    assert bans["tiktok"]["apps"] == {platform: list(ids) for platform, ids in TIKTOK_FAMILY.items()}


def test_the_shipped_organisations_have_exactly_the_domains_rules() -> None:
    organizations = check_dirs([str(DATA)]).data["pyagent"]["organizations"]
    rules = {
        (name, tuple(org.get("inherits", [])), rule_id, rule["ban"], tuple(rule["scopes"]),
         rule["effective_from"], rule.get("enforcement", "deny"))
        for name, org in organizations.items()
        for rule_id, rule in org["rules"].items()
    }  # fmt: skip
    assert rules == {
        ("eu-commission", (), "tiktok", "tiktok", ("corporate", "personal-enrolled"), EU_DATE, "deny"),
        ("eu-council", (), "tiktok", "tiktok", ("corporate", "personal-with-work-apps"), EU_DATE, "deny"),
        (
            "eeas",
            ("eu-commission",),
            "tiktok-work-apps",
            "tiktok",
            ("personal-with-work-apps",),
            EU_DATE,
            "deny",
        ),
        ("us-federal", (), "tiktok", "tiktok", ("corporate",), "2022-12-29T00:00:00Z", "deny"),
        ("india", (), "tiktok", "tiktok", ("all",), "2020-06-29T00:00:00Z", "deny"),
    }
    assert set(organizations) == {
        "eu-commission",
        "eu-council",
        "eeas",
        "eu-parliament",
        "us-federal",
        "india",
    }
    assert organizations["eu-parliament"]["rules"] == {}


def test_an_authors_copy_grows_the_ban_list_by_data_alone_and_its_tests_pass(policy_copy: Path) -> None:
    """A new ban and an organisation banning it, in data: `policy test` on the copy passes, as the
    pull-request workflow runs it; a domain rule dropped fails it."""
    orgs = policy_copy / "data" / "pyagent" / "organizations" / "data.yaml"
    orgs.write_text(
        orgs.read_text()
        + "bytedance-watch:\n  title: ByteDance watch\n  inherits: [eu-commission]\n  rules:\n"
        + "    capcut:\n      ban: capcut\n      scopes: [corporate]\n"
        + '      effective_from: "2023-04-01T00:00:00Z"\n'
    )
    assert run(["policy", "test", str(policy_copy)]).exit_code == 0
    us_date = '      effective_from: "2022-12-29T00:00:00Z"'
    assert orgs.read_text().count(us_date) == 1
    orgs.write_text(orgs.read_text().replace(us_date, us_date.replace("2022-12-29", "2023-01-01")))
    failed = run(["policy", "test", str(policy_copy)])
    assert failed.exit_code == 1
    assert "test_the_shipped_data_holds_the_domains" in failed.stderr + failed.stdout
