"""Events a pyagent server acknowledges without storing them (its answer's ``ignored``): for an
agent's own decisions, ones dated over five minutes ahead of the server's clock (this machine's clock
runs ahead). The agent took any 2xx as delivered and said nothing: the decisions were lost unsaid."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pyagent.agent.chain import ChainKey
from pyagent.agent.http import ServiceClient
from pyagent.agent.plugins.logs import DecisionLogPlugin
from pyagent.agent.store import Spool
from pyagent.config.opa import DecisionLogs, Service
from tests.agent.conftest import decided
from tests.helpers.pyagent_server import add_token, run_server


def _ahead(i: int) -> dict[str, Any]:
    """A record decided at an instant a day after the server's clock."""
    record = decided(i)
    at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    record["input"]["at"] = record["decision"]["evaluated_at"] = at
    return record


def test_events_the_server_ignores_are_told_not_resent(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'server.db'}"
    told: list[tuple[str, str, dict[str, Any]]] = []
    with run_server(tmp_path, db) as server, Spool.open(tmp_path / "spool.sqlite", key=ChainKey()) as spool:
        token = tmp_path / "agent.token"
        token.write_text(add_token(db, "agent", "agent"))
        token.chmod(0o600)
        for record in (decided(0), _ahead(1), _ahead(2)):
            spool.append(record, max_records=100)
        uploads = DecisionLogPlugin(
            DecisionLogs(service="plane", min_delay=1, max_delay=2),
            ServiceClient(Service("plane", server.url, token_path=token, timeout=5)),
            {}, rng=random.Random(1), notify=lambda *event: told.append(event),
        )  # fmt: skip
        assert uploads.step(spool) <= 2  # an upload that went well: nothing to retry
        assert spool.counts() == (3, 0)  # acknowledged: sending them again would be ignored again
    assert [(name, fields) for name, _, fields in told] == [("upload_ignored", {"ignored": 2, "sent": 3})]
    assert told[0][1] == (
        f"decision logs: {server.url}/logs acknowledged 2 of 3 event(s) without storing them (a decision "
        "dated ahead of the server's clock: check this machine's clock)"
    )
