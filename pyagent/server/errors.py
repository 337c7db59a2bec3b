"""HTTP errors of the server: a status and a one-line reason, answered as OPA answers errors
(``{"code": ..., "message": ...}``)."""

from __future__ import annotations


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(message: str) -> HttpError:
    return HttpError(400, "invalid_parameter", message)


def too_large(message: str) -> HttpError:
    return HttpError(413, "request_too_large", message)
