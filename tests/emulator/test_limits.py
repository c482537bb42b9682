"""§1.5 limits: the per-robot rate with its lock-out, the 20,000-byte body, msgUuid de-dup."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dingpush.emulator import Emulator, EmulatorOptions, RobotConfig
from dingpush.testing import FakeClock

from ._support import Send, text

pytestmark = pytest.mark.anyio


async def errcodes(send: Send, n: int, **kwargs: Any) -> list[int]:
    return [(await send(text(), **kwargs)).json()["errcode"] for _ in range(n)]


@pytest.fixture
def small_rate(emulator: Emulator) -> Emulator:
    emulator.update_robot("ops", rate_limit=3, rate_window=1.0, lockout=5.0)
    return emulator


async def test_default_rate_is_20_per_minute_with_130101(send: Send, emulator: Emulator) -> None:
    assert await errcodes(send, 21) == [0] * 20 + [130101]
    reply = (await send(text())).json()
    assert reply == {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}


async def test_throttle_locks_the_robot_until_the_lockout_ends(
    send: Send, small_rate: Emulator, clock: FakeClock
) -> None:
    assert await errcodes(send, 4) == [0, 0, 0, 130101]
    lock_start = clock.time()
    clock.advance(2.0)  # the window has passed, the lock-out has not
    assert await errcodes(send, 1) == [130101]
    assert small_rate.stats().robots["ops"].locked_until == lock_start + 5.0
    clock.advance(3.0)
    assert await errcodes(send, 4) == [0, 0, 0, 130101]
    reasons = [r.reason for r in small_rate.requests()]
    assert reasons == ["accepted"] * 3 + ["throttled", "locked"] + ["accepted"] * 3 + ["throttled"]
    assert len(small_rate.messages()) == 6


async def test_only_accepted_messages_fill_the_window(
    send: Send, small_rate: Emulator, clock: FakeClock
) -> None:
    small_rate.update_robot("ops", keywords=("ALERT",))
    for _ in range(5):
        await send(text("quiet"))
    assert [(await send(text("ALERT"))).json()["errcode"] for _ in range(3)] == [0, 0, 0]


async def test_sliding_window(send: Send, small_rate: Emulator, clock: FakeClock) -> None:
    small_rate.update_robot("ops", lockout=0.0)
    for _ in range(3):
        assert await errcodes(send, 1) == [0]
        clock.advance(0.4)
    # t=1.2: the send at t=0 has left the window, those at 0.4 and 0.8 have not.
    assert await errcodes(send, 2) == [0, 130101]
    clock.advance(0.21)  # t=1.41: the send at 0.4 has left
    assert await errcodes(send, 2) == [0, 130101]


async def test_fixed_window(send: Send, small_rate: Emulator, clock: FakeClock) -> None:
    small_rate.options = EmulatorOptions(rate_window_kind="fixed")
    small_rate.update_robot("ops", lockout=0.0)
    clock.advance(0.7)  # the clock starts on a window boundary
    assert await errcodes(send, 4) == [0, 0, 0, 130101]
    clock.advance(0.3)  # a new fixed window begins, though 3 were sent 0.3 s ago
    assert await errcodes(send, 4) == [0, 0, 0, 130101]


async def test_rate_errcode_as_documented(send: Send, small_rate: Emulator) -> None:
    small_rate.options = EmulatorOptions(rate_limit_errcode=410100)
    await errcodes(send, 3)
    assert (await send(text())).json() == {"errcode": 410100, "errmsg": "发送速度太快而限流"}
    assert (await send(text())).json()["errcode"] == 410100


async def test_robots_have_separate_windows(send: Send, small_rate: Emulator) -> None:
    small_rate.add_robot(RobotConfig("other", "other-token"))
    assert await errcodes(send, 4) == [0, 0, 0, 130101]
    assert await errcodes(send, 3, token="other-token") == [0, 0, 0]


# -- body size ----------------------------------------------------------------------------


def body_of_size(size: int, char: str) -> bytes:
    """Return a JSON text message of exactly ``size`` bytes, padded with ``char``."""
    base = json.dumps(text(""), ensure_ascii=False).encode()
    per_char = len(char.encode())
    room = size - len(base)
    content = char * (room // per_char) + "a" * (room % per_char)
    body = json.dumps(text(content), ensure_ascii=False).encode()
    assert len(body) == size
    return body


@pytest.mark.parametrize("char", ["a", "中"])
async def test_body_limit_is_20000_bytes(send: Send, emulator: Emulator, char: str) -> None:
    assert (await send(content=body_of_size(20_000, char))).json()["errcode"] == 0
    response = await send(content=body_of_size(20_001, char))
    assert response.json() == {
        "errcode": 460101,
        "errmsg": "description:body 大小不合法;solution:请保持大小在 20000bytes 以内;",
    }
    record = emulator.requests()[-1]
    assert (record.reason, record.body_size) == ("too_large", 20_001)


async def test_body_limit_counts_bytes_not_characters(send: Send) -> None:
    content = "磁盘告警" * 1750  # 7,000 characters, 21,000 bytes in UTF-8
    response = await send(content=json.dumps(text(content), ensure_ascii=False).encode())
    assert response.json()["errcode"] == 460101


async def test_body_limit_is_configurable(send: Send, emulator: Emulator) -> None:
    emulator.options = EmulatorOptions(body_limit=100)
    assert (await send(content=body_of_size(101, "a"))).json()["errcode"] == 460101


# -- msgUuid ------------------------------------------------------------------------------


async def test_msg_uuid_retry_is_answered_ok_and_stored_once(
    send: Send, emulator: Emulator
) -> None:
    first = await send(text("deploy", msgUuid="m-1"))
    retry = await send(text("deploy", msgUuid="m-1"))

    assert first.json() == retry.json() == {"errcode": 0, "errmsg": "ok"}
    [message] = emulator.messages()
    original, duplicate = emulator.requests()
    assert (original.reason, original.accepted) == ("accepted", True)
    assert (duplicate.reason, duplicate.accepted) == ("duplicate", False)
    assert duplicate.message_id == original.message_id == message.id
    assert emulator.rejections() == []
    stats = emulator.stats().robots["ops"]
    assert (stats.accepted, stats.duplicates, stats.in_window) == (1, 1, 1)


async def test_msg_uuids_are_per_robot_and_cleared_by_reset(send: Send, emulator: Emulator) -> None:
    emulator.add_robot(RobotConfig("other", "other-token"))
    await send(text(msgUuid="m-1"))
    await send(text(msgUuid="m-1"), token="other-token")
    assert len(emulator.messages()) == 2
    emulator.reset()
    await send(text(msgUuid="m-1"))
    assert len(emulator.messages()) == 1


async def test_refused_message_does_not_claim_its_msg_uuid(send: Send, emulator: Emulator) -> None:
    emulator.update_robot("ops", keywords=("ALERT",))
    await send(text("quiet", msgUuid="m-1"))
    await send(text("ALERT", msgUuid="m-1"))
    assert [m.payload["text"]["content"] for m in emulator.messages()] == ["ALERT"]


@pytest.mark.parametrize("value", [None, "", 42, {"id": 1}])
async def test_non_string_msg_uuid_is_not_a_key(send: Send, emulator: Emulator, value: Any) -> None:
    await send(text(msgUuid=value))
    await send(text(msgUuid=value))
    assert len(emulator.messages()) == 2
