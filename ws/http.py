"""The plain HTTP side of the gateway's one port: static cockpit files and small routes.

The websockets library hands every non-WebSocket GET to ``process_request``; these
functions build the responses. Files are read once at start; only the sign-in screen
and what it needs are public, everything else needs a session.
"""

from __future__ import annotations

import html
import mimetypes
from http import HTTPStatus
from pathlib import Path
from typing import Any

import orjson
from websockets.datastructures import Headers
from websockets.http11 import Response

STATIC_DIR = Path(__file__).resolve().parent / "static"
PUBLIC = frozenset({"/signin.html", "/i18n.js", "/signin.js", "/style.css", "/favicon.svg",
                    # What installing the app fetches: a manifest is fetched without
                    # cookies, and a service worker's update check must not need a session.
                    "/manifest.webmanifest", "/sw.js", "/icon-192.png", "/icon-512.png"})
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".geojson": "application/geo+json",
    ".png": "image/png",
    ".webmanifest": "application/manifest+json",
}
# Nothing may come from elsewhere: scripts, styles, fonts, images and sockets are all
# same-origin. ECharts sets inline styles on its tooltip, hence 'unsafe-inline' for style.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'self'")
# The pages built here name their icon: without it a browser asks for /favicon.ico, a
# 404 (401 before sign-in) in the console of every login.
HEAD_LINKS = '<link rel="icon" href="/favicon.svg"><link rel="stylesheet" href="/style.css">'


def load_static(root: Path = STATIC_DIR) -> dict[str, tuple[bytes, str]]:
    """Every file under ``root`` by URL path, with its content type."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            url = "/" + path.relative_to(root).as_posix()
            ctype = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or \
                "application/octet-stream"
            files[url] = (path.read_bytes(), ctype)
    return files


def response(status: int, body: bytes, ctype: str, *, extra: list[tuple[str, str]] | None = None,
             cache: str = "no-cache") -> Response:
    """A complete HTTP response with the cockpit's security headers."""
    headers = Headers([
        ("Content-Type", ctype),
        ("Content-Length", str(len(body))),
        ("Cache-Control", cache),
        ("Content-Security-Policy", CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        # The login link carries a secret in its query: never leak it as a Referer.
        ("Referrer-Policy", "no-referrer"),
        ("Connection", "close"),
    ])
    for name, value in extra or ():
        headers[name] = value
    return Response(status, HTTPStatus(status).phrase, headers, body)


def json_response(status: int, obj: Any, *, extra: list[tuple[str, str]] | None = None) -> Response:
    return response(status, orjson.dumps(obj), "application/json", extra=extra,
                    cache="no-store")


def redirect(location: str, *, extra: list[tuple[str, str]] | None = None) -> Response:
    return response(302, b"", "text/plain", extra=[("Location", location), *(extra or [])])


def static_response(files: dict[str, tuple[bytes, str]], path: str) -> Response:
    """A static file, or 404."""
    hit = files.get(path)
    if hit is None:
        return response(404, b"not found\n", "text/plain; charset=utf-8")
    body, ctype = hit
    cache = "public, max-age=86400" if path.startswith("/vendor/") else "no-cache"
    return response(200, body, ctype, cache=cache)


def message_page(status: int, title_zh: str, title_en: str, *, refresh_to: str | None = None,
                 extra: list[tuple[str, str]] | None = None) -> Response:
    """A tiny bilingual page (login outcome); ``refresh_to`` moves on by itself.

    The move to the cockpit is a same-site navigation started by this page, so the
    SameSite=Strict cookie set here is sent with it even when the link was opened from
    another site (a redirect would keep the cross-site context and drop the cookie).
    """
    meta = f'<meta http-equiv="refresh" content="0;url={refresh_to}">' if refresh_to else ""
    body = (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">{meta}'
            f'{HEAD_LINKS}<title>{title_en}</title></head>'
            f'<body class="message"><h1>{title_zh}</h1><p>{title_en}</p>'
            f'<p><a href="/">/</a></p></body></html>').encode()
    return response(status, body, "text/html; charset=utf-8", extra=extra, cache="no-store")


def confirm_page(token: str) -> Response:
    """The page a login link opens: one button whose form POSTs the token back.

    Opening the link spends nothing (a chat app's link preview fetches it too); only the
    POST, same-origin, with the token in its body, signs in.
    """
    body = (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'{HEAD_LINKS}<title>Sign in</title></head>'
            f'<body class="message"><h1>登录网格数字驾驶舱</h1><p>Sign in to the cockpit</p>'
            f'<form method="post" action="/login">'
            f'<input type="hidden" name="token" value="{html.escape(token, quote=True)}">'
            f'<button id="confirm" type="submit">登录 · Sign in</button></form>'
            f'</body></html>').encode()
    # The form's POST must carry this page's Origin (no-referrer would make it "null"),
    # while no Referer ever carries the token: strict-origin sends the origin alone.
    return response(200, body, "text/html; charset=utf-8", cache="no-store",
                    extra=[("Referrer-Policy", "strict-origin")])
