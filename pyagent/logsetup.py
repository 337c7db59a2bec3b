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

__all__ = ["LEVEL_ENV", "ROOT", "get_logger", "log_to_stderr", "quiet_root"]

ROOT = "pyagent"
#: The level a process passes to the processes it starts (a server's ``--workers``), whose logging is
#: their own: without it, a worker's warnings went nowhere.
LEVEL_ENV = "PYAGENT_LOG_LEVEL"


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


def log_to_stderr(level: int | None) -> logging.Logger:
    """The ``pyagent`` logger quieted (:func:`quiet_root`) and, with a ``level``, writing records of
    that level and above to stderr, secrets redacted and control characters shown escaped (once: a
    second call leaves the first one's handler and level)."""
    from pyagent.termsafe import safe_line

    class SafeFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return safe_line(super().format(record))

    logger = quiet_root()
    if level is not None and not any(type(h) is logging.StreamHandler for h in logger.handlers):
        logger.setLevel(level)
        handler = logging.StreamHandler()
        handler.setFormatter(SafeFormatter("pyagent: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
    return logger
