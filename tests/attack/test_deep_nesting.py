"""JSON and YAML nested past what Python's readers follow (about 1,000 levels) from every place that
reads a document it did not write: a bundle's files, a registry's answers, the state directory, policy
data. Each is refused as that document's error, with what and where, never an internal error; policy
data is bounded at :data:`~pyagent.policy.yamlload.MAX_DATA_DEPTH` levels, far below the point where
merging and checking it (all recursive) would fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from pyagent.agent.plugins.oci import OciPuller, RegistryError, parse_reference
from pyagent.agent.plugins.ociauth import registry_message
from pyagent.bounded_http.core import Reply
from pyagent.bundles.errors import BundleRejected, RejectionKind
from pyagent.bundles.roots import check_roots
from pyagent.bundles.state import STATE_FILE, BundleState, StateError
from pyagent.engines.wasm.bundle import BundleError, bundle_from_members
from pyagent.errors import InvalidInputError
from pyagent.policy import index
from pyagent.policy.data import load_overlay
from pyagent.policy.yamlload import MAX_DATA_DEPTH, PolicyYamlError, loads

#: Past Python's reader in any stack this test runs in.
PAST_THE_READER = 5000


def nested(depth: int) -> str:
    """``depth`` arrays, one inside the other."""
    return "[" * depth + "]" * depth


DEEP = nested(PAST_THE_READER).encode()


def test_a_bundle_file_nested_too_deeply_is_a_bundle_error() -> None:
    manifest = json.dumps({"revision": "r1", "roots": [""]}).encode()
    wasm = b"\0asm\1\0\0\0"  # an empty module: the files are read before it is compiled
    with pytest.raises(BundleError) as data_err:
        bundle_from_members(
            {".manifest": manifest, "policy.wasm": wasm, "data.json": b'{"x": ' + DEEP + b"}"},
            label="b.tar.gz",
        )
    assert str(data_err.value) == "bundle b.tar.gz: data.json: JSON nested too deeply"
    with pytest.raises(BundleError) as manifest_err:
        bundle_from_members({".manifest": DEEP, "data.json": b"{}"}, label="b.tar.gz")
    assert str(manifest_err.value) == "bundle b.tar.gz: .manifest: JSON nested too deeply"


@pytest.mark.parametrize(
    ("files", "detail"),
    [
        ({".manifest": DEEP}, ".manifest: not JSON"),
        ({".manifest": b'{"roots": ["pyagent"]}', "pyagent/data.json": DEEP}, "pyagent/data.json: not JSON"),
    ],
)
def test_roots_are_not_read_from_a_document_nested_too_deeply(files: dict[str, bytes], detail: str) -> None:
    with pytest.raises(BundleRejected) as err:
        check_roots(files, "b.tar.gz")
    assert (err.value.kind, err.value.detail) == (RejectionKind.OUTSIDE_ROOTS, detail)


def test_a_bundle_index_check_names_the_data_file_nested_too_deeply() -> None:
    with pytest.raises(InvalidInputError) as err:
        index.check_members({"/pyagent/data.json": DEEP}, label="b.tar.gz")
    assert str(err.value) == "b.tar.gz: /pyagent/data.json is not JSON"


def test_a_state_file_nested_too_deeply_is_a_state_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / STATE_FILE).write_bytes(DEEP)
    with pytest.raises(StateError, match=f"^bundle state {state / STATE_FILE}: corrupt \\(maximum recursion"):
        BundleState(state).last()


def test_registry_answers_nested_too_deeply() -> None:
    """An error body is read for its message only (none found: the status alone); a manifest is not
    a manifest."""
    reply = Reply(status=500, headers={}, body=DEEP, size=len(DEEP))
    assert registry_message(reply) == "HTTP 500"
    puller = OciPuller(
        cast(Any, None), parse_reference("registry.test/p/b:stable", what="resource"), size_limit=1, label="b"
    )
    with pytest.raises(RegistryError) as err:
        puller._bundle_layer(DEEP, "sha256:00")
    assert str(err.value).startswith("b: manifest sha256:00 is not JSON: maximum recursion depth exceeded")


def _yaml_nesting(collections: int) -> str:
    """A data.yaml whose ``pyagent.bans.x`` ends in flow arrays: ``collections`` collections in all."""
    return "pyagent:\n  bans:\n    x: " + nested(collections - 3) + "\n"


def _json_nesting(collections: int) -> str:
    """An overlay whose ``pyagent.bans`` is arrays on line 2: ``collections`` collections in all."""
    return '{"pyagent": {"bans":\n' + nested(collections - 2) + "}}"


def test_policy_data_nests_at_most_max_data_depth_levels(tmp_path: Path) -> None:
    at_the_bound = loads(_yaml_nesting(MAX_DATA_DEPTH), "data.yaml")
    bans = at_the_bound.value["pyagent"]["bans"]["x"]
    depth = 4  # the root, pyagent, bans, then the outermost array
    while bans:
        bans, depth = bans[0], depth + 1
    assert depth == MAX_DATA_DEPTH
    overlay = tmp_path / "at-the-bound.json"
    overlay.write_text(_json_nesting(MAX_DATA_DEPTH))
    assert load_overlay(overlay).document["pyagent"]["bans"] == json.loads(nested(MAX_DATA_DEPTH - 2))


@pytest.mark.parametrize("collections", [MAX_DATA_DEPTH + 1, 600, PAST_THE_READER])
def test_policy_data_nested_deeper_is_refused_at_its_line(tmp_path: Path, collections: int) -> None:
    too_deep = f"nested too deeply (policy data nests at most {MAX_DATA_DEPTH} levels)"
    with pytest.raises(PolicyYamlError) as yaml_err:
        loads(_yaml_nesting(collections), "data.yaml")
    assert str(yaml_err.value) == f"data.yaml:3: {too_deep}"
    overlay = tmp_path / "deep.json"
    overlay.write_text(_json_nesting(collections))
    with pytest.raises(InvalidInputError) as json_err:
        load_overlay(overlay)
    expected = (
        f"{overlay}:2: {too_deep}"
        if collections < PAST_THE_READER
        else f"{overlay}: data file is nested too deeply"
    )
    assert str(json_err.value) == expected
