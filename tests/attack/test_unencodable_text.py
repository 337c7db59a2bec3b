"""A compromised server's words that UTF-8 cannot carry (a lone surrogate, valid as a JSON escape, or a
tar member named by a byte that is no UTF-8): where the agent stores or sends them (the spool, status
messages, its log file) they are written as escapes. They crashed the agent before it recorded its run,
and every status upload after."""

from __future__ import annotations

import json
from pathlib import Path

from pyagent.agent.chain import ChainKey
from pyagent.agent.http import ServiceClient
from pyagent.agent.plugins.status import StatusPlugin
from pyagent.agent.store import Spool
from pyagent.config.opa import Service
from pyagent.jsonio import storable
from tests.agent.conftest import DEVICE, run_pyagent
from tests.agent.plugins.conftest import started_plugin
from tests.helpers.fault_server import Fault, fault_server

#: ``{"message": "boom \udcff"}``: valid JSON, a string no UTF-8 can carry.
UNENCODABLE = Fault(status=500, body=b'{"message": "boom \\udcff"}')


def test_storable_escapes_only_what_utf8_cannot_carry() -> None:
    assert storable({"a": "boom \udcff", "k\udcfe": ["x", "y\ud800", 1, None]}) == {
        "a": "boom \\udcff",
        "k\\udcfe": ["x", "y\\ud800", 1, None],
    }
    kept = {"a": "é ✓", "b": [1.5, True]}
    assert storable(kept) is kept


def test_the_run_is_recorded_when_the_bundle_service_answers_unencodable_text(tmp_path: Path) -> None:
    with fault_server(UNENCODABLE) as url:
        config = tmp_path / "agent.toml"
        device = "\n".join(f"{key} = {json.dumps(value)}" for key, value in DEVICE.items())
        agent = f'state_dir = "{tmp_path / "state"}"\nlog_path = "{tmp_path / "agent.jsonl"}"'
        config.write_text(
            f"[device]\n{device}\n[agent]\n{agent}\n"
            f'[services.evil]\nurl = "{url}"\n[bundles.pyagent]\nservice = "evil"\n'
            '[status]\nservice = "evil"\n'
        )
        done = run_pyagent("agent", "run", "--once", "--config", str(config))
    assert done.returncode == 3, done.stderr
    assert (json.loads(done.stdout)["seq"], json.loads(done.stdout)["exit_code"]) == (1, 3)
    assert "internal error" not in done.stderr and "boom \\udcff" in done.stderr
    with Spool.open(tmp_path / "state" / "spool.sqlite", key=ChainKey(), readonly=True) as spool:
        [record] = spool.records()
    assert "boom \\\\udcff" in record.body  # (the escape itself, as JSON writes a backslash)
    assert "boom \\udcff" in (tmp_path / "agent.jsonl").read_text(encoding="utf-8")
    status = run_pyagent("agent", "status", "--config", str(config), "--format", "json")
    shown = json.loads(status.stdout)  # (UTF-8 JSON: a raw 0xff byte was printed)
    assert (status.returncode, shown["last_run"]["outcome"]) == (0, "no-decision")
    assert "boom \\udcff" in shown["bundles"][0]["error"]


def test_a_status_message_with_unencodable_text_is_sent(tmp_path: Path) -> None:
    sent: list[str] = []
    with fault_server(UNENCODABLE, Fault(status=204, body=b""), paths=sent) as url:
        bundle = started_plugin(url, tmp_path)
        bundle.step(wait=False)  # refused: the service's words are its status message
        status = StatusPlugin(
            ServiceClient(Service("s", url)), {}, lambda: "d-1", bundles=[bundle], logs=None
        )
        status.step()
    assert bundle.status.message is not None and "\udcff" in bundle.status.message
    assert (sent, status.state.last_error) == (["/bundles/pyagent", "/status"], None)
