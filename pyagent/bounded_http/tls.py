"""TLS contexts for the services pyagent asks: the system's CAs, or only those of a configured file."""

from __future__ import annotations

import os
import ssl

from pyagent.errors import InvalidInputError


def tls_context(
    cafile: str | os.PathLike[str] | None, *, what: str, system_too: bool = False
) -> ssl.SSLContext:
    """A verifying client context: the CAs in ``cafile`` (PEM) when one is given, else the system's
    (never ``REQUESTS_CA_BUNDLE`` and friends); ``system_too``: the system's and the file's (OPA's
    ``tls.system_ca_required``). A file that holds no certificate, or cannot be read, is an
    :class:`InvalidInputError` naming ``what`` (the option or key that gave it)."""
    try:
        context = ssl.create_default_context(cafile=os.fspath(cafile) if cafile else None)
        if cafile and system_too:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        return context
    except ssl.SSLError as err:
        raise InvalidInputError(
            f"{what} {os.fspath(cafile or '')}: no PEM CA certificate in it ({err.reason or err})"
        ) from None
    except OSError as err:
        raise InvalidInputError(
            f"{what} {os.fspath(cafile or '')}: cannot read: {err.strerror or err}"
        ) from None
