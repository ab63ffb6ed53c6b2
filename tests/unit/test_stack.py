"""The local stack's pure parts (starting it is covered by every integration test)."""

from __future__ import annotations

import base64
import uuid

import pytest

from gridwatch import stack, stack_kafka


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """One UUID in 64 encodes to an id starting with "-", which the storage tool took for
    an option, so a fresh stack failed to format now and then."""
    dash = uuid.UUID(bytes=b"\xf8" + bytes(15))  # encodes to "-AAAA..."
    assert base64.urlsafe_b64encode(dash.bytes).decode().startswith("-")
    draws = iter([dash, dash, uuid.UUID(int=1)])
    monkeypatch.setattr(stack_kafka.uuid, "uuid4", lambda: next(draws))
    cluster = stack.cluster_id()
    assert cluster == base64.urlsafe_b64encode(uuid.UUID(int=1).bytes).decode().rstrip("=")
    assert len(cluster) == 22 and not cluster.startswith("-")
