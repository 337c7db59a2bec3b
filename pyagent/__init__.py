"""pyagent: app bans on managed devices, written as Rego policy and decided by OPA."""

__version__ = "0.1.0"
