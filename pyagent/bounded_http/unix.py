"""HTTP over a Unix domain socket (``unix:///run/pyagent-opa/opa.sock``), for an OPA on the same machine.

A socket is a file: whoever could create it at that path could answer in place of the server. So the
connection asks the kernel who is listening (``SO_PEERCRED``: the effective user of the process that
called ``listen``) and goes on only when that is this user or root; otherwise it fails as
:class:`~pyagent.bounded_http.core.TransportError` of kind ``untrusted``, before a byte is sent.
Root is trusted as it can do anything anyway; note that a socket systemd listens on for a
socket-activated service shows root too. Where the kernel cannot say (no ``SO_PEERCRED``: not Linux),
there is no such connection (:data:`SUPPORTED` is false, and ``unix:`` URLs are refused up front).
"""

from __future__ import annotations

import http.client
import os
import socket
import struct

from pyagent.bounded_http.core import TransportError

__all__ = ["MAX_PATH_BYTES", "SUPPORTED", "UnixHTTPConnection", "trusted_uids"]

MAX_PATH_BYTES = 107
"""The longest socket path Linux takes (``sun_path`` is 108 bytes with its terminating NUL)."""

SUPPORTED = hasattr(socket, "AF_UNIX") and hasattr(socket, "SO_PEERCRED")
"""Whether this system can tell who listens on a socket (Linux)."""

_PEERCRED = struct.Struct("iII")  # struct ucred: pid_t pid, uid_t uid, gid_t gid


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
        if not SUPPORTED:
            raise TransportError(self._origin, "this system cannot tell who listens on a socket", "untrusted")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
            _, uid, _ = _PEERCRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
            )
            if uid not in trusted_uids():
                raise TransportError(
                    self._origin,
                    f"the process that listens on the socket runs as uid {uid}, neither this user "
                    f"(uid {os.geteuid()}) nor root: not asked",
                    "untrusted",
                )
        except BaseException:
            sock.close()
            raise
        self.sock = sock
