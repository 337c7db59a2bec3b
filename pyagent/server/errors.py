"""HTTP errors of the server: a status and a one-line reason, answered as OPA answers errors
(``{"code": ..., "message": ...}``)."""

from __future__ import annotations


class HttpError(Exception):
    """``close``: answered before the whole body was read, so the connection is closed after the
    answer and the rest of the body (slow, huge or garbled) is never read as a next request."""

    def __init__(self, status: int, code: str, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.close = close


def bad_request(message: str) -> HttpError:
    return HttpError(400, "invalid_parameter", message)


def too_large(message: str) -> HttpError:
    return HttpError(413, "request_too_large", message, close=True)
