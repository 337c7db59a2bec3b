"""The README test's throwaway PostgreSQL: the server tests' session fixture."""

from tests.server.conftest import postgres

__all__ = ["postgres"]
