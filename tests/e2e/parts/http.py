"""Plain HTTP for the end-to-end loop: loopback calls that never go through a proxy, and publishing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.e2e.parts.names import BUNDLE

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


def call(
    url: str,
    *,
    token: str | None = None,
    method: str = "GET",
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5,
) -> tuple[int, Any]:
    """(status, decoded JSON body, else text, else None); status 0 when nothing answered."""
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, _decode(response.read())
    except urllib.error.HTTPError as err:
        return err.code, _decode(err.read())
    except (urllib.error.URLError, OSError):
        return 0, None


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def put_bundles(server_url: str, admin: str, *archives: Path) -> tuple[int, Any]:
    """``PUT /api/v1/bundles/pyagent`` with ``archives`` as multipart files, as an admin publishes."""
    boundary = f"pyagent-e2e-{uuid.uuid4().hex}"
    chunks: list[bytes] = []
    for index, path in enumerate(archives):
        chunks += [
            f"--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="bundle{index}"; filename="{path.name}"\r\n'.encode(),
            b"Content-Type: application/gzip\r\n\r\n",
            path.read_bytes(),
            b"\r\n",
        ]
    chunks.append(f"--{boundary}--\r\n".encode())
    return call(
        f"{server_url}/api/v1/bundles/{BUNDLE}",
        token=admin,
        method="PUT",
        data=b"".join(chunks),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=30,
    )
