"""Shared test helpers (real processes: opa, the pyagent CLI)."""
