"""The shipped nginx configuration (deploy/nginx/pyagent.conf) passes the replicas what the tests'
nginx (tests/helpers/nginx.py, with which every replica test runs) passes them: without
X-Forwarded-Proto a dashboard login behind TLS was refused as a cross-origin post."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import nginx

REPO = Path(__file__).resolve().parents[2]


def _headers(text: str) -> dict[str, str]:
    return dict(re.findall(r"proxy_set_header\s+(\S+)\s+([^;]+);", text))


def test_the_shipped_config_sets_every_header_the_tested_one_sets() -> None:
    shipped = _headers((REPO / "deploy" / "nginx" / "pyagent.conf").read_text(encoding="utf-8"))
    assert shipped == _headers(nginx._PROXY)
    assert shipped["X-Forwarded-Proto"] == "$scheme"
