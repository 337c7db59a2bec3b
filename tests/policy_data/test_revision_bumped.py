"""The shipped policy's revision changes whenever the policy does: `policy_revision` in a decision must
name one policy, and `server publish` refuses a bundle whose revision is the current one. A review found
decisions with new messages under the old revision. ``revisions.txt`` beside this file lists each
revision with the digest of the policy it named; a revision may not name two policies."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.helpers.policy_data import shipped_revision

POLICIES = Path(__file__).resolve().parents[2] / "policies"
LEDGER = Path(__file__).with_name("revisions.txt")


def policy_digest(root: Path = POLICIES) -> str:
    """SHA-256 over the files a bundle is built from (Rego tests aside), each by its place and bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith("_test.rego")):
        digest.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ledger() -> list[tuple[str, str]]:
    lines = LEDGER.read_text(encoding="utf-8").splitlines()
    return [(revision, digest) for revision, digest in (line.split() for line in lines if line.strip())]


def test_the_shipped_policy_is_the_one_its_revision_names() -> None:
    current = (shipped_revision(), policy_digest())
    assert current in ledger(), (
        f"the policy changed: bump `revision` in policies/data/pyagent/data.yaml, then add "
        f"'<revision> {current[1]}' to {LEDGER.name}"
    )


def test_no_revision_names_two_policies() -> None:
    revisions = [revision for revision, _ in ledger()]
    assert sorted(set(revisions)) == sorted(revisions)


def test_the_digest_follows_any_change(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(POLICIES, tmp_path / "policies")
    before = policy_digest(tmp_path / "policies")
    rego = next((tmp_path / "policies" / "rego").rglob("breaches.rego"))
    rego.write_text(rego.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert policy_digest(tmp_path / "policies") != before
