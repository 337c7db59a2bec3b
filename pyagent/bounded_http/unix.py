"""HTTP over a Unix domain socket (``unix:///run/pyagent-opa/opa.sock``), for an OPA on the same machine.

A socket is a file: whoever could create it at that path could answer in place of the server. So the
connection asks the kernel who is listening (``SO_PEERCRED``, the credentials of the process that
called ``listen``) and goes on only when that is this user or root; otherwise it fails as
:class:`~pyagent.bounded_http.core.TransportError` of kind ``untrusted``, before a byte is sent.
Where the kernel cannot say (no ``SO_PEERCRED``), the socket file's owner is checked instead.
"""

from __future__ import annotations

import http.client
import os
import socket
import struct

from pyagent.bounded_http.core import TransportError

__all__ = ["MAX_PATH_BYTES", "UnixHTTPConnection", "trusted_uids"]

MAX_PATH_BYTES = 107
"""The longest socket path Linux takes (``sun_path`` is 108 bytes with its terminating NUL)."""

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def trusted_uids() -> frozenset[int]:
    """Who may answer on a socket: this process's user, and root."""
    return frozenset({os.geteuid(), 0})


class UnixHTTPConnection(http.client.HTTPConnection):
    """An ``http.client`` connection to the server listening on the socket at ``path``."""

    def __init__(self, path: str, origin: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)  # the Host header; the socket is the address
        self._path = path
        self._origin = origin

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            if not hasattr(socket, "SO_PEERCRED"):
                self._check(os.stat(self._path).st_uid, "owns the socket")
            sock.connect(self._path)
            if hasattr(socket, "SO_PEERCRED"):
                _, uid, _ = _PEERCRED.unpack(
                    sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
                )
                self._check(uid, "listens on the socket")
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def _check(self, uid: int, does: str) -> None:
        if uid not in trusted_uids():
            raise TransportError(
                self._origin,
                f"the process that {does} runs as uid {uid}, neither this user (uid {os.geteuid()}) nor "
                "root: not asked",
                "untrusted",
            )
