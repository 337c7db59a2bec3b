"""The control plane of the loop: one ``pyagent server run`` at a time on one SQLite database, and
what it stores, read back through its API and its tables."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pyagent.server.store import open_store
from pyagent.server.store.schema import decisions, instances
from pyagent.server.store.sql import SqlStore
from tests.e2e.parts.evidence import Evidence
from tests.e2e.parts.http import call
from tests.e2e.parts.names import BUNDLE, DEVICE_ID, KEYID
from tests.e2e.parts.signed import Signed
from tests.helpers.opa_server import free_port
from tests.helpers.pyagent_server import RunningServer, add_token, run_server


@dataclass
class Plane:
    """The control plane: one ``pyagent server run`` at a time on one SQLite database and one port."""

    workdir: Path
    db: str
    port: int
    config: Path
    agent_token: Path
    reader: str
    admin: str
    evidence: Evidence
    stack: contextlib.ExitStack
    server: RunningServer | None = None
    reads: SqlStore | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = self.stack.enter_context(
            run_server(self.workdir, self.db, port=self.port, extra_args=["--config", str(self.config)])
        )
        self.evidence.add("server", self.server.log)
        if self.reads is None:
            store = open_store(self.db, migrate=False)
            assert isinstance(store, SqlStore)
            self.reads = store
            self.stack.callback(store.close)

    def kill(self) -> None:
        assert self.server is not None
        self.server.kill()

    def device(self) -> dict[str, Any] | None:
        """``GET /api/v1/devices/{id}`` as a reader: the agent's device, or None before it has one."""
        status, body = call(f"{self.url}/api/v1/devices/{DEVICE_ID}?history=10000", token=self.reader)
        assert status in (200, 404), (status, body)
        return body if status == 200 and isinstance(body, dict) else None

    def rollout(self) -> dict[str, Any]:
        status, body = call(f"{self.url}/api/v1/rollout/{BUNDLE}", token=self.reader)
        assert status == 200 and isinstance(body, dict), (status, body)
        return body

    def instance(self, instance_id: str) -> dict[str, Any] | None:
        """The newest status that ``instance_id`` sent (the ``instances`` table), JSON decoded."""
        assert self.reads is not None
        with self.reads.engine.connect() as conn:
            row = (
                conn.execute(select(instances).where(instances.c.instance_id == instance_id))
                .mappings()
                .first()
            )
        if row is None:
            return None
        return {k: json.loads(row[k]) for k in ("labels", "bundles", "errors", "plugins")}

    def stored_decisions(self, sender: str) -> list[str]:
        """The ids of the decisions in the ``decisions`` table that ``sender`` uploaded."""
        assert self.reads is not None
        with self.reads.engine.connect() as conn:
            rows = conn.execute(select(decisions.c.decision_id).where(decisions.c.sender == sender)).all()
        return [str(row.decision_id) for row in rows]


def start_plane(workdir: Path, signed: Signed, evidence: Evidence, stack: contextlib.ExitStack) -> Plane:
    public = workdir / "signer.pub.pem"
    public.write_text(signed.public_pem)
    config = workdir / "server.toml"
    config.write_text(f'[server.verification]\nkey_path = "{public}"\nalgorithm = "RS256"\n')
    db = f"sqlite:///{workdir / 'server.db'}"
    token = workdir / "agent.token"
    token.write_text(add_token(db, "endpoints", "agent") + "\n")
    reader, admin = add_token(db, "security", "reader"), add_token(db, "release", "admin")
    plane = Plane(workdir, db, free_port(), config, token, reader, admin, evidence, stack)
    plane.start()
    return plane


def opa_tables(plane: Plane, signed: Signed) -> dict[str, Any]:
    """OPA's tables as an OPA and an agent of this fleet share them (each adds its own bundle)."""
    return {
        "services": {
            BUNDLE: {"url": plane.url, "credentials": {"bearer": {"token_path": str(plane.agent_token)}}}
        },
        "keys": {KEYID: {"key": signed.public_pem, "algorithm": "RS256"}},
        "decision_logs": {
            "service": BUNDLE,
            "reporting": {"min_delay_seconds": 0.2, "max_delay_seconds": 0.5},
        },
        "status": {"service": BUNDLE},
        "labels": {"fleet": "e2e"},
    }
