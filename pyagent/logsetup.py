"""pyagent's loggers, all under ``pyagent``, which carries one ``NullHandler``: Python's last-resort
handler then never prints pyagent's warnings on stderr where the application configured no logging
(the command line adds a handler for ``-v``; without it, an error reaches the user once, as the error
line).

A module that logs takes its logger from :func:`get_logger`, so the ``NullHandler`` exists before its
first record whenever it is imported; the command line no longer imports :mod:`logging` (2.5 ms of a
cold ``pyagent check``, which logs nothing) unless it is loaded already or ``-v`` is given.
"""

from __future__ import annotations

import logging

__all__ = ["ROOT", "get_logger", "quiet_root"]

ROOT = "pyagent"


def quiet_root() -> logging.Logger:
    """The ``pyagent`` logger, with its ``NullHandler`` (added once)."""
    logger = logging.getLogger(ROOT)
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())  # no "last resort" echo of warnings on stderr
    return logger


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` for a logger under ``pyagent``, :func:`quiet_root` done first."""
    quiet_root()
    return logging.getLogger(name)
