"""Sessions and login links against a real gateway: removal revokes them, a user made
again revives nothing, a link preview spends nothing, the cookie over https, and the
older scrypt sessions. Fixtures and helpers: ``test_gateway_security``.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
from typing import Any

import orjson
import pytest
from gridwatch.ws import users
from gridwatch.ws.auth import SESSION_N, User, issue

from gridwatch import keys
from gridwatch import settings as settings_mod
from tests.integration import test_gateway_security as security
from tests.integration.test_gateway import redeem, session_for

get = security.get
start_gw = security.start_gw  # the fixture, shared

pytestmark = pytest.mark.integration


def test_removal_revokes_sessions_and_links_and_a_new_user_of_that_name_gets_none(
        start_gw: Any) -> None:
    start, r = start_gw
    g = start()
    session = session_for(g, r, User("o1", "duty_officer"))
    spare = users.new_login(r, "o1")
    assert r.keys("gw:session:*") and r.keys("gw:login:*")
    assert users.remove_user(r, "o1")
    assert not r.keys("gw:session:*") and not r.keys("gw:login:*")
    assert not r.keys("gw:user-*")
    bearer = {"Authorization": f"Bearer {session}"}
    assert get(f"{g.origin}/api/me", **bearer)[0] == 401
    # The same name again: the old cookie and the old link stay dead, a new link works.
    fresh = users.add_user(r, User("o1", "duty_officer"))
    assert get(f"{g.origin}/api/me", **bearer)[0] == 401
    with pytest.raises(urllib.error.HTTPError) as old_link:
        redeem(g, spare)
    assert old_link.value.code == 401
    with redeem(g, fresh) as reply:
        cookie = reply.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]
    assert get(f"{g.origin}/api/me", Authorization=f"Bearer {cookie}")[0] == 200


def test_a_session_copied_into_a_recreated_user_is_refused(start_gw: Any) -> None:
    """Even a session record that survived removal (a race) dies with the old epoch."""
    start, r = start_gw
    g = start()
    session = session_for(g, r, User("o1", "duty_officer"))
    saved = {k: r.get(k) for k in r.keys("gw:session:*")}
    users.remove_user(r, "o1")
    users.add_user(r, User("o1", "duty_officer"))
    for k, v in saved.items():
        r.set(k, v)
    assert get(f"{g.origin}/api/me", Authorization=f"Bearer {session}")[0] == 401
    # A record that is not one at all is a clean 401, never a crash.
    sid = session.split(".")[0]
    r.set(keys.session(sid), b'{"user": 5}')
    assert get(f"{g.origin}/api/me", Authorization=f"Bearer {sid}.other")[0] == 401
    assert "Traceback" not in g.log.read_text()


def test_a_link_preview_get_spends_nothing_and_the_post_signs_in(start_gw: Any) -> None:
    start, r = start_gw
    g = start()
    token = users.add_user(r, User("o1", "duty_officer"))
    for _ in range(2):  # a chat app's preview, then the person's own click
        status, page, headers = get(f"{g.origin}/login?token={token}")
        assert status == 200 and "Set-Cookie" not in headers
        assert b'method="post"' in page and f'value="{token}"'.encode() in page
    assert r.keys("gw:login:*")  # not spent
    assert get(f"{g.origin}/login?token=forged.secret")[0] == 401
    # A POST from another site is refused and spends nothing either.
    with pytest.raises(urllib.error.HTTPError) as foreign:
        redeem(g, token, Origin="http://evil.example")
    assert foreign.value.code == 403
    with redeem(g, token) as reply:
        assert reply.status == 200 and "gw_session=" in reply.headers["Set-Cookie"]
    assert not r.keys("gw:login:*")
    assert get(f"{g.origin}/login?token={token}")[0] == 401  # the page says it is used
    with pytest.raises(urllib.error.HTTPError) as again:
        redeem(g, token)
    assert again.value.code == 401


def test_an_https_public_url_gives_a_secure_host_cookie_and_https_links(
        start_gw: Any, stack_settings: settings_mod.Settings) -> None:
    start, r = start_gw
    public = "https://cockpit.example.org"
    g = start(GRIDWATCH_PUBLIC_URL=public)
    token = users.add_user(r, User("o1", "duty_officer"))
    with redeem(g, token, Origin=public) as reply:
        cookie = reply.headers["Set-Cookie"]
    parts = [p.strip() for p in cookie.split(";")]
    assert parts[0].startswith("__Host-gw_session=")
    assert "Secure" in parts and "Path=/" in parts and "HttpOnly" in parts
    assert not any(p.lower().startswith("domain") for p in parts)
    value = parts[0].split("=", 1)[1]
    assert get(f"{g.origin}/api/me", Cookie=f"__Host-gw_session={value}")[0] == 200
    assert get(f"{g.origin}/api/me", Cookie=f"gw_session={value}")[0] == 401
    env = {**g.env, "GRIDWATCH_PUBLIC_URL": public}
    done = subprocess.run([sys.executable, "-m", "gridwatch.cli", "user", "link", "o1"],
                          env=env, capture_output=True, timeout=60, check=True)
    assert done.stdout.decode().startswith(f"{public}/login?token=")


def test_an_older_scrypt_session_still_works_until_its_user_is_made_again(
        start_gw: Any) -> None:
    """Sessions issued before the keyed hash (salted scrypt, no epoch) keep working for a
    user record of that time; once the user is made again they get a clean 401."""
    start, r = start_gw
    g = start()
    r.set(keys.user("old"), orjson.dumps(User("old", "duty_officer").to_dict()))
    r.sadd(keys.USERS, "old")
    cred = issue("old", now=time.time(), ttl_s=3600, n=SESSION_N)
    r.set(keys.session(cred.record_id), orjson.dumps(cred.record), ex=3600)
    bearer = {"Authorization": f"Bearer {cred.token}"}
    status, body, _ = get(f"{g.origin}/api/me", **bearer)
    assert status == 200 and orjson.loads(body)["user"]["name"] == "old"
    wrong = {"Authorization": f"Bearer {cred.record_id}.not-the-secret"}
    assert get(f"{g.origin}/api/me", **wrong)[0] == 401
    users.remove_user(r, "old")
    users.add_user(r, User("old", "duty_officer"))
    # An older-format session (no epoch) the gateway has not seen: the new user has one.
    later = issue("old", now=time.time(), ttl_s=3600, n=SESSION_N)
    r.set(keys.session(later.record_id), orjson.dumps(later.record), ex=3600)
    assert get(f"{g.origin}/api/me", Authorization=f"Bearer {later.token}")[0] == 401
    assert "Traceback" not in g.log.read_text()
