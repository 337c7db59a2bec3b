"""A policy folder decides the same however it is loaded: `opa run`/`opa eval` on the folder, a bundle
that `pyagent policy bundle` or `opa build` made of it, `check --policy`. Where those would read it
differently, pyagent refuses the folder (exit 2, naming the file) instead of deciding one way.

Found by an audit: a data file not named data.yaml was dropped by the bundle (an exemption in force on
`opa run`, none in the bundle); a comment-only data.yaml (what deleting the last exemption leaves) set
`null` in the bundle; a bundle of the Rego alone was built (exit 0) and every device then blamed as an
invalid report; a folder that kept a `pyagent_index` passed lint while `opa run` decided from it."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

from pyagent.policy import index
from tests.policy_data.conftest import run

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / "examples" / "reports" / "eu-council-personal-outlook-tiktok.json"
AT = "2023-03-16T09:30:00Z"
EXEMPTION = """EX-2023-001:
  device_id: fr-brussels-0042
  organization: eu-commission
  ban: tiktok
  until: "2023-06-30T00:00:00Z"
  reason: official communications account
  approved_by: DIGIT.S
"""


def _refused_everywhere(policy: Path, problem: str, tmp_path: Path) -> None:
    """lint, bundle and check --policy each refuse the folder with ``problem``, and no bundle is left."""
    lint = run(["policy", "lint", str(policy / "rego"), str(policy / "data")])
    assert (lint.exit_code, lint.stderr) == (2, f"{problem}\nlint: problems found\n")
    out = tmp_path / "bundle.tar.gz"
    bundle = run(["policy", "bundle", str(policy / "rego"), str(policy / "data"), "-o", str(out)])
    assert (bundle.exit_code, bundle.stderr) == (2, f"pyagent: error: {problem}\n")
    assert not out.exists()
    checked = run(["check", str(REPORT), "--policy", str(policy), "--at", AT])
    assert (checked.exit_code, checked.stdout, checked.stderr) == (2, "", f"pyagent: error: {problem}\n")


def test_a_data_file_of_another_name_is_refused(policy_copy: Path, tmp_path: Path) -> None:
    extra = policy_copy / "data" / "pyagent" / "exemptions" / "ex-2023.yaml"
    extra.write_text(EXEMPTION)
    problem = (
        f"{extra}: a data file must be named data.json, data.yaml or data.yml (a bundle drops any other"
        f" name, `opa run` on the folder reads it): merge it into {extra.parent / 'data.yaml'}"
    )
    _refused_everywhere(policy_copy, problem, tmp_path)


def test_data_yml_is_read_by_pyagent_and_the_bundle_alike(policy_copy: Path, tmp_path: Path) -> None:
    exemptions = policy_copy / "data" / "pyagent" / "exemptions"
    (exemptions / "data.yaml").unlink()
    (exemptions / "data.yml").write_text(EXEMPTION)
    out = tmp_path / "bundle.tar.gz"
    built = run(["policy", "bundle", "--target", "rego", str(policy_copy), "-o", str(out)])
    assert built.exit_code == 0, built.stderr
    with tarfile.open(out) as archive:
        member = archive.extractfile("/data.json")
        assert member is not None
        data = json.load(member)
    assert list(data["pyagent"]["exemptions"]) == ["EX-2023-001"]


def test_a_data_file_left_with_only_comments_is_refused(policy_copy: Path, tmp_path: Path) -> None:
    exemptions = policy_copy / "data" / "pyagent" / "exemptions" / "data.yaml"
    commented = "".join(f"# {line}\n" for line in EXEMPTION.splitlines())
    exemptions.write_text(commented)
    problem = (
        f"{exemptions}: no value (only blank lines or comments), which OPA reads as null at"
        " data.pyagent.exemptions; write {} for no entries"
    )
    _refused_everywhere(policy_copy, problem, tmp_path)
    exemptions.write_text(commented + "{}\n")  # as shipped
    assert run(["policy", "lint", str(policy_copy / "rego"), str(policy_copy / "data")]).exit_code == 0


def test_a_folder_that_keeps_an_index_is_refused_current_or_not(policy_copy: Path, tmp_path: Path) -> None:
    """The index is the bundle build's; `opa run` on a folder holding one decides from it, stale or not."""
    index.write_root(index.data_of_dirs([policy_copy / "data"]), policy_copy / "data")
    kept = policy_copy / "data" / "pyagent_index" / "data.json"
    problem = f"{kept}:1: data.pyagent_index: {index.FOLDER_INDEX}"
    lint = run(["policy", "lint", str(policy_copy / "rego"), str(policy_copy / "data")])
    assert (lint.exit_code, lint.stderr) == (2, f"{problem}\nlint: problems found\n")
    out = tmp_path / "bundle.tar.gz"
    bundle = run(["policy", "bundle", str(policy_copy / "rego"), str(policy_copy / "data"), "-o", str(out)])
    assert (bundle.exit_code, bundle.stderr) == (2, f"pyagent: error: {problem}\n")
    checked = run(["check", str(REPORT), "--policy", str(policy_copy), "--at", AT])
    assert (checked.exit_code, checked.stderr) == (2, f"pyagent: error: {problem}\n")


