"""Signed commands: sign and verify, key rotation, tampering, missing or unknown
signatures, where the keys come from, and that no secret is ever shown."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from gridwatch.agents.commands import decode_command
from gridwatch.schemas.errors import ConfigError, DecodeError
from gridwatch.ws.auth import User
from gridwatch.ws.commands import command_record
from hypothesis import assume, given
from hypothesis import strategies as st

from gridwatch import command_keys
from gridwatch import settings as settings_mod
from gridwatch.signing import Keyring, canonical, sign, verify, verify_raw

OLD = "k2025:" + "o" * 40
NEW = "k2026:" + "n" * 40
COMMAND = {"v": 1, "command_id": "8c1f6a0e-6f0a-4c53-9a51-0c6a2f7d1e11", "target": "alert",
           "id": "a-1", "action": "ack", "actor": "wang", "role": "duty_officer",
           "grids": [], "note": "", "ts": "2024-03-04T09:00:00.000+00:00"}


def test_a_signed_command_verifies_and_names_its_key() -> None:
    ring = Keyring.parse(NEW)
    signed = sign(COMMAND, ring)
    assert signed["sig"]["kid"] == "k2026" and len(signed["sig"]["mac"]) == 64
    assert verify(signed, ring) == "k2026"
    assert verify_raw(orjson.dumps(signed), ring) == "k2026"
    assert {k: v for k, v in signed.items() if k != "sig"} == COMMAND  # nothing else changed


def test_the_signature_does_not_depend_on_key_order() -> None:
    ring = Keyring.parse(NEW)
    reordered = dict(reversed(list(COMMAND.items())))
    assert sign(reordered, ring)["sig"] == sign(COMMAND, ring)["sig"]
    assert canonical(reordered) == canonical(COMMAND)


def test_rotation_the_first_key_signs_every_listed_key_verifies() -> None:
    before, during, after = Keyring.parse(OLD), Keyring.parse(f"{NEW},{OLD}"), Keyring.parse(NEW)
    old_signed = sign(COMMAND, before)
    new_signed = sign(COMMAND, during)
    assert new_signed["sig"]["kid"] == "k2026"
    assert verify(old_signed, during) == "k2025"  # still in flight while keys roll over
    assert verify(new_signed, during) == "k2026"
    assert verify(new_signed, after) == "k2026"
    with pytest.raises(DecodeError, match="unknown key id 'k2025'"):
        verify(old_signed, after)  # the retired key no longer acts
    with pytest.raises(DecodeError, match="unknown key id 'k2026'"):
        verify(new_signed, before)


@pytest.mark.parametrize(("field", "value"), [
    ("actor", "admin-demo"), ("role", "admin"), ("grids", ["G0001"]), ("id", "a-2"),
    ("action", "dismiss"), ("note", "x"), ("ts", "2030-01-01T00:00:00.000+00:00"),
    ("target", "task"), ("extra", 1),
])
def test_a_tampered_field_is_refused(field: str, value: Any) -> None:
    ring = Keyring.parse(NEW)
    tampered = {**sign(COMMAND, ring), field: value}
    with pytest.raises(DecodeError, match="does not match") as info:
        verify_raw(orjson.dumps(tampered), ring)
    assert info.value.field == "sig"


def test_a_removed_field_is_refused() -> None:
    ring = Keyring.parse(NEW)
    signed = sign(COMMAND, ring)
    del signed["note"]
    with pytest.raises(DecodeError, match="does not match"):
        verify(signed, ring)


def test_the_same_key_id_with_another_secret_does_not_verify() -> None:
    forged = sign(COMMAND, Keyring.parse("k2026:" + "x" * 40))
    with pytest.raises(DecodeError, match="does not match"):
        verify(forged, Keyring.parse(NEW))


@pytest.mark.parametrize(("sig", "says"), [
    (None, "missing"), ("k2026:abc", "must be an object"), ({"kid": "k2026"}, "must be an object"),
    ({"kid": 1, "mac": "00"}, "must be an object"), ({"kid": "nobody", "mac": "00"}, "unknown key id"),
])
def test_a_missing_or_malformed_signature_is_refused(sig: Any, says: str) -> None:
    record = dict(COMMAND) if sig is None else {**COMMAND, "sig": sig}
    with pytest.raises(DecodeError, match=says) as info:
        verify_raw(orjson.dumps(record), Keyring.parse(NEW))
    assert info.value.field == "sig"


@pytest.mark.parametrize("raw", [None, b"", b"{nope", b"[1, 2]", b'"text"'])
def test_a_record_that_is_not_a_json_object_is_refused(raw: bytes | None) -> None:
    with pytest.raises(DecodeError):
        verify_raw(raw, Keyring.parse(NEW))


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53)
                    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@given(record=st.dictionaries(st.text(max_size=12).filter(lambda k: k != "sig"), JSON,
                              max_size=8),
       name=st.text(max_size=12).filter(lambda k: k != "sig"), value=JSON)
def test_any_record_survives_the_log_and_any_change_is_caught(
        record: dict[str, Any], name: str, value: Any) -> None:
    ring = Keyring.parse(NEW)
    wire = orjson.dumps(sign(record, ring))  # as produced to Kafka, keys unsorted
    assert verify_raw(wire, ring) == "k2026"
    changed = {**orjson.loads(wire), name: value}
    assume(canonical(changed) != canonical(record))  # not the same value written back
    with pytest.raises(DecodeError, match="does not match"):
        verify(changed, ring)


def test_the_gateway_record_is_signed_and_still_decodes() -> None:
    ring = Keyring.parse(NEW)
    cmd = {"target": "task", "id": "t-1", "action": "accept", "note": "",
           "command_id": COMMAND["command_id"]}
    rec = command_record(User("w0001", "grid_worker", grids=("G0001",)), cmd, now=0.0,
                         keyring=ring)
    assert verify(rec, ring) == "k2026"
    decoded = decode_command(orjson.dumps(rec))
    assert (decoded.actor, decoded.role, decoded.grids) == ("w0001", "grid_worker", ("G0001",))


# ---- keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "says"), [
    ("", "no key"), ("justasecret", "not key_id:secret"), ("k1:tiny-secret", "shorter than"),
    ("bad id:" + "s" * 20, "not key_id:secret"), (f"{NEW},{NEW}", "appears twice"),
])
def test_malformed_keys_are_a_config_error_that_shows_no_secret(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as info:
        Keyring.parse(text)
    for secret in ("n" * 40, "justasecret", "tiny-secret", "s" * 20):
        assert secret not in str(info.value)


def test_a_keyring_and_the_settings_never_show_the_secrets() -> None:
    ring = Keyring.parse(f"{NEW},{OLD}")
    assert "n" * 20 not in repr(ring) and ring.ids == ["k2026", "k2025"]
    s = settings_mod.load({"GRIDWATCH_COMMAND_KEYS": NEW})
    assert "n" * 20 not in repr(s) and "n" * 20 not in str(s.public())
    with pytest.raises(ConfigError) as info:
        settings_mod.load({"GRIDWATCH_COMMAND_KEYS": "k1:tooshort"})
    assert "tooshort" not in str(info.value)


def test_keys_from_the_variable_or_from_a_file(tmp_path: Path) -> None:
    s = settings_mod.load({"GRIDWATCH_COMMAND_KEYS": f"{NEW},{OLD}", "GRIDWATCH_HOME": str(tmp_path)})
    assert command_keys.keyring(s).ids == ["k2026", "k2025"]
    key_file = tmp_path / "keys"
    key_file.write_text(f"# rotated 2026-01-01\n{NEW}\n{OLD}  # retire in March\n")
    s = settings_mod.load({"GRIDWATCH_COMMAND_KEY_FILE": str(key_file)})
    assert command_keys.keyring(s).ids == ["k2026", "k2025"]
    with pytest.raises(ConfigError, match="not both"):
        command_keys.keyring(s.with_(command_keys=NEW))
    with pytest.raises(ConfigError, match="cannot read the command key file"):
        command_keys.keyring(s.with_(command_key_file=tmp_path / "absent"))
    assert not (tmp_path / command_keys.LOCAL_FILE).exists()  # none made when configured


def test_the_local_stack_key_is_made_once_private_and_shared(tmp_path: Path) -> None:
    home = tmp_path / "home"
    s = settings_mod.load({"GRIDWATCH_HOME": str(home)})
    first = command_keys.keyring(s)
    path = home / command_keys.LOCAL_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert first.ids[0].startswith("local-")
    again = command_keys.keyring(settings_mod.load({"GRIDWATCH_HOME": str(home)}))
    assert again == first  # another process of the same stack verifies what this one signs
    assert verify(sign(COMMAND, first), again) == first.ids[0]
    other = command_keys.keyring(settings_mod.load({"GRIDWATCH_HOME": str(tmp_path / "other")}))
    with pytest.raises(DecodeError):
        verify(sign(COMMAND, other), first)
    assert [p.name for p in home.iterdir()] == [command_keys.LOCAL_FILE]  # no temp file left
