"""``check --policy DIR`` reuses a build only while it is the build of the files there (found by an audit):
hidden files and files behind a link to a directory are part of the policy, as ``opa build`` reads
them; files that change while they are compiled are compiled again; a cached build that is damaged,
replaced, linked elsewhere or writable by others is compiled again rather than trusted; and
concurrent runs do not trip over each other's temporary files."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from pyagent.policy import compiled
from pyagent.policy.opa_tool import find_opa
from tests.policy_data.conftest import run

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / "examples" / "reports" / "eu-commission-personal-enrolled-tiktok.json"
AT = "2023-03-16T09:30:00Z"
EXEMPTION = """device_id: fr-brussels-0042
organization: eu-commission
ban: tiktok
until: "2023-06-30T00:00:00Z"
reason: official communications account
approved_by: DIGIT.S
"""


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PYAGENT_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def exempted(policy: Path) -> tuple[int, list[str]]:
    """(exit code, exempted ids) of the Commission's phone with TikTok, decided with ``policy``."""
    result = run(["check", str(REPORT), "--policy", str(policy), "--at", AT, "--format", "json"])
    assert result.exit_code in (0, 1), result.stderr
    return result.exit_code, [entry["exemption"]["id"] for entry in json.loads(result.stdout)["exempted"]]


def entries(state_dir: Path) -> list[Path]:
    return sorted((state_dir / "cache" / "policies").glob("[!.]*.tar.gz"))


def test_a_hidden_data_file_is_policy_as_opa_build_reads_it(policy_copy: Path) -> None:
    assert exempted(policy_copy) == (1, [])
    hidden = policy_copy / "data" / "pyagent" / "exemptions" / ".EX-HIDDEN"
    hidden.mkdir()
    (hidden / "data.yaml").write_text(EXEMPTION)
    assert exempted(policy_copy) == (0, [".EX-HIDDEN"])
    shutil.rmtree(hidden)  # revoked: the build with it is not used again
    assert exempted(policy_copy) == (1, [])


def test_an_edit_behind_a_link_to_a_directory_is_seen(policy_copy: Path, tmp_path: Path) -> None:
    linked = policy_copy / "data" / "pyagent" / "exemptions"
    real = tmp_path / "exemptions-elsewhere"
    shutil.move(linked, real)
    linked.symlink_to(real, target_is_directory=True)
    assert exempted(policy_copy) == (1, [])
    (real / "EX-LINKED").mkdir()
    (real / "EX-LINKED" / "data.yaml").write_text(EXEMPTION)
    assert exempted(policy_copy) == (0, ["EX-LINKED"])


def test_files_changed_while_they_compile_are_compiled_again(
    policy_copy: Path, tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build of the edited files was kept under the digest of the files before the edit."""
    builds, edited = tmp_path / "builds", policy_copy / "rego" / "pyagent" / "decision" / "decision.rego"
    wrapper = tmp_path / "opa"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'"{find_opa()}" "$@"; code=$?\n'
        f'if [ "$1" = build ]; then echo built >> "{builds}"; fi\n'
        f'if [ "$1" = build ] && [ ! -e "{builds}.edited" ]; then touch "{builds}.edited"; '
        f'echo "# edited while compiling" >> "{edited}"; fi\n'
        "exit $code\n"
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PYAGENT_OPA", str(wrapper))
    assert exempted(policy_copy) == (1, [])
    assert builds.read_text() == "built\nbuilt\n"
    digest = compiled.policy_digest(compiled.policy_roots(policy_copy), str(wrapper))
    assert [entry.name.split("-")[0] for entry in entries(state_dir)] == [digest]


@pytest.mark.parametrize("damage", ["other content", "cut short", "writable by others", "a link"])
def test_a_cached_build_that_is_not_as_written_is_compiled_again(
    policy_copy: Path, state_dir: Path, tmp_path: Path, damage: str
) -> None:
    assert exempted(policy_copy) == (1, [])
    [entry] = entries(state_dir)
    content = entry.read_bytes()
    if damage == "other content":  # a build of a policy that allows, under this policy's name
        allowing = tmp_path / "allowing"
        shutil.copytree(policy_copy, allowing)
        (allowing / "data" / "pyagent" / "exemptions" / "EX-1").mkdir()
        (allowing / "data" / "pyagent" / "exemptions" / "EX-1" / "data.yaml").write_text(EXEMPTION)
        assert exempted(allowing) == (0, ["EX-1"])
        other = next(path for path in entries(state_dir) if path != entry)
        entry.write_bytes(other.read_bytes())
    elif damage == "cut short":
        entry.write_bytes(content[: len(content) // 2])
    elif damage == "writable by others":
        entry.chmod(0o666)
    else:
        copy = tmp_path / "copy.tar.gz"
        copy.write_bytes(content)
        entry.unlink()
        entry.symlink_to(copy)
    assert exempted(policy_copy) == (1, [])
    rebuilt = [path for path in entries(state_dir) if path.name.startswith(entry.name.split("-")[0])]
    assert [path.name for path in rebuilt] == [entry.name]  # the same build, written anew
    st = rebuilt[0].lstat()
    assert (stat.S_ISREG(st.st_mode), st.st_mode & 0o077, rebuilt[0].read_bytes() == content) == (
        True,
        0,
        True,
    )


def test_pruning_leaves_other_processes_temporary_files_and_minds_none_that_vanish(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    temporary = cache / ".build-abc.tar.gz"  # another process's build, not yet named
    temporary.write_bytes(b"building")
    builds = [cache / f"{index:064x}-{index:032x}.tar.gz" for index in range(compiled.CACHE_ENTRIES + 2)]
    for age, path in enumerate(reversed(builds)):
        path.write_bytes(b"build")
        os.utime(path, (1_000_000 + age, 1_000_000 + age))
    (cache / "gone.tar.gz").symlink_to(cache / "nowhere")  # removed by another process meanwhile
    compiled._prune(cache, keep=builds[-1])
    kept = sorted(path.name for path in cache.iterdir())
    newest = [path.name for path in builds[: compiled.CACHE_ENTRIES]]
    assert kept == sorted([".build-abc.tar.gz", "gone.tar.gz", *newest, builds[-1].name])
