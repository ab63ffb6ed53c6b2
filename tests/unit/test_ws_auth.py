"""ws/auth.py: users, salted hashes, one-time credentials, expiry, cookies, Origin, rate limit."""

from __future__ import annotations

import pytest
from gridwatch.ws.auth import (
    AuthError,
    TokenBucket,
    User,
    clear_cookie,
    cookie_name,
    hash_secret,
    is_legacy,
    issue,
    keyed_hash,
    origin_allowed,
    parse_cookies,
    session_cookie,
    split_token,
    verify,
)

N = 2**10  # cheap scrypt for tests


def test_user_rules() -> None:
    assert User("w1", "grid_worker", grids=("G1",)).to_dict()["grids"] == ["G1"]
    with pytest.raises(ValueError, match="grids"):
        User("w1", "grid_worker")
    with pytest.raises(ValueError, match="stations"):
        User("m1", "station_manager")
    with pytest.raises(ValueError, match="role"):
        User("x", "root")
    with pytest.raises(ValueError, match="name"):
        User("a.b", "admin")
    u = User("m1", "station_manager", stations=("SHS",))
    assert User.from_dict(u.to_dict()) == u


def test_hash_is_salted() -> None:
    a = hash_secret("s", b"salt-1__________", n=N)
    assert a == hash_secret("s", b"salt-1__________", n=N)
    assert a != hash_secret("s", b"salt-2__________", n=N)
    assert len(a) == 32


KEY = b"k" * 32


def test_keyed_credentials_verify_with_the_key_only() -> None:
    cred = issue("o1", now=100.0, ttl_s=60, key=KEY, epoch="e1")
    _, secret = split_token(cred.token)
    assert not is_legacy(cred.record) and cred.record["epoch"] == "e1"
    assert secret not in str(cred.record)
    assert cred.record["hash"] == keyed_hash(secret, KEY).hex()
    assert verify(cred.record, secret, now=120.0, key=KEY) == "o1"
    with pytest.raises(AuthError, match="match"):
        verify(cred.record, secret, now=120.0, key=b"another key_____________________")
    with pytest.raises(AuthError, match="match"):
        verify(cred.record, secret[:-1] + "x", now=120.0, key=KEY)
    with pytest.raises(AuthError, match="key"):
        verify(cred.record, secret, now=120.0)
    with pytest.raises(AuthError, match="expired"):
        verify(cred.record, secret, now=160.0, key=KEY)


@pytest.mark.parametrize("record", [
    {}, {"expires": "soon"}, {"expires": 1e12, "alg": "hmac-sha256"},
    {"expires": 1e12, "alg": "hmac-sha256", "hash": "not hex", "user": "o1"},
    {"expires": 1e12, "salt": "zz", "hash": "00", "n": 1024, "user": "o1"},
    {"expires": None},
])
def test_a_malformed_record_is_a_refusal_not_a_crash(record: dict[str, object]) -> None:
    with pytest.raises(AuthError):
        verify(record, "secret", now=0.0, key=KEY)


def test_issue_and_verify() -> None:
    cred = issue("o1", now=100.0, ttl_s=60, n=N)
    assert is_legacy(cred.record)  # the older scrypt format still verifies
    record_id, secret = split_token(cred.token)
    assert record_id == cred.record_id
    assert secret not in str(cred.record)  # only the hash is stored
    assert verify(cred.record, secret, now=120.0) == "o1"
    with pytest.raises(AuthError, match="match"):
        verify(cred.record, secret + "x", now=120.0)
    with pytest.raises(AuthError, match="expired"):
        verify(cred.record, secret, now=160.0)
    with pytest.raises(AuthError, match="unknown"):
        verify(None, secret, now=120.0)


def test_tokens_are_unique_and_malformed_ones_refused() -> None:
    tokens = {issue("o1", now=0, ttl_s=1, n=N).token for _ in range(20)}
    assert len(tokens) == 20
    for bad in (None, "", "nodot", "a.b.c", ".x", "x."):
        with pytest.raises(AuthError):
            split_token(bad)


def test_cookies() -> None:
    assert parse_cookies("a=1; gw_session=x.y; b=2")["gw_session"] == "x.y"
    cookie = session_cookie("x.y", max_age_s=10)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=10" in cookie
    assert cookie.startswith("gw_session=x.y;") and "Secure" not in cookie
    secure = [p.strip() for p in session_cookie("x.y", max_age_s=10, secure=True).split(";")]
    assert secure[0] == "__Host-gw_session=x.y" == f"{cookie_name(True)}=x.y"
    assert "Secure" in secure and "Path=/" in secure
    assert not any(p.lower().startswith("domain") for p in secure)
    gone = clear_cookie(secure=True)
    assert gone.startswith("__Host-gw_session=;") and "Max-Age=0" in gone and "Secure" in gone


def test_origin() -> None:
    allowed = ("http://127.0.0.1:8765",)
    assert origin_allowed("http://127.0.0.1:8765", allowed)
    assert origin_allowed(None, allowed)  # non-browser client; still needs a credential
    assert not origin_allowed("http://evil.example", allowed)


def test_rate_limit_bucket() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert sum(bucket.take(0.0) for _ in range(30)) == 20
    assert not bucket.take(0.05)
    assert bucket.take(0.1)  # refilled one token after 0.1 s
    assert sum(bucket.take(10.0) for _ in range(30)) == 20  # never more than the burst
