"""The store records on their own: validation at construction, statuses, reprs."""

from __future__ import annotations

import pytest

from dingpush.relay.stores import Claim, MemoryStore, NewMessage, OutboxMessage, Status
from dingpush.relay.stores._base import decode_cursor, encode_cursor


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"target": ""}, "target must be a non-empty string"),
        ({"kind": None}, "kind must be a non-empty string"),
        ({"payload": {"msgtype": "text"}}, "JSON text"),
        ({"idempotency_key": ""}, "idempotency_key"),
    ],
)
def test_new_messages_are_checked(fields: dict[str, object], match: str) -> None:
    arguments: dict[str, object] = {"target": "ops", "kind": "text", "payload": "{}", **fields}
    with pytest.raises(ValueError, match=match):
        NewMessage(**arguments)  # type: ignore[arg-type]


def test_final_statuses() -> None:
    assert {s for s in Status if s.is_final} == {Status.DELIVERED, Status.DIGESTED, Status.FAILED}
    assert Status("queued") is Status.QUEUED and f"{Status.SENDING}" == "sending"


def test_reprs_show_no_lease_token() -> None:
    message = OutboxMessage(
        id="m-1",
        target="ops",
        kind="text",
        payload="{}",
        status=Status.SENDING,
        created_at=0.0,
        updated_at=0.0,
        due_at=0.0,
    )
    claim = Claim(message, "secret-lease-token", 30.0)
    assert repr(claim) == "Claim(id='m-1', target='ops')"
    assert repr(MemoryStore()) == "MemoryStore(<0 messages>)"


@pytest.mark.parametrize("cursor", ["", "bm9wZQ", "c2VxOng", "!!!"])
def test_cursors_not_made_by_the_store_are_refused(cursor: str) -> None:
    assert decode_cursor(encode_cursor(42)) == 42
    with pytest.raises(ValueError, match="next_cursor"):
        decode_cursor(cursor)
