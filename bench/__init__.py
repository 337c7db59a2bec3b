"""make bench: pyagent measured side by side with OPA itself (see docs/benchmarks.md)."""
