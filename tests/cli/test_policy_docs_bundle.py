"""``policy docs --bundle``: a tar.gz that holds no policy data is no bundle to document (exit 2), where
it was a page of empty tables, "no bans", and exit 0."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.helpers.cli import invoke


def _archive(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return path


@pytest.mark.parametrize(
    "members",
    [
        {"readme.txt": b"release notes\n"},
        {},
        {"/data.json": b'{"other": {"app": 1}}', "/.manifest": b"{}"},
        {"/data.json": b'{"pyagent": {"revision": "r1"}}', "/.manifest": b"{}"},
    ],
    ids=["not-a-bundle", "empty-archive", "another-policys-bundle", "no-organisations"],
)
def test_an_archive_without_policy_data_is_refused(tmp_path: Path, members: dict[str, bytes]) -> None:
    bundle = _archive(tmp_path / "other.tar.gz", members)
    result = invoke(["policy", "docs", "--bundle", str(bundle)])
    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        f"pyagent: error: {bundle}: not a policy bundle: no policy data (data.pyagent.organizations) in its "
        "data.json\n",
    )


def test_a_policy_of_no_organisation_yet_is_documented(tmp_path: Path) -> None:
    data = b'{"pyagent": {"revision": "r0", "organizations": {}, "bans": {}}}'
    bundle = _archive(tmp_path / "empty-policy.tar.gz", {"/data.json": data, "/.manifest": b"{}"})
    result = invoke(["policy", "docs", "--bundle", str(bundle)])
    assert (result.exit_code, result.stdout.splitlines()[0]) == (0, "# App bans (policy revision r0)")
