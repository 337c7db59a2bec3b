"""Engines: what turns a policy input into a decision (an OPA server, or OPA's wasm in-process)."""
