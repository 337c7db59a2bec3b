"""`pyagent policy test|fmt|lint|bundle|docs`: the author's loop on the real opa."""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.helpers.cli import invoke as run

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "reports"


@pytest.fixture
def policy_copy(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "policies"
    shutil.copytree(REPO / "policies", root)
    return root / "rego", root / "data"


def test_policy_test_passes_with_coverage(policy_copy: tuple[Path, Path]) -> None:
    result = run(["policy", "test", *map(str, policy_copy)])
    assert result.exit_code == 0, result.stderr
    summary = r"policy test: (\d+) passed, 0 failed \(of \1\)\n"
    assert re.fullmatch(summary + r"coverage: \d+\.\d\d% \(minimum 95%\)\n", result.stderr)


def test_policy_test_fails_on_a_failing_test(policy_copy: tuple[Path, Path]) -> None:
    rego, data = policy_copy
    rule = 'test_wrong if decision.allow with input as {"at": "2023-03-16T00:00:00Z", "report": {}}'
    test_file = rego / "pyagent" / "decision" / "broken_test.rego"
    test_file.write_text(f"package pyagent.broken_test\n\nimport data.pyagent.decision\n\n{rule}\n")
    result = run(["policy", "test", str(rego), str(data)])
    assert result.exit_code == 1
    *failure, summary = result.stderr.splitlines()
    assert failure == [f"FAIL data.pyagent.broken_test.test_wrong ({test_file}:5)",
                       f"  {test_file}:5: {rule}", "    the expression is false or undefined"]  # fmt: skip
    assert re.fullmatch(r"policy test: (\d+) passed, 1 failed \(of \d+\)", summary)


def test_policy_test_on_a_policy_that_does_not_load_says_why(policy_copy: tuple[Path, Path]) -> None:
    """v0 Rego loads no test at all: opa's reasons (on its stderr) are the error, not "0 passed"."""
    rego, data = policy_copy
    (rego / "v0.rego").write_text("package v0\n\ndeny[x] { x := 1 }\n")
    result = run(["policy", "test", str(rego), str(data)])
    where = rego / "v0.rego"
    assert (result.exit_code, result.stderr) == (
        2,
        "pyagent: error: policy test: the policy does not load: 2 errors occurred during loading: "
        f"{where}:3: rego_parse_error: `if` keyword is required before rule body; {where}:3: "
        "rego_parse_error: `contains` keyword is required for partial set rules\n",
    )


def test_policy_bundle_names_the_source_file_of_a_rego_error(
    policy_copy: tuple[Path, Path], tmp_path: Path
) -> None:
    """opa builds a staged copy: its error must name the file the author can open, on one line."""
    rego, _ = policy_copy
    scopes = rego / "pyagent" / "lib" / "scopes" / "scopes.rego"
    lines = scopes.read_text().count("\n")
    scopes.write_text(scopes.read_text() + "\nbroken if {\n\tinput.a ==\n}\n")
    result = run(["policy", "bundle", str(rego.parent), "-o", str(tmp_path / "b.tar.gz")])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: opa build failed: load error: bundle .: 1 error occurred: {scopes}:{lines + 4}: "
        "rego_parse_error: unexpected } token\n",
    )


def test_policy_fmt_and_lint_on_clean_policies(policy_copy: tuple[Path, Path]) -> None:
    fmt = run(["policy", "fmt", *map(str, policy_copy)])
    assert (fmt.exit_code, fmt.stdout, fmt.stderr) == (0, "", "")
    lint = run(["policy", "lint", *map(str, policy_copy)])
    assert (lint.exit_code, lint.stdout, lint.stderr) == (0, "", "lint: clean\n")


