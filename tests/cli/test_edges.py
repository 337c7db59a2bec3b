"""Edges from the fault list, through the real CLI on both engines: 100,000-app reports, the exact
instant a ban takes effect, NUL and homoglyphs in app names, and reports over the bounds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pyagent.cli import cli
from tests.helpers import domain


def check(path: Path, at: str, engine_args: list[str]) -> Any:
    return CliRunner().invoke(cli, ["check", str(path), "--at", at, "--format", "json", *engine_args])


def test_hundred_thousand_apps_with_tiktok_last(engine_args: list[str], tmp_path: Path) -> None:
    apps = [f"com.example.filler{i:06d}" for i in range(99_999)] + ["com.zhiliaoapp.musically"]
    path = tmp_path / "big.json"
    path.write_text(json.dumps(domain.make_report("india", "android", "personal", False, apps)))
    result = check(path, "2023-03-16T09:30:00Z", engine_args)
    assert result.exit_code == 1, result.stderr
    assert [v["app_id"] for v in json.loads(result.stdout)["violations"]] == ["com.zhiliaoapp.musically"]


def test_over_the_app_bound_is_invalid_input(engine_args: list[str], tmp_path: Path) -> None:
    apps = [f"a{i}" for i in range(100_001)]
    path = tmp_path / "too-big.json"
    path.write_text(json.dumps(domain.make_report("india", "android", "personal", False, apps)))
    result = check(path, "2023-03-16T09:30:00Z", engine_args)
    assert (result.exit_code, result.stdout) == (2, "")
    bound = "$.apps: too many items: 100001, at most 100000 allowed"
    assert result.stderr == f"pyagent: error: {path}: {bound}\n"


@pytest.mark.parametrize(
    ("at", "code", "kind"),
    [
        ("2023-03-14T23:59:59.999999999Z", 0, "warnings"),
        ("2023-03-15T00:00:00Z", 1, "violations"),
        ("2023-03-15T01:00:00+01:00", 1, "violations"),
        ("2023-03-14T19:59:59-04:00", 0, "warnings"),
    ],
)
def test_the_instant_a_ban_takes_effect(
    engine_args: list[str], tmp_path: Path, at: str, code: int, kind: str
) -> None:
    path = tmp_path / "r.json"
    path.write_text(
        json.dumps(
            domain.make_report("eu-commission", "ios", "corporate", True, ["com.zhiliaoapp.musically"])
        )
    )
    result = check(path, at, engine_args)
    assert result.exit_code == code
    decision = json.loads(result.stdout)
    assert [e["rule"] for e in decision[kind]] == ["eu-commission/tiktok"]


def test_nul_in_an_app_id_is_invalid_input(engine_args: list[str], tmp_path: Path) -> None:
    report = domain.make_report("india", "android", "personal", False, ["com.zhiliaoapp.musically\u0000x"])
    path = tmp_path / "nul.json"
    path.write_text(json.dumps(report))
    result = check(path, "2023-03-16T09:30:00Z", engine_args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"pyagent: error: {path}: $.apps[0].id: must not contain a NUL character (\\u0000), found at "
        'position 24: "com.zhiliaoapp.musically\\u0000x"\n'
    )


def test_homoglyph_id_is_not_tiktok_but_a_homoglyph_name_changes_nothing(
    engine_args: list[str], tmp_path: Path
) -> None:
    fake = domain.make_report("india", "android", "personal", False, ["com.zhili\u0430app.musically"])
    path = tmp_path / "fake.json"
    path.write_text(json.dumps(fake))
    assert check(path, "2023-03-16T09:30:00Z", engine_args).exit_code == 0
    real = domain.make_report("india", "android", "personal", False, ["com.zhiliaoapp.musically"])
    real["apps"][0]["name"] = "T\u0456kT\u043ek"
    path.write_text(json.dumps(real))
    assert check(path, "2023-03-16T09:30:00Z", engine_args).exit_code == 1