def test_a_bundle_of_the_rego_alone_is_not_built(tmp_path: Path) -> None:
    out = tmp_path / "bundle.tar.gz"
    rego = REPO / "policies" / "rego"
    result = run(["policy", "bundle", str(rego), "-o", str(out)])
    assert (result.exit_code, result.stderr) == (
        2,
        f"pyagent: error: {rego}: {index.NO_POLICY_DATA}\n",
    )
    assert not out.exists()
    checked = run(["check", str(REPORT), "--policy", str(rego), "--at", AT])
    assert (checked.exit_code, checked.stderr) == (2, f"pyagent: error: {rego}: {index.NO_POLICY_DATA}\n")


def test_a_folder_that_keeps_a_build_revision_is_refused(policy_copy: Path, tmp_path: Path) -> None:
    """`policy bundle` crashed (FileExistsError, exit 3) and `check --policy` reported the kept revision."""
    kept = policy_copy / "data" / "pyagent_build" / "data.json"
    kept.parent.mkdir()
    kept.write_text('{"revision": "fake"}')
    problem = f"{kept}:1: data.pyagent_build: {index.FOLDER_ROOTS['pyagent_build']}"
    _refused_everywhere(policy_copy, problem, tmp_path)


def test_a_data_file_linked_to_a_device_is_refused_by_lint_too(policy_copy: Path, tmp_path: Path) -> None:
    """lint skipped it (not a regular file) and said clean, where `opa build` on the folder read it."""
    link = policy_copy / "data" / "pyagent" / "exemptions" / "data.yaml"
    link.unlink()
    link.symlink_to("/dev/zero")
    _refused_everywhere(policy_copy, f"{link}: policy data is a device, not a regular file", tmp_path)


def test_a_rego_only_bundle_from_opa_build_decides_nothing_and_blames_no_device(
    opa_bin: str, tmp_path: Path
) -> None:
    """Every engine alike: no decision (exit 3) with the policy's reason, no report counted invalid."""
    bundle = tmp_path / "rego-only.tar.gz"
    args = ["build", "-t", "wasm", "-e", "pyagent/decision", "--ignore", "*_test.rego", "-o", str(bundle)]
    subprocess.run([opa_bin, *args, str(REPO / "policies" / "rego")], check=True, capture_output=True)
    reason = (
        "the policy is loaded wrongly: no policy data at data.pyagent (only the Rego was loaded): load the"
        " policy as two roots, its rego/ and data/ folders: `opa run -s policies/rego policies/data`,"
        " `opa test policies/rego policies/data`"
    )
    checked = run(["check", str(REPORT), "--bundle", str(bundle), "--at", AT])
    assert (checked.exit_code, checked.stdout, checked.stderr) == (3, "", f"pyagent: error: {reason}\n")
    examples = REPO / "examples" / "reports"
    fleet = run(["fleet", str(examples), "--bundle", str(bundle), "--at", AT, "--format", "json"])
    assert fleet.exit_code == 3, fleet.stderr
    document = json.loads(fleet.stdout)
    count = len(list(examples.glob("*.json")))
    summary = document["summary"]
    assert (summary["devices"], summary["undecided"], summary["invalid"]) == (count, count, 0)
    assert {e["message"] for device in document["devices"] for e in device["errors"]} == {reason}
