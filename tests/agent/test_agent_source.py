"""``agent.source``: what reads the machine the agent runs on. ``linux`` (the default: dpkg, rpm,
flatpak, snap) or ``osquery`` (``osqueryi`` live, the table of ``agent.osquery_table`` or this OS's),
so that an agent on a Mac or a Windows PC decides on its own apps. Checked when the agent starts."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pyagent.agent.chain import ChainKey
from pyagent.agent.store import Spool
from pyagent.collectors.linux import LinuxCollector
from pyagent.collectors.osquery import OsqueryCollector
from pyagent.config.agent import AgentConfig, agent_settings
from pyagent.errors import InvalidInputError
from tests.agent.conftest import REPO, pyagent_env
from tests.conftest import FakeTool

OSQUERY_CAPTURES = REPO / "tests" / "fixtures" / "collectors" / "osquery"


def test_the_default_source_is_this_linux_machine() -> None:
    settings = agent_settings(AgentConfig(source="agent.toml"))
    assert (settings.source, settings.osquery_table, type(settings.collector())) == (
        "linux",
        None,
        LinuxCollector,
    )


def test_osquery_reads_the_table_named() -> None:
    settings = agent_settings(AgentConfig(agent={"source": "osquery", "osquery_table": "programs"}))
    collector = settings.collector()
    assert (type(collector), getattr(collector, "table", None)) == (OsqueryCollector, "programs")


ONE_OF = "must be one of linux, osquery (the collectors that read this machine)"


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        ({"source": "android-pm"}, f"agent.source in agent.toml {ONE_OF}, got 'android-pm'"),
        (
            {"osquery_table": "apps"},
            "agent.osquery_table in agent.toml is for source = \"osquery\" only, got 'apps'",
        ),
        ({"source": ""}, "agent.source in agent.toml must be a non-empty string, got ''"),
    ],
)
def test_a_source_that_cannot_read_this_machine_is_refused(agent: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        agent_settings(AgentConfig(source="agent.toml", agent=agent))
    assert (str(info.value), info.value.exit_code) == (message, 2)


def _osqueryi_replaying(fake_tool: FakeTool, tmp_path: Path, capture: str) -> tuple[dict[str, str], Path]:
    """An environment whose ``osqueryi`` replays a real capture (a tool this machine lacks), and the
    file it writes its arguments to."""
    asked = tmp_path / "osqueryi.args"
    fake_tool("osqueryi", f"printf '%s\\n' \"$@\" > '{asked}'\ncat '{OSQUERY_CAPTURES / capture}'\n")
    return pyagent_env(), asked


def _pyagent(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pyagent", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, cwd=REPO, env=env, check=False
    )


def test_an_agent_on_windows_decides_on_what_osqueryi_lists(
    tmp_path: Path, config_file: Callable[..., Path], fake_tool: FakeTool
) -> None:
    """osquery 5.17's ``programs`` on a Windows PC with TikTok from the Store: the Commission's
    corporate device breaks its ban (exit 1), decided on the Windows package family name."""
    env, asked = _osqueryi_replaying(fake_tool, tmp_path, "windows-programs-osquery-5.17-msix.json")
    config = config_file(source="osquery", osquery_table="programs")
    done = _pyagent("agent", "run", "--once", "--config", str(config), env=env)
    assert (done.returncode, json.loads(done.stdout)["outcome"]) == (1, "non-compliant"), done.stderr
    assert asked.read_text().splitlines() == ["--json", "select * from programs"]
    with Spool.open(tmp_path / "spool.sqlite", key=ChainKey(), readonly=True) as spool:
        body = json.loads(spool.records()[0].body)
    assert body["input"]["report"]["device"]["platform"] == "windows"
    assert [(v["rule"], v["app_id"]) for v in body["decision"]["violations"]] == [
        ("eu-commission/tiktok", "BytedancePte.Ltd.TikTok_6yccndn6064se")
    ]


def test_check_without_a_report_collects_as_the_agent_would(
    tmp_path: Path, config_file: Callable[..., Path], fake_tool: FakeTool
) -> None:
    """``pyagent check`` with no REPORT reads the agent config's facts, and its source too: on the same
    Windows PC it decides on osqueryi's list, as ``agent run`` does (it read dpkg: another inventory)."""
    env, asked = _osqueryi_replaying(fake_tool, tmp_path, "windows-programs-osquery-5.17-msix.json")
    env["PYAGENT_CONFIG"] = str(config_file(source="osquery", osquery_table="programs"))
    done = _pyagent("check", "--format", "json", env=env)
    decision = json.loads(done.stdout)
    assert (done.returncode, [v["app_id"] for v in decision["violations"]]) == (
        1, ["BytedancePte.Ltd.TikTok_6yccndn6064se"]
    ), done.stderr  # fmt: skip
    assert asked.read_text().splitlines() == ["--json", "select * from programs"]


def test_collect_without_a_source_reads_this_machine_as_the_agent_would(
    tmp_path: Path, config_file: Callable[..., Path], fake_tool: FakeTool
) -> None:
    env, asked = _osqueryi_replaying(fake_tool, tmp_path, "windows-programs-osquery-5.17-msix.json")
    env["PYAGENT_CONFIG"] = str(config_file(source="osquery", osquery_table="programs"))
    done = _pyagent("collect", env=env)
    report = json.loads(done.stdout)
    assert (done.returncode, report["device"]["platform"], report["collector"]["name"]) == (
        0, "windows", "osquery"
    ), done.stderr  # fmt: skip
    assert asked.read_text().splitlines() == ["--json", "select * from programs"]


def test_the_configs_sources_are_the_registrys_this_machine_collectors() -> None:
    """``agent.source`` is checked without importing the collectors: its names must be the registry's."""
    from pyagent.collectors.registry import THIS_MACHINE
    from pyagent.config.agent import AGENT_SOURCES

    assert AGENT_SOURCES == tuple(name.value for name in THIS_MACHINE) == ("linux", "osquery")
