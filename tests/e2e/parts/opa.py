"""The loop's real OPA: ``opa run --server -c config.yaml`` with no policy of its own."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.parts.evidence import Evidence
from tests.e2e.parts.http import call
from tests.e2e.parts.names import BUNDLE, KEYID, SLOW_POLLING
from tests.e2e.parts.plane import Plane, opa_tables
from tests.e2e.parts.signed import Signed
from tests.helpers.opa_server import run_opa_server


@dataclass
class Opa:
    url: str
    instance_id: str

    def revision(self) -> str | None:
        """The revision of the bundle this OPA has active, as it says (``data.system.bundles``)."""
        status, answer = call(f"{self.url}/v1/data/system/bundles/{BUNDLE}/manifest/revision", timeout=2)
        return answer.get("result") if status == 200 and isinstance(answer, dict) else None

    def decide(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        status, answer = call(
            f"{self.url}/v1/data/pyagent/decision?provenance=true",
            method="POST",
            data=json.dumps({"input": policy_input}).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert status == 200 and isinstance(answer, dict) and "result" in answer, (status, answer)
        return answer


@contextlib.contextmanager
def running_opa(
    opa_bin: str, workdir: Path, plane: Plane, signed: Signed, evidence: Evidence
) -> Iterator[Opa]:
    """``opa run --server -c config.yaml``: no policy of its own, the signed rego build from the server."""
    config = opa_tables(plane, signed) | {
        "bundles": {
            BUNDLE: {
                "service": BUNDLE,
                "resource": f"bundles/{BUNDLE}",
                "polling": SLOW_POLLING,
                "signing": {"keyid": KEYID},
            }
        },
        "decision_logs": {"service": BUNDLE, "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 1}},
    }
    (workdir / "config.yaml").write_text(json.dumps(config, indent=2))
    options = ["--shutdown-grace-period", "1", "-c", str(workdir / "config.yaml")]
    with run_opa_server(opa_bin, workdir, paths=(), extra_args=options, log_level="info") as opa:
        evidence.add("opa", opa.log)
        status, answer = call(f"{opa.url}/v1/config")
        assert status == 200 and isinstance(answer, dict), (status, answer)
        yield Opa(opa.url, str(answer["result"]["labels"]["id"]))  # OPA names itself (labels.id)
