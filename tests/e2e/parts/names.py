"""Names the end-to-end loop's parts share: the bundle, the signing key's id, the device, the polling."""

from __future__ import annotations

from tests.agent.conftest import DEVICE

BUNDLE = "pyagent"
KEYID = "signer"
DEVICE_ID = str(DEVICE["id"])
SLOW_POLLING = {"min_delay_seconds": 20, "max_delay_seconds": 30, "long_polling_timeout_seconds": 10}
"""Against the server: only a long poll can bring a new revision within seconds."""
FAST_POLLING = {"min_delay_seconds": 0.3, "max_delay_seconds": 0.6}
"""Against nginx and the drip server, which do not long-poll."""
TARGETS = ("rego", "wasm")
"""The two builds of each revision: the Rego one a real OPA loads, the wasm one the agent runs."""
