"""What installing the cockpit fetches, against the real gateway: the manifest, the
service worker and the icons, public (a manifest is fetched without cookies), with their
content types and the same security headers as every other reply; the API stays closed."""

from __future__ import annotations

import urllib.error
import urllib.request

import orjson
import pytest
import redis

from .test_gateway import GatewayProcess, gw  # noqa: F401 - gw is a fixture

pytestmark = pytest.mark.integration

SHELL = {
    "/manifest.webmanifest": "application/manifest+json",
    "/sw.js": "text/javascript; charset=utf-8",
    "/icon-192.png": "image/png",
    "/icon-512.png": "image/png",
}


def test_manifest_worker_and_icons_are_served_with_the_security_headers(
        gw: tuple[GatewayProcess, redis.Redis]) -> None:  # noqa: F811
    g, _ = gw
    for path, ctype in SHELL.items():
        with urllib.request.urlopen(f"{g.origin}{path}", timeout=5) as reply:
            body = reply.read()
            h = reply.headers
        assert h["Content-Type"] == ctype, path
        assert "default-src 'self'" in h["Content-Security-Policy"], path
        assert h["X-Content-Type-Options"] == "nosniff" and h["X-Frame-Options"] == "DENY"
        assert h["Referrer-Policy"] == "no-referrer"
        assert h["Cache-Control"] == "no-cache", path  # a new release is seen at once
        assert body, path
    manifest = orjson.loads(urllib.request.urlopen(f"{g.origin}/manifest.webmanifest").read())
    assert {i["src"] for i in manifest["icons"]} >= {"/icon-192.png", "/icon-512.png"}
    # The worker never answers for the API, the login or the socket.
    sw = urllib.request.urlopen(f"{g.origin}/sw.js").read().decode()
    shell = sw[sw.index("const SHELL = ["):sw.index("];")]
    assert "/api" not in shell and "/login" not in shell and "/ws" not in shell
    with pytest.raises(urllib.error.HTTPError) as closed:
        urllib.request.urlopen(f"{g.origin}/api/me", timeout=5)
    assert closed.value.code == 401
