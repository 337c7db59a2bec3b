"""The error hierarchy. Every error carries the exit code the CLI maps it to.

Exit codes (CONTRACT section 3): 2 invalid input or usage, 3 no decision could be obtained.
Each plug-in area (collectors, engines, outputs) derives one base error from these.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterable, Iterator


class PyagentError(Exception):
    """Base of every error pyagent reports to a user. ``str(err)`` is a one-line message."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def details(self) -> list[str]:
        """Further lines a person needs, e.g. every schema error of a report (one per line)."""
        return []


class InvalidInputError(PyagentError):
    """Bad input or usage: a report, a flag, a data file. Exit code 2."""

    exit_code = 2


class NoDecisionError(PyagentError):
    """No decision could be obtained: engine unreachable, failed, or a tool it needs failed. Exit code 3."""

    exit_code = 3


def and_more(count: int, noun: str) -> str:
    """What follows the first of ``count + 1`` errors told in one line: `` (and 2 more problems)``, or
    nothing when there is no other."""
    return f" (and {count} more {noun}{'' if count == 1 else 's'})" if count > 0 else ""


@contextlib.contextmanager
def located(where: str) -> Iterator[None]:
    """Re-raise an :class:`InvalidInputError` from the block as ``WHERE: message``: a mistake found
    deep down (a key file, a token file) is told with where it was named (a config key and file)."""
    try:
        yield
    except InvalidInputError as err:
        raise InvalidInputError(f"{where}: {err}") from None


def listed(shown: Iterable[str], total: int) -> str:
    """The first few of ``total`` names, and how many are left out: ``a, b, c and 4 more``."""
    names = list(shown)
    return ", ".join(names) + (f" and {total - len(names)} more" if total > len(names) else "")


def unexpected_traceback(error: BaseException) -> str | None:
    """The traceback of an error that is no :class:`PyagentError` nor an ``OSError`` (a bug, not a
    failure the code foresaw), for a long-running process that records it and goes on; None for a
    foreseen one, whose message says it all."""
    if isinstance(error, PyagentError | OSError):
        return None
    return "".join(traceback.format_exception(error)).rstrip("\n")
