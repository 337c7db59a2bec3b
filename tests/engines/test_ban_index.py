"""The ban index (``data.pyagent_index``, :mod:`pyagent.policy.index`): built in Python the way the
policy's own Rego keys identifiers and parses times, decisions with it equal decisions without it (in
OPA's evaluator and in the embedded engine), and an index that does not match its bans is refused."""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyagent.engines.base import EngineError, EngineSettings
from pyagent.engines.select import build_engine
from pyagent.engines.wasm.bundle import read_archive, read_bundle, read_members
from pyagent.errors import InvalidInputError
from pyagent.policy import index
from tests.engines.differential_inputs import example_inputs, generated_inputs
from tests.helpers.opa_server import POLICY_DIRS

TRICKY_IDS = [
    "com.zhiliaoapp.musically",
    "Com.ZhiliaoApp.Musically",
    "BytedancePte.Ltd.TikTok_6yccndn6064se",
    "BytedancePte.Ltd.TikTok_1.0.0.0_x64__6yccndn6064se",
    "bytedance_",
    "_",
    "İstanbul.App",
    "ΟΔΟΣ.app",
    "Straße.ǅ.ﬀ",
    "ÀÉÎ_ÕÜ",
]
EXTRA_TIMES = [
    "0000-01-01T00:00:00Z",
    "0001-03-01T00:00:00+23:59",
    "1677-09-21T00:12:43.145224191Z",
    "2262-04-11T23:47:16.854775808Z",
    "2023-03-15T00:00:00+24:00",
    "2023-03-15T00:00:00.000000001-00:00",
    "2023-03-15T00:00:00Z\n",
    "2100-02-29T00:00:00Z",
    "2023-02-28T23:59:59.9+00:30",
]


def _eval(opa_bin: str, query: str, *paths: Path, with_tests: bool = False, input_: Any = None) -> Any:
    args = [opa_bin, "eval", "--format", "json", *(f"-d={p}" for p in paths)]
    if not with_tests:
        args += ["--ignore", "*_test.rego"]
    stdin = None
    if input_ is not None:
        args += ["--stdin-input"]
        stdin = json.dumps(input_)
    done = subprocess.run(
        [*args, query], input=stdin, capture_output=True, text=True, check=True, timeout=600
    )
    return json.loads(done.stdout)["result"][0]["expressions"][0]["value"]


@pytest.fixture(scope="module")
def shipped_data(opa_bin: str) -> dict[str, Any]:
    return index.data_of_dirs(list(POLICY_DIRS))


def test_python_index_equals_the_index_built_with_the_policys_own_rego(
    opa_bin: str, shipped_data: dict[str, Any]
) -> None:
    # the tests' Rego builder, over the shipped data (the library tests give it their frozen copy)
    over_shipped = " ".join(
        f"with data.pyagent.lib.testdata_test.{part} as data.pyagent.{part}"
        for part in ("bans", "organizations", "work_apps")
    )
    rego = _eval(
        opa_bin, f"data.pyagent.lib.matching_test.rego_index {over_shipped}", *POLICY_DIRS, with_tests=True
    )
    built = index.build(shipped_data)
    # resolved_orgs: tests/engines/test_org_index.py
    assert {k: v for k, v in built.items() if k not in ("digest", "times", "resolved_orgs")} == {
        k: v for k, v in rego.items() if k != "times"
    }
    assert built["bans"]["android"]["com.zhiliaoapp.musically"] == {"tiktok": True}
    assert built["times"] == {
        "2020-06-29T00:00:00Z": 1593388800000000000,
        "2022-12-29T00:00:00Z": 1672272000000000000,
        "2023-03-15T00:00:00Z": 1678838400000000000,
    }


def test_keys_agree_with_rego_on_unicode_and_windows_ids(opa_bin: str) -> None:
    platforms = ["android", "linux", "ios", "macos", "windows"]
    cases = [[p, i] for p in platforms for i in TRICKY_IDS]
    query = "[data.pyagent.lib.matching_test.keys_for(c[0], c[1]) | some c in input]"
    rego = _eval(opa_bin, query, *POLICY_DIRS, with_tests=True, input_=cases)
    assert [list(index._keys(p, i)) for p, i in cases] == rego
    assert index._keys("ios", "\u0130.\u03a3") == ("i.\u03c3",)  # Go's simple case mapping


