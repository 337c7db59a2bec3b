"""The dashboard's frame: one stylesheet served from ``/static/dashboard.css`` (the fleet report's,
plus a few rules), a strict Content-Security-Policy (nothing inline, no script at all), navigation,
and the logout form with its CSRF token."""

from __future__ import annotations

import hashlib
from urllib.parse import quote, urlencode

from pyagent import __version__
from pyagent.fleet.html_assets import CSS as REPORT_CSS
from pyagent.fleet.html_assets import esc

CSS = (
    REPORT_CSS
    + """
nav.top{display:flex;gap:18px;align-items:center;margin:0 0 18px;flex-wrap:wrap}
nav.top a{color:var(--accent);text-decoration:none;font-weight:600}
nav.top a.here{color:var(--ink);border-bottom:2px solid var(--accent)}
nav.top form{margin-left:auto}
form.filters{display:flex;flex-wrap:wrap;gap:10px;align-items:end;margin:0 0 16px}
form.filters label{display:flex;flex-direction:column;font-size:13px;color:var(--muted)}
form.filters input,form.filters select{font:inherit;padding:4px 6px}
button{font:inherit;padding:5px 12px;cursor:pointer}
.pager{display:flex;gap:16px;margin:12px 0}
.login{max-width:420px;margin:80px auto;background:var(--card);padding:24px;border-radius:10px;
border:1px solid var(--line)}
.login input{width:100%;font:inherit;padding:6px;margin:8px 0 14px}
.error{color:var(--bad);font-weight:600}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;overflow-wrap:anywhere}
td,th,h1,h3,p{overflow-wrap:anywhere}
"""
)
CSS_ETAG = '"' + hashlib.sha256(CSS.encode()).hexdigest()[:32] + '"'
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # keeps Origin on our own form posts (CSRF check)
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
PAGES = (("/", "Overview"), ("/devices", "Devices"))


def link(path: str, **params: object) -> str:
    """A local link with its query, escaped for an attribute."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return esc(f"{path}?{query}" if query else path)


def device_link(device_id: str) -> str:
    """The device page's address: the id percent-encoded (slashes too), escaped for an attribute; for
    ``.`` and ``..``, which a browser collapses as dot segments (``%2E`` too) before asking, as a query
    (``/device?id=..``: it led to the overview, or to a 404)."""
    if device_id in (".", ".."):
        return link("/device", id=device_id)
    return esc("/devices/" + quote(device_id, safe=""))


def page(title: str, body: str, *, here: str, csrf: str | None) -> str:
    current = ' class="here"'
    nav = "".join(f'<a href="{path}"{current if path == here else ""}>{label}</a>' for path, label in PAGES)
    logout = (
        '<form method="post" action="/logout"><input type="hidden" name="csrf" '
        f'value="{esc(csrf)}"><button type="submit" id="logout">Log out</button></form>'
        if csrf is not None
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="pyagent {esc(__version__)}">'
        f'<title>{esc(title)} · pyagent</title><link rel="stylesheet" href="/static/dashboard.css"></head>\n'
        f'<body><main><nav class="top" aria-label="Pages">{nav}{logout}</nav>\n'
        f"{body}\n</main></body></html>\n"
    )


def login_page(message: str = "", next_path: str = "/") -> str:
    error = f'<p class="error" role="alert">{esc(message)}</p>' if message else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Log in · pyagent</title>'
        '<link rel="stylesheet" href="/static/dashboard.css"></head><body><main><section class="login">'
        f'<h1>pyagent fleet</h1>{error}<form method="post" action="/login">'
        f'<input type="hidden" name="next" value="{esc(next_path)}">'
        '<label for="token">Reader token</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" required>'
        '<button type="submit" id="login">Log in</button></form>'
        '<p class="note">The token is sent once; the browser then keeps a session cookie.</p>'
        "</section></main></body></html>\n"
    )


def error_page(status: int, message: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<title>{status} · pyagent</title><link rel="stylesheet" href="/static/dashboard.css"></head>'
        f'<body><main><nav class="top"><a href="/">Overview</a><a href="/devices">Devices</a></nav>'
        f'<h1>{status}</h1><p class="error" role="alert">{esc(message)}</p></main></body></html>\n'
    )