def test_policy_fmt_lists_then_writes(policy_copy: tuple[Path, Path]) -> None:
    rego, _ = policy_copy
    messy = rego / "pyagent" / "lib" / "clock" / "clock.rego"
    messy.write_text(messy.read_text().replace("valid if now_ns", "valid    if    now_ns"))
    listed = run(["policy", "fmt", str(rego)])
    assert (listed.exit_code, listed.stdout) == (1, f"{messy}\n")
    assert run(["policy", "fmt", "--write", str(rego)]).exit_code == 0
    assert run(["policy", "fmt", str(rego)]).exit_code == 0


def test_fmt_write_never_rewrites_the_policy_inside_an_installed_package(
    policy_copy: tuple[Path, Path], opa_bin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside a policy folder an installed pyagent works on its own copy (site-packages): listing is
    fine, rewriting it would leave the package's compiled bundle apart from its sources."""
    from pyagent.policy import shipped

    monkeypatch.setattr(shipped, "checkout", lambda: None)
    monkeypatch.setattr(shipped, "policy_sources", lambda: policy_copy)
    monkeypatch.setenv("PYAGENT_OPA", opa_bin)  # (an installed copy has no .tools/bin/opa)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    messy = policy_copy[0] / "pyagent" / "lib" / "clock" / "clock.rego"
    messy.write_text(messy.read_text().replace("valid if now_ns", "valid    if    now_ns"))
    before = messy.read_text()
    listed = run(["policy", "fmt"])
    assert (listed.exit_code, listed.stdout) == (1, f"{messy}\n")
    refused = run(["policy", "fmt", "--write"])
    assert refused.exit_code == 2
    assert refused.stderr.splitlines()[-1] == (
        "pyagent: error: policy fmt --write: no policy here, and the shipped policy "
        f"({policy_copy[0].parent}) belongs to the installed package: copy that folder to one of your own "
        "and give it (pyagent policy fmt --write DIR)"
    )
    assert messy.read_text() == before
    assert run(["policy", "fmt", "--write", str(policy_copy[0])]).exit_code == 0  # named: the user's to edit


def test_policy_lint_catches_strict_errors(policy_copy: tuple[Path, Path]) -> None:
    rego, data = policy_copy
    extra = rego / "pyagent" / "lib" / "extra.rego"
    extra.write_text("package pyagent.lib.extra\n\nf(x) := 1\n")
    result = run(["policy", "lint", str(rego), str(data)])
    hint = "(every package and rule has a # METADATA block with a title)"
    assert (result.exit_code, result.stderr.splitlines()) == (1, [
        f"1 error occurred: {extra}:3: rego_compile_error: unused argument x. "
        "(hint: use _ (wildcard variable) instead)",
        f"{extra}:1: package pyagent.lib.extra has no METADATA {hint}",
        f"{extra}:3: rule f has no METADATA {hint}", "lint: problems found"])  # fmt: skip


def test_policy_lint_names_each_package_and_rule_without_metadata(policy_copy: tuple[Path, Path]) -> None:
    """A rule of several definitions needs one block; a test module, one on its package. Nothing
    checked it, and the shipped policy had 27 rules without one (author audit)."""
    rego, data = policy_copy
    extra = rego / "pyagent" / "lib" / "extra" / "extra.rego"
    extra.parent.mkdir()
    extra.write_text(
        "# METADATA\n# title: Extra\npackage pyagent.lib.extra\n\n"
        "# METADATA\n# title: Noted\nnoted := 1\n\n"
        "default bare := false\n\nbare if input.x\n\n"
        "twice := 1 if input.y\n\n"
        "# METADATA\n# title: Noted on its second definition\ntwice := 2 if input.z\n"
    )
    (extra.parent / "extra_test.rego").write_text(
        "package pyagent.lib.extra_test\n\nimport data.pyagent.lib.extra\n\ntest_noted if extra.noted == 1\n"
    )
    result = run(["policy", "lint", str(rego), str(data)])
    hint = "(every package and rule has a # METADATA block with a title)"
    assert (result.exit_code, result.stderr.splitlines()) == (
        1,
        [
            f"{extra}:9: rule bare has no METADATA {hint}",
            f"{extra.parent / 'extra_test.rego'}:1: package pyagent.lib.extra_test has no METADATA {hint}",
            "lint: problems found",
        ],
    )


def test_a_policy_that_does_not_load_is_exit_2_from_lint_test_and_bundle(
    policy_copy: tuple[Path, Path], tmp_path: Path
) -> None:
    """A parse error is not a lint finding (exit 1): the policy does not load, as test and bundle say."""
    rego, data = policy_copy
    (rego / "pyagent" / "lib" / "extra.rego").write_text("package pyagent.lib.extra\n\nbroken := {\n")
    codes = [
        run(["policy", "lint", str(rego), str(data)]).exit_code,
        run(["policy", "test", str(rego), str(data)]).exit_code,
        run(["policy", "bundle", str(rego), str(data), "-o", str(tmp_path / "b.tar.gz")]).exit_code,
        run(["policy", "fmt", str(rego), str(data)]).exit_code,  # it was 1, as if a file were unformatted
    ]
    assert codes == [2, 2, 2, 2]


def test_the_rego_without_its_data_is_refused_by_every_policy_command(
    policy_copy: tuple[Path, Path], tmp_path: Path
) -> None:
    """Only bundle refused it: lint said clean, docs wrote an empty page, test failed 122 tests
    without saying why."""
    rego, _ = policy_copy
    missing = (
        f"pyagent: error: {rego}: no policy data (data.pyagent.organizations): give the data folder with "
        "the Rego (policies/rego and policies/data, or the folder holding both)"
    )
    for command in (["test"], ["docs"], ["bundle", "-o", str(tmp_path / "b.tar.gz")]):
        result = run(["policy", command[0], str(rego), *command[1:]])
        assert (result.exit_code, result.stderr.strip().splitlines()[-1]) == (2, missing), command
    lint = run(["policy", "lint", str(rego)])
    assert (lint.exit_code, lint.stderr.splitlines()[-2:]) == (2, [missing.removeprefix("pyagent: error: "),
                                                                  "lint: problems found"])  # fmt: skip


def test_policy_docs_refuses_an_unwritable_output_and_a_file_that_is_no_bundle(tmp_path: Path) -> None:
    """Both were internal errors, exit 3."""
    unwritable = run(["policy", "docs", str(REPO / "policies"), "-o", str(tmp_path / "nodir" / "p.md")])
    assert (unwritable.exit_code, unwritable.stderr) == (
        2, f"pyagent: error: -o {tmp_path / 'nodir' / 'p.md'}: cannot write: No such file or directory\n"
    )  # fmt: skip
    key = tmp_path / "public.pem"
    key.write_text("-----BEGIN PUBLIC KEY-----\n")
    not_bundle = run(["policy", "docs", "--bundle", str(key)])
    assert (not_bundle.exit_code, not_bundle.stderr) == (
        2, f"pyagent: error: bundle {key}: not a readable tar.gz: not a gzip file\n"
    )  # fmt: skip


def test_policy_bundle_builds_what_the_embedded_engine_runs(
    policy_copy: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "bundle.tar.gz"
    result = run(["policy", "bundle", *map(str, policy_copy), "-o", str(out), "--revision", "test-rev-1"])
    assert result.exit_code == 0, result.stderr
    with tarfile.open(out) as tar:
        names = {m.name.lstrip("/") for m in tar.getmembers()}
    sources = {str(path.relative_to(policy_copy[0])) for path in policy_copy[0].rglob("*.rego")}
    policy = {name for name in sources if not name.endswith("_test.rego")}  # (and no test)
    assert names == {"policy.wasm", "data.json", ".manifest", *policy}
    decided = run(["check", str(EXAMPLES / "india-personal-lite.json"), "--bundle", str(out), "--engine",
                   "embedded", "--at", "2023-03-16T09:30:00Z", "--format", "json"])  # fmt: skip
    assert decided.exit_code == 1
    assert [v["rule"] for v in json.loads(decided.stdout)["violations"]] == ["india/tiktok"]


def test_policy_docs_lists_every_organization_and_date(policy_copy: tuple[Path, Path]) -> None:
    result = run(["policy", "docs", *map(str, policy_copy)])
    assert result.exit_code == 0, result.stderr
    out = result.stdout.splitlines()
    assert [line for line in out if line.startswith(("### ", "Inherits from: "))] == [
        "### eeas: European External Action Service", "Inherits from: eu-commission.",
        "### eu-commission: European Commission", "Inherits from: nothing.",
        "### eu-council: Council of the European Union", "Inherits from: nothing.",
        "### eu-parliament: European Parliament", "Inherits from: nothing.",
        "### india: Government of India", "Inherits from: nothing.",
        "### us-federal: United States federal government", "Inherits from: nothing.",
    ]  # fmt: skip
    assert (
        "| 2023-03-15T00:00:00Z | eu-commission/tiktok | corporate, personal-enrolled | deny | eeas |" in out
    )


def test_policy_docs_says_a_rule_that_only_warns_comes_into_force_as_warnings(
    policy_copy: tuple[Path, Path],
) -> None:
    """A rule set to ``warn`` denies no device: the timeline said it came into force like any ban."""
    organizations = policy_copy[1] / "pyagent" / "organizations" / "data.yaml"
    text = organizations.read_text()
    council = text.index("eu-council:")
    organizations.write_text(
        text[:council] + text[council:].replace("enforcement: deny", "enforcement: warn", 1)
    )
    result = run(["policy", "docs", *map(str, policy_copy)])
    rows = [
        line for line in result.stdout.splitlines() if line.startswith("| 2023-03-15T00:00:00Z | eu-council/")
    ]
    assert (result.exit_code, rows) == (
        0, ["| 2023-03-15T00:00:00Z | eu-council/tiktok | corporate, personal-with-work-apps | warn | - |"]
    )  # fmt: skip


def test_policy_dir_that_does_not_exist_exits_2(tmp_path: Path) -> None:
    result = run(["policy", "test", str(tmp_path / "nope")])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: {tmp_path / 'nope'}: no such policy directory\n",
    )


@pytest.mark.parametrize("target", ["wasm", "rego"])
def test_policy_docs_of_a_bundle_is_headed_by_the_revision_its_decisions_name(
    tmp_path: Path, target: str
) -> None:
    """A bundle built --revision 2024.01.01-7 decides as 2024.01.01-7: its docs say so (they said the
    data's own revision), for a rego build too (refused before: "policy.wasm: missing")."""
    bundle = tmp_path / "b.tar.gz"
    built = run(["policy", "bundle", str(REPO / "policies"), "--target", target, "--revision", "2024.01.01-7",
                 "-o", str(bundle)])  # fmt: skip
    assert built.exit_code == 0, built.stderr
    docs = run(["policy", "docs", "--bundle", str(bundle)])
    assert (docs.exit_code, docs.stdout.splitlines()[0]) == (0, "# App bans (policy revision 2024.01.01-7)")


@pytest.mark.parametrize("revision", ["a b\nc", " ", "x" * 201, "tab\there"])
def test_a_revision_that_is_not_one_printable_line_is_refused(tmp_path: Path, revision: str) -> None:
    result = run(
        ["policy", "bundle", str(REPO / "policies"), "--revision", revision, "-o", str(tmp_path / "b")]
    )
    assert (result.exit_code, result.stderr) == (
        2,
        "pyagent: error: Invalid value for '--revision': must be one line of printable characters, "
        "at most 200 (see pyagent policy bundle --help)\n",
    )
    assert not (tmp_path / "b").exists()


def test_without_a_directory_the_working_directory_s_policies_are_the_ones_worked_on(
    policy_copy: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A policy repository running ``pyagent policy fmt`` (no directory): its own ``policies/``, not
    the policy pyagent ships (which passed, and said so, whatever the repository held)."""
    rego, data = policy_copy
    monkeypatch.chdir(rego.parent.parent)
    unformatted = rego / "pyagent" / "lib" / "extra.rego"
    unformatted.write_text("package pyagent.lib.extra\n\nx   :=   1\n")
    result = run(["policy", "fmt"])
    assert (result.exit_code, result.stdout) == (1, "policies/rego/pyagent/lib/extra.rego\n")
    retitled = (
        (data / "pyagent" / "bans" / "data.yaml")
        .read_text()
        .replace("title: TikTok\n", "title: TikTok (local)\n")
    )
    (data / "pyagent" / "bans" / "data.yaml").write_text(retitled)
    docs = run(["policy", "docs"])
    titles = [line.split(" | ")[1] for line in docs.stdout.splitlines() if line.startswith("| tiktok | ")]
    assert (docs.exit_code, titles) == (0, ["TikTok (local)"] * 3)  # (a row per platform)


def test_policy_docs_refuses_data_that_no_build_takes(policy_copy: tuple[Path, Path]) -> None:
    """A page documenting a rule of a ban that does not exist would describe a policy that never
    decides: refused as ``policy lint`` and ``policy bundle`` refuse it (it was rendered, exit 0)."""
    rego, data = policy_copy
    organizations = data / "pyagent" / "organizations" / "data.yaml"
    organizations.write_text(organizations.read_text().replace("ban: tiktok\n", "ban: tiktokk\n", 1))
    result = run(["policy", "docs", str(rego), str(data)])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"pyagent: error: {organizations}:7: data.pyagent.organizations.eu-commission.rules.tiktok.ban: "
        "rule names unknown ban 'tiktokk'; known: capcut, lemon8, tiktok\n"
    )


def test_policy_test_names_a_data_mistake_before_running_any_test(policy_copy: tuple[Path, Path]) -> None:
    """An exemption of a ban that does not exist passed every test (exit 0); a misspelt ban failed
    tests that did not say why (exit 1)."""
    rego, data = policy_copy
    exemptions = data / "pyagent" / "exemptions" / "data.yaml"
    exemptions.parent.mkdir(exist_ok=True)
    exemptions.write_text(
        "EX-1:\n  device_id: fr-brussels-0042\n  organization: eu-commission\n  ban: no-such-ban\n"
        "  until: '2023-06-30T00:00:00Z'\n  reason: test\n"
    )
    result = run(["policy", "test", str(rego), str(data)])
    assert (result.exit_code, result.stderr.splitlines()[0]) == (
        2, f"pyagent: error: {exemptions}:4: data.pyagent.exemptions.EX-1.ban: exemption names unknown ban "
        "'no-such-ban'; known: capcut, lemon8, tiktok"
    )  # fmt: skip


def test_a_working_directory_with_half_a_policy_is_refused_not_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``policies/rego`` without ``policies/data``: not the shipped policy instead, without a word."""
    (tmp_path / "policies" / "rego").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    result = run(["policy", "lint"])
    assert (result.exit_code, result.stderr) == (
        2,
        "pyagent: error: policies/rego: there is no policies/data beside it; give the policy's directories "
        "(e.g. pyagent policy test policies/rego DATA_DIR)\n",
    )
    (tmp_path / "policies" / "rego").rmdir()
    (tmp_path / "policies" / "data").mkdir()
    result = run(["policy", "lint"])  # (the example named the data directory twice)
    assert (result.exit_code, result.stderr) == (
        2,
        "pyagent: error: policies/data: there is no policies/rego beside it; give the policy's directories "
        "(e.g. pyagent policy test REGO_DIR policies/data)\n",
    )


def test_policy_bundle_to_standard_output_is_refused_not_written_to_a_file_named_dash(
    policy_copy: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(["policy", "bundle", *map(str, policy_copy), "-o", "-"])
    assert (result.exit_code, result.stderr.splitlines()[-1]) == (
        2, "pyagent: error: -o -: a bundle is written to a file; give its path "
        "(see pyagent policy bundle --help)"
    )  # fmt: skip
    assert not (tmp_path / "-").exists()


def test_an_output_that_is_an_input_or_a_policy_file_is_refused_before_writing(
    policy_copy: tuple[Path, Path], tmp_path: Path
) -> None:
    """docs and bundle wrote over the bundle they read, the policy's data or its Rego (exit 0)."""
    rego, data = policy_copy
    built = tmp_path / "built.tar.gz"
    assert run(["policy", "bundle", str(rego), str(data), "-o", str(built)]).exit_code == 0
    data_file = data / "pyagent" / "data.yaml"
    test_file = rego / "pyagent" / "decision" / "decision_test.rego"
    kept = {path: path.read_bytes() for path in (built, data_file, test_file)}
    inside = "opa would read it as part of the policy, or it would overwrite a file there; write it elsewhere"
    for args, message in [
        (["docs", "--bundle", str(built), "-o", str(built)],
         f"-o {built} is also --bundle {built}: writing would overwrite it"),
        (["docs", str(rego), str(data), "-o", str(data_file)],
         f"-o {data_file} is inside the policy directory {data}: {inside}"),
        (["docs", str(rego), str(data), "-o", str(test_file)],
         f"-o {test_file} is inside the policy directory {rego}: {inside}"),
        (["bundle", str(rego), str(data), "-o", str(data_file)],
         f"-o {data_file} is inside the policy directory {data}: {inside}"),
    ]:  # fmt: skip
        result = run(["policy", *args])
        assert (result.exit_code, result.stderr) == (2, f"pyagent: error: {message}\n"), args
    assert {path: path.read_bytes() for path in kept} == kept
    beside = tmp_path / "policy.md"
    assert run(["policy", "docs", str(rego), str(data), "-o", str(beside)]).exit_code == 0


def test_a_folder_without_rego_is_no_policy_to_test_lint_or_build(
    policy_copy: tuple[Path, Path], tmp_path: Path
) -> None:
    """lint said clean (exit 0), test ran nothing and failed (exit 1), docs wrote an empty page."""
    _, data = policy_copy
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (empty, data):
        said = (
            f"pyagent: error: {folder}: no Rego file (.rego) there: give the policy's folders "
            "(policies/rego and policies/data, or the folder holding both)\n"
        )
        for command in (["lint"], ["test"], ["bundle", "-o", str(tmp_path / "b.tar.gz")]):
            result = run(["policy", command[0], str(folder), *command[1:]])
            assert (result.exit_code, result.stderr) == (2, said), command
    docs = run(["policy", "docs", str(empty)])
    assert (docs.exit_code, docs.stdout) == (2, "")
    assert docs.stderr == (
        f"pyagent: error: {empty}: no policy data (data.pyagent.organizations): give the data folder with "
        "the Rego (policies/rego and policies/data, or the folder holding both)\n"
    )
    assert not (tmp_path / "b.tar.gz").exists()


def test_a_bundle_whose_data_is_no_json_is_no_policy_to_document(tmp_path: Path) -> None:
    """NaN, which Python's reader takes and OPA refuses: the page said "policy revision nan"."""
    bundle = tmp_path / "nan.tar.gz"
    with tarfile.open(bundle, "w:gz") as archive:
        for name, content in (("/data.json", b'{"pyagent": {"revision": NaN}}'), ("/.manifest", b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    result = run(["policy", "docs", "--bundle", str(bundle)])
    assert (result.exit_code, result.stdout, result.stderr) == (
        2, "", f"pyagent: error: bundle {bundle}: data.json: invalid JSON: NaN is not a JSON number\n"
    )  # fmt: skip