def test_times_agree_with_the_policys_parser(opa_bin: str) -> None:
    listed = _eval(
        opa_bin,
        "array.concat(data.pyagent.lib.clock_test.valid_timestamps, "
        "data.pyagent.lib.clock_test.invalid_timestamps)",
        *POLICY_DIRS,
        with_tests=True,
    )
    stamps = [s for s in listed if isinstance(s, str)] + EXTRA_TIMES
    query = "[[s, n] | some s in input; n := data.pyagent.lib.clock.parse_ns(s)]"
    parsed = {s: n for s, n in _eval(opa_bin, query, *POLICY_DIRS, input_=stamps)}
    assert {s: n for s in stamps if (n := index.timestamp_ns(s)) is not None} == parsed
    assert index.timestamp_ns("2023-02-29T00:00:00Z") is None
    assert index.timestamp_ns("2262-04-11T23:47:16.854775807Z") == 2**63 - 1


def test_opa_decides_the_same_with_and_without_the_index(
    opa_bin: str, shipped_data: dict[str, Any], tmp_path: Path
) -> None:
    inputs = example_inputs() + generated_inputs(1500)
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps({"cases": inputs}))
    query = "[d | some c in input.cases; d := data.pyagent.decision with input as c]"
    args = [opa_bin, "eval", "--format", "json", "-i", str(batch), "--ignore", "*_test.rego", query]
    without = subprocess.run([*args, *(f"-d={p}" for p in POLICY_DIRS)], capture_output=True, check=True)
    root = index.write_root(shipped_data, tmp_path / "indexed")
    dirs = [*POLICY_DIRS, root]
    with_index = subprocess.run([*args, *(f"-d={p}" for p in dirs)], capture_output=True, check=True)
    decided = json.loads(with_index.stdout)["result"][0]["expressions"][0]["value"]
    assert decided == json.loads(without.stdout)["result"][0]["expressions"][0]["value"]
    assert len(decided) == len(inputs)
    assert any(d["violations"] for d in decided) and any(d["warnings"] for d in decided)


def test_check_passes_a_current_index_and_data_without_one(shipped_data: dict[str, Any]) -> None:
    index.check(shipped_data)
    index.check({**shipped_data, index.ROOT: index.build(shipped_data)})


def test_check_refuses_an_index_built_from_other_bans(shipped_data: dict[str, Any]) -> None:
    built = index.build(shipped_data)
    edited = json.loads(json.dumps(shipped_data))
    edited["pyagent"]["bans"]["tiktok"]["apps"]["android"].append("com.example.new")
    with pytest.raises(index.StaleIndexError) as refused:
        index.check({**edited, index.ROOT: built}, label="b.tar.gz")
    assert str(refused.value) == (
        "b.tar.gz: data.pyagent_index was built from other policy data than the data beside it (its bans "
        f"differ; digest {built['digest'][:12]}, the data's {index.digest(edited)[:12]}): rebuild the bundle "
        "with `pyagent policy bundle`"
    )


@pytest.mark.parametrize(
    ("edit", "differing"),
    [
        (lambda p: p["work_apps"]["android"].append("eu.example.mail"), "its work apps differ"),
        (
            lambda p: p["organizations"]["eu-council"]["rules"]["tiktok"].update(
                effective_from="2023-03-16T00:00:00Z"
            ),
            "its dates and organisations differ",
        ),
        (lambda p: p["bans"]["tiktok"].update(reason="another reason"), "its organisations differ"),
    ],
    ids=["work app added", "rule date moved", "ban reworded"],
)
def test_a_stale_index_says_what_of_the_data_changed(
    shipped_data: dict[str, Any], edit: Callable[[dict[str, Any]], None], differing: str
) -> None:
    built = index.build(shipped_data)
    edited = json.loads(json.dumps(shipped_data))
    edit(edited["pyagent"])
    with pytest.raises(index.StaleIndexError, match=rf"than the data beside it \({differing}; digest "):
        index.check({**edited, index.ROOT: built}, label="b.tar.gz")


def test_check_refuses_an_index_edited_after_it_was_built(shipped_data: dict[str, Any]) -> None:
    built = index.build(shipped_data)
    built["bans"]["android"].pop("com.zhiliaoapp.musically")
    with pytest.raises(index.StaleIndexError, match="edited after it was built"):
        index.check({**shipped_data, index.ROOT: built})
    with pytest.raises(index.StaleIndexError, match="not a ban index of format 4"):
        index.check({**shipped_data, index.ROOT: {"format": 9}})


def test_with_index_refuses_data_that_sets_ban_keys() -> None:
    with pytest.raises(InvalidInputError, match=r"policy data sets pyagent\.ban_keys"):
        index.with_index({"pyagent": {"ban_keys": {}}})


