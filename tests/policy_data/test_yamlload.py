"""The strict YAML loader: what OPA's loader would accept silently is an error with file, line and path."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyagent.policy.yamlload import PolicyYamlError, load, loads
from tests.policy_data.conftest import run

PREFIX = ("pyagent", "bans")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "a:\n  b: 1\n  b: 2\n",
            "f.yaml:3: data.pyagent.bans.a.b: duplicate key (first at line 2); "
            "the second would replace the first",
        ),
        (
            "a: &x [1]\nb: *x\n",
            "f.yaml:1: anchors and aliases (&, *) are not allowed in policy data; write the value out",
        ),
        (
            "a:\n  <<: {b: 1}\n",
            "f.yaml:2: data.pyagent.bans.a: merge keys (<<) are not allowed in policy data",
        ),
        ("a:\n  1: x\n", "f.yaml:2: data.pyagent.bans.a: key '1' is not a string; quote it"),
        ("a:\n  true: x\n", "f.yaml:2: data.pyagent.bans.a: key 'true' is not a string; quote it"),
        ("a:\n\tb: 1\n", "f.yaml:2: tab character; indent and separate with spaces"),
        (
            "a: !!binary aGk=\n",
            "f.yaml:1: data.pyagent.bans.a: tag 'tag:yaml.org,2002:binary' is not allowed in policy data",
        ),
        ("a: [\n", "f.yaml:2: not valid YAML: expected the node content, but found '<stream end>'"),
    ],
    ids=["duplicate-key", "alias", "merge-key", "int-key", "bool-key", "tab", "tag", "syntax"],
)
def test_refused_with_file_line_and_path(text: str, message: str) -> None:
    with pytest.raises(PolicyYamlError) as refused:
        loads(text, "f.yaml", PREFIX)
    assert str(refused.value) == message


def test_scalars_resolve_as_opa_reads_them() -> None:
    """YAML 1.2 core schema: yes/no/on and unquoted dates stay strings, as in OPA's data."""
    located = loads("a: [yes, no, on, 2023-03-15T00:00:00Z, 2023-03-15, 0x1f, 1.5, ~, true, '7']\n", "f.yaml")
    assert located.value == {
        "a": ["yes", "no", "on", "2023-03-15T00:00:00Z", "2023-03-15", 31, 1.5, None, True, "7"]
    }
    assert located.lines[("a", 3)] == 1


def test_a_data_file_with_an_anchor_fails_lint_with_its_line(policy_copy: Path) -> None:
    bans = policy_copy / "data" / "pyagent" / "bans" / "data.yaml"
    bans.write_text(
        bans.read_text().replace(
            "  apps:\n    android:\n      - com.lemon", "  apps: &apps\n    android:\n      - com.lemon", 1
        )
    )
    line = bans.read_text().splitlines().index("  apps: &apps") + 1
    result = run(["policy", "lint", str(policy_copy)])
    message = f"{bans}:{line}: anchors and aliases (&, *) are not allowed in policy data; write the value out"
    assert (result.exit_code, result.stderr) == (2, f"{message}\nlint: problems found\n")


def test_every_shipped_data_file_loads() -> None:
    """The shipped data passes the strict loader (and the lines point into the right file)."""
    orgs = (
        Path(__file__).resolve().parents[2] / "policies" / "data" / "pyagent" / "organizations" / "data.yaml"
    )
    located = load(orgs)
    text = orgs.read_text().splitlines()
    assert text[located.lines[("eeas", "inherits")] - 1] == "  inherits: [eu-commission]"


def test_a_data_file_that_never_ends_is_refused_unread(tmp_path: Path) -> None:
    """A data file linked to /dev/zero was read whole before its size was checked: memory ran out."""
    (tmp_path / "data.yaml").symlink_to("/dev/zero")
    with pytest.raises(PolicyYamlError) as caught:
        load(tmp_path / "data.yaml")
    assert str(caught.value) == f"{tmp_path / 'data.yaml'}: policy data is a device, not a regular file"
