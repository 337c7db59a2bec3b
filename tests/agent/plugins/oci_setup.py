"""What the OCI tests share: the repository bundles are pushed to, and an agent config that pulls
one from a registry."""

from __future__ import annotations

import json
from pathlib import Path

from tests.agent.conftest import DEVICE

REPOSITORY = "policies/pyagent"


def oci_config(
    path: Path,
    *,
    state: Path,
    url: str,
    reference: str,
    public_key: Path,
    size_limit: int | None = None,
    token: Path | None = None,
) -> Path:
    """An agent.toml: the device, and one bundle from the registry at ``url`` (no logs, no status)."""
    lines = [
        "[device]",
        *(f"{k} = {json.dumps(v)}" for k, v in DEVICE.items()),
        "[agent]",
        f"state_dir = {json.dumps(str(state))}",
        "interval = 3600",
        "[services.registry]",
        f"url = {json.dumps(url)}",
        'type = "oci"',
    ]
    if token is not None:
        lines.append(f"credentials.bearer.token_path = {json.dumps(str(token))}")
    lines += [
        "[bundles.pyagent]",
        'service = "registry"',
        f"resource = {json.dumps(reference)}",
        "persist = true",
        "polling.min_delay_seconds = 20",
        "polling.max_delay_seconds = 30",
        'signing.keyid = "signer"',
    ]
    if size_limit is not None:
        lines.append(f"size_limit_bytes = {size_limit}")
    lines += ["[keys.signer]", f"key_path = {json.dumps(str(public_key))}"]
    path.write_text("\n".join(lines) + "\n")
    return path