def test_only_well_formed_bans_are_indexed() -> None:
    data = {
        "pyagent": {
            "bans": {"ok": {"apps": {"ios": ["A.B"]}}, "odd": {"apps": {"ios": "A.B"}}, "worse": "x"},
            "organizations": {"o": {"work_apps": {"android": [1]}}, "p": {}},
        }
    }
    built = index.build(data)
    assert built["indexed_bans"] == {"ok": True}
    assert built["bans"] == {"ios": {"a.b": {"ok": True}}}
    assert built["indexed_orgs"] == {"p": True}
    assert built["work_apps_indexed"] is True and built["work_apps"] == {}


def _bundle_with_index(opa_bin: str, tmp_path: Path, idx: dict[str, Any]) -> Path:
    root = tmp_path / "idx" / index.ROOT
    root.mkdir(parents=True)
    (root / "data.json").write_text(json.dumps(idx))
    out = tmp_path / "bundle.tar.gz"
    subprocess.run(
        [
            *(opa_bin, "build", "-t", "wasm", "-e", "pyagent/decision", "--ignore", "*_test.rego"),
            *("-o", str(out), *map(str, POLICY_DIRS), str(tmp_path / "idx")),
        ],
        check=True,
        capture_output=True,
    )
    return out


def test_the_embedded_engine_refuses_a_bundle_with_a_stale_index(
    opa_bin: str, shipped_data: dict[str, Any], tmp_path: Path
) -> None:
    stale = index.build({"pyagent": {"bans": {}}})
    bundle = _bundle_with_index(opa_bin, tmp_path, stale)
    with pytest.raises(EngineError, match="was built from other policy data than the data beside it"):
        build_engine(EngineSettings(engine="embedded", bundle=str(bundle)))


def test_the_embedded_engine_decides_with_a_current_shipped_index(
    opa_bin: str, shipped_data: dict[str, Any], tmp_path: Path
) -> None:
    bundle = _bundle_with_index(opa_bin, tmp_path, index.build(shipped_data))
    case = example_inputs()[0]
    with build_engine(EngineSettings(engine="embedded", bundle=str(bundle))) as engine:
        got = engine.evaluate(case)
    assert got == _eval(opa_bin, "data.pyagent.decision", *POLICY_DIRS, input_=case)


def test_the_embedded_engine_decides_a_bundle_with_an_index_of_an_earlier_format(
    opa_bin: str, shipped_data: dict[str, Any], tmp_path: Path
) -> None:
    """An agent upgraded before its bundles are rebuilt: the engine decides with its own index (format
    4) and ignores the bundle's format-2 one (resolved organisations without message tails); publishing
    such a bundle is still refused."""
    earlier = {**index.build(shipped_data), "format": 2}
    earlier["resolved_orgs"] = {
        name: {"chain": org["chain"], "rules": org["rules"]} for name, org in earlier["resolved_orgs"].items()
    }
    bundle = _bundle_with_index(opa_bin, tmp_path, earlier)
    case = example_inputs()[0]
    with build_engine(EngineSettings(engine="embedded", bundle=str(bundle))) as engine:
        got = engine.evaluate(case)
    assert got == _eval(opa_bin, "data.pyagent.decision", *POLICY_DIRS, input_=case)
    with pytest.raises(index.StaleIndexError, match="is not a ban index of format 4; rebuild the bundle"):
        index.check({**shipped_data, index.ROOT: earlier})
    with pytest.raises(index.StaleIndexError, match="is not a ban index of format 4; rebuild the bundle"):
        index.check({**shipped_data, index.ROOT: {**earlier, "format": 5}}, replaced=True)


def test_policy_bundle_ships_the_index_and_publish_refuses_a_tampered_one(
    opa_bin: str, shipped_data: dict[str, Any], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from pyagent.cli import cli

    out = tmp_path / "server.tar.gz"
    args = ["policy", "bundle", "--target", "rego", "-o", str(out), "--revision", "r1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    members = read_members(read_archive(out), label=str(out))
    data = json.loads(members["data.json"])
    assert data[index.ROOT] == index.build(shipped_data)
    index.check_members(members, label=str(out))
    data["pyagent"]["bans"]["tiktok"]["apps"]["android"] = []
    tampered = {**members, "data.json": json.dumps(data).encode()}
    with pytest.raises(
        index.StaleIndexError, match=f"{out}: data.pyagent_index was built from other policy data"
    ):
        index.check_members(tampered, label=str(out))
    with tarfile.open(out) as archive:
        assert any(name.endswith("data.json") for name in archive.getnames())


def test_check_policy_compiles_the_index_into_its_bundle(
    opa_bin: str, shipped_data: dict[str, Any], tmp_path: Path
) -> None:
    from pyagent.policy.compiled import compile_policy

    built = compile_policy(POLICY_DIRS[0].parent, state_dir=tmp_path / "state")
    assert read_bundle(built).data[index.ROOT] == index.build(shipped_data)
