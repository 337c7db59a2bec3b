"""Policy data mistakes that made a device with a banned app pass while `policy lint` said "clean"
(policy authoring audit): identifiers no device reports, data placed where the policy never reads
it, a value set twice, a data file that a bundle cannot hold, an overlay replacing an inherited rule,
and a lint of the shipped policy taken for the folder it ran in."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.policy_data.conftest import run

REPO = Path(__file__).resolve().parents[2]
TIKTOK_PHONE = REPO / "examples" / "reports" / "eu-commission-personal-enrolled-tiktok.json"
AT = "2023-03-16T09:30:00Z"
BANS = Path("data") / "pyagent" / "bans" / "data.yaml"
ORGS = Path("data") / "pyagent" / "organizations" / "data.yaml"
EXEMPTIONS = Path("data") / "pyagent" / "exemptions" / "data.yaml"
WORK_APPS = Path("data") / "pyagent" / "work_apps" / "data.yaml"


@pytest.fixture
def policy(policy_copy: Path) -> Path:
    """A copy of the shipped policies to make the mistake in."""
    return policy_copy


def edit(policy: Path, relative: Path, old: str, new: str) -> int:
    """Replace the one ``old`` in ``policy/relative`` by ``new``; the line ``new`` starts on."""
    path = policy / relative
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def lint(policy: Path) -> tuple[int, str]:
    result = run(["policy", "lint", str(policy)])
    return result.exit_code, result.stderr


TIKTOK_LINE = "      - com.zhiliaoapp.musically       # TikTok\n"
ANDROID = "bans.tiktok.apps.android[0]"
UNREPORTED = [
    ("trailing space", TIKTOK_LINE, '      - "com.zhiliaoapp.musically "\n', ANDROID,
     "'com.zhiliaoapp.musically ': the identifier begins or ends with white space: no device reports it so"),
    ("zero-width space", TIKTOK_LINE, '      - "com.zhiliaoapp\\u200b.musically"\n', ANDROID,
     "'com.zhiliaoapp\\u200b.musically': the identifier contains U+200B, which no tool shows: no device "
     "reports it"),
    ("a combining grapheme joiner", TIKTOK_LINE, '      - "com.zhiliaoapp.musically\\u034f"\n', ANDROID,
     "'com.zhiliaoapp.musically\u034f': the identifier contains U+034F, which no tool shows: no device "
     "reports it"),
    ("a pm list line", TIKTOK_LINE, "      - package:com.zhiliaoapp.musically\n", ANDROID,
     "'package:com.zhiliaoapp.musically' is not an Android package name (dot-separated parts of letters, "
     "digits and _, each starting with a letter, e.g. com.zhiliaoapp.musically): no app would match it"),
    ("a display name", TIKTOK_LINE, "      - TikTok\n", ANDROID,
     "'TikTok' is not an Android package name (dot-separated parts of letters, digits and _, each "
     "starting with a letter, e.g. com.zhiliaoapp.musically): no app would match it"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "path", "message"), [u[1:] for u in UNREPORTED], ids=[u[0] for u in UNREPORTED]
)
def test_an_identifier_no_device_reports_is_refused(
    policy: Path, policy_bundle: Path, old: str, new: str, path: str, message: str
) -> None:
    """It was "lint: clean", and the TikTok phone compliant under the policy (exit 0)."""
    line = edit(policy, BANS, old, new)
    problem = f"{policy / BANS}:{line}: data.pyagent.{path}: {message}"
    assert lint(policy) == (2, f"{problem}\nlint: problems found\n")
    checked = run(["check", str(TIKTOK_PHONE), "--at", AT, "--policy", str(policy)])
    assert (checked.exit_code, checked.stderr) == (2, f"pyagent: error: {problem}\n")


def test_a_ban_or_a_platform_with_no_identifier_is_refused(policy: Path) -> None:
    capcut = edit(policy, BANS, "      - com.lemon.lvoverseas\n", "      []\n")
    lemon8 = edit(policy, BANS, "  apps:\n    android:\n      - com.bd.nproject\n", "  apps: {}\n")
    assert lint(policy) == (2, (
        f"{policy / BANS}:{capcut - 1}: data.pyagent.bans.capcut.apps.android: an empty list: list the "
        "platform's identifiers, or leave the platform out\n"
        f"{policy / BANS}:{lemon8}: data.pyagent.bans.lemon8.apps: the ban lists no identifier on any "
        "platform: it bans nothing\n"
        "lint: problems found\n"
    ))  # fmt: skip


def test_an_identifier_listed_twice_in_one_list_is_refused(policy: Path, tmp_path: Path) -> None:
    """A copy-paste slip (or an edit meant for another identifier) decided nothing wrong, and went unsaid."""
    line = edit(policy, BANS, "      - com.ss.android.ugc.trill       # TikTok, some Asian markets\n",
                "      - com.zhiliaoapp.musically\n")  # fmt: skip
    assert lint(policy) == (2, (
        f"{policy / BANS}:{line}: data.pyagent.bans.tiktok.apps.android[1]: 'com.zhiliaoapp.musically' is "
        "listed already (at index 0)\n"
        "lint: problems found\n"
    ))  # fmt: skip
    # the same in an overlay; in two lists (TikTok's iOS id) it is no slip
    overlay = tmp_path / "overlay.json"
    overlay.write_text('{"pyagent": {"bans": {"family": {"apps": {"ios": ["com.zhiliaoapp.musically"], '
                       '"android": ["com.snapchat.android", "com.snapchat.android"]}}}}}\n')  # fmt: skip
    result = run(["check", str(TIKTOK_PHONE), "--at", AT, "--data", str(overlay)])
    assert (result.exit_code, result.stderr) == (2, (
        f"pyagent: error: {overlay}:1: data.pyagent.bans.family.apps.android[1]: 'com.snapchat.android' is "
        "listed already (at index 0)\n"
    ))  # fmt: skip


def test_names_and_device_ids_with_white_space_are_refused(policy: Path) -> None:
    """An exemption for "fr-brussels-0042 " waived nothing, and lint said clean."""
    (policy / EXEMPTIONS).write_text(
        "EX-1:\n  device_id: 'fr-brussels-0042 '\n  organization: eu-commission\n  ban: tiktok\n"
        '  until: "2023-06-30T00:00:00Z"\n  reason: official account\n',
        encoding="utf-8",
    )
    outlook = edit(policy, WORK_APPS, "- com.microsoft.office.outlook", "- 'com.microsoft.office.outlook '")
    assert lint(policy) == (2, (
        f"{policy / WORK_APPS}:{outlook}: data.pyagent.work_apps.android[0]: "
        "'com.microsoft.office.outlook ': the identifier begins or ends with white space: no device reports "
        "it so\n"
        f"{policy / EXEMPTIONS}:2: data.pyagent.exemptions.EX-1.device_id: 'fr-brussels-0042 ': the device "
        "id begins or ends with white space: no device reports it so\n"
        "lint: problems found\n"
    ))  # fmt: skip


def test_data_moved_out_of_data_pyagent_is_refused(policy: Path) -> None:
    """data/work_apps/data.yaml (a folder moved up one) was data.work_apps, never read: a Council
    personal phone with Outlook and TikTok was compliant."""
    moved = policy / "data" / "work_apps" / "data.yaml"
    moved.parent.mkdir()
    (policy / WORK_APPS).rename(moved)
    (policy / WORK_APPS).parent.rmdir()
    line = next(n for n, text in enumerate(moved.read_text().splitlines(), 1) if not text.startswith("#"))
    assert lint(policy) == (2, (
        f"{moved}:{line}: data.work_apps: policy data at data.work_apps, outside data.pyagent: the policy "
        "never reads it; put it under data/pyagent/ (data/pyagent/work_apps/data.yaml)\n"
        "lint: problems found\n"
    ))  # fmt: skip


def test_a_value_set_by_two_files_is_a_conflict_even_when_equal(policy: Path) -> None:
    """`opa build` refuses it ("failed to insert data file"), where lint said clean."""
    top = policy / "data" / "pyagent" / "data.yaml"
    line = top.read_text().count("\n") + 3
    with top.open("a", encoding="utf-8") as handle:
        handle.write("bans:\n  tiktok:\n    title: TikTok\n")
    first = 1 + (policy / BANS).read_text().splitlines().index("  title: TikTok")
    assert lint(policy) == (2, (
        f"{top}:{line}: data.pyagent.bans.tiktok.title: merge conflict: already set by "
        f"{policy / BANS}:{first}\n"
        "lint: problems found\n"
    ))  # fmt: skip


def test_a_data_file_at_the_same_place_under_rego_is_refused_as_a_bundle_refuses_it(policy: Path) -> None:
    """`check --policy` exempted the device with it while `policy bundle` refused the folder."""
    stray = policy / "rego" / "pyagent" / "data.yaml"
    stray.write_text("exemptions: {}\n", encoding="utf-8")
    message = (
        f"{policy / 'data' / 'pyagent' / 'data.yaml'}: pyagent/data.yaml is also {stray}: a bundle holds one "
        "file at a place; merge the two (data belongs under data/)"
    )
    checked = run(["check", str(TIKTOK_PHONE), "--at", AT, "--policy", str(policy)])
    assert (checked.exit_code, checked.stderr) == (2, f"pyagent: error: {message}\n")


def test_an_overlay_may_not_replace_an_inherited_rule(tmp_path: Path, policy_bundle: Path) -> None:
    """An EEAS rule named like the Commission's rule it inherits overrides it: through --data, an EEAS
    corporate phone with TikTok was compliant, though an overlay only adds to the policy."""
    overlay = tmp_path / "overlay.json"
    overlay.write_text(
        '{"pyagent": {"organizations": {"eeas": {"rules": {"tiktok": '
        '{"ban": "tiktok", "scopes": ["personal-with-work-apps"]}}}}}}\n',
        encoding="utf-8",
    )
    result = run(["check", str(TIKTOK_PHONE), "--at", AT, "--org", "eeas", "--data", str(overlay)])
    assert (result.exit_code, result.stderr.splitlines()[-1]) == (
        2,
        f"pyagent: error: {overlay}:1: data.pyagent.organizations.eeas.rules.tiktok: overrides the rule "
        "eu-commission/tiktok that eeas inherits: an overlay adds to the policy, it cannot replace a rule "
        "(edit the policy's data, and bump its revision)",
    )


def test_lint_in_a_policy_folder_lints_that_folder(
    policy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no DIR in a folder holding rego/ and data/, lint checked the shipped policy ("clean")."""
    line = edit(policy, ORGS, "    ban: tiktok\n      scopes: [corporate, personal-enrolled]\n",
                "    ban: tiktokk\n      scopes: [corporate, personal-enrolled]\n")  # fmt: skip
    monkeypatch.chdir(policy)
    code, stderr = lint(Path("."))
    assert code == 2 and f"{ORGS}:{line}: data.pyagent.organizations.eu-commission.rules.tiktok.ban" in stderr
    result = run(["policy", "lint"])
    assert result.exit_code == 2 and result.stderr.startswith(f"{ORGS}:{line}: ")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # no policy here: the shipped one, said
    result = run(["policy", "lint"])
    assert result.stderr.startswith("pyagent: note: no policy here; working on the shipped one (")
