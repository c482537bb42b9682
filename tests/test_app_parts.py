"""Split app messages and flow-controlled users, through the emulator (protocol §3.1-§3.2, §4.1)."""

from __future__ import annotations

import json

import httpx
import pytest

import dingpush
from _appdelivery import (
    FAST,
    GROUP_PATH,
    OTO_PATH,
    Flaky,
    agent,
    app,
    async_app,
    calls,
    register,
)
from _appsupport import cid
from dingpush import Link, Markdown, MessageTooLarge, PartialDelivery, Splitter, Text
from dingpush._messages._channels import msg_param_bytes, notice_msg_bytes
from dingpush.testing import EmulatorServer, FakeClock

#: 800 lines of CJK text: 33,612 bytes of msgParam, so three parts of at most 15,000.
REPORT = "\n".join(f"第{i:03d}行: 磁盘使用率正常 disk OK" for i in range(800))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(dingtalk_emulator: EmulatorServer, clock: FakeClock) -> EmulatorServer:
    register(dingtalk_emulator, clock)
    return dingtalk_emulator


def contents(server: EmulatorServer) -> list[str]:
    return [m.payload["msgParam"]["content"] for m in server.emulator.messages()]


class TestSplit:
    def test_a_long_text_goes_to_a_group_in_numbered_parts(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        assert msg_param_bytes(Text(REPORT)) > 30_000
        with app(server, clock) as ops:
            result = ops.group(cid(server)).send(Text(REPORT), split=True, msg_uuid="nightly")
        sent = contents(server)
        assert [c.split("\n", 1)[0] for c in sent] == ["(1/3)", "(2/3)", "(3/3)"]
        assert "".join(c.split("\n", 1)[1] for c in sent) == REPORT  # nothing lost, in order
        assert all(msg_param_bytes(Text(c)) <= 15_000 for c in sent)
        assert [p.msg_uuid for p in result.parts] == ["nightly-1", "nightly-2", "nightly-3"]
        assert result.msg_uuid == "nightly" and result.attempts == 3
        assert result.process_query_key == result.parts[0].process_query_key

    def test_without_split_it_is_refused_before_any_request(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        with app(server, clock) as ops, pytest.raises(MessageTooLarge, match="split=True"):
            ops.group(cid(server)).send(Text(REPORT))
        assert server.emulator.requests() == []

    def test_only_text_and_markdown_split(self, server: EmulatorServer, clock: FakeClock) -> None:
        link = Link("Release", "x" * 16_000, "https://example.com/r")
        with app(server, clock) as ops, pytest.raises(MessageTooLarge, match="only Text"):
            ops.group(cid(server)).send(link, split=True)
        assert server.emulator.requests() == []

    def test_a_work_notification_splits_against_its_2048_bytes(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        report = Markdown("On call", "\n\n".join(f"### 服务 {i}\n状态正常" for i in range(200)))
        with app(server, clock) as ops:
            result = ops.notify(agent(server), users=["alice", "bob"]).send(report, split=True)
        stored = server.emulator.messages()
        total = len(result.parts)
        assert total == len(result.task_ids) > 1 and len(stored) == 2 * total
        assert {p.msgtype for p in result.parts} == {"markdown"}
        titles = [m.payload["markdown"]["title"] for m in stored]
        assert titles[:2] == [f"On call (1/{total})"] * 2  # alice and bob, part by part
        assert titles[-1] == f"On call ({total}/{total})"
        assert all(
            len(json.dumps(m.payload, ensure_ascii=False, separators=(",", ":")).encode()) <= 2_048
            for m in stored
        )
        assert len(Splitter().split(report, limit=2_048, measure=notice_msg_bytes)) == total

    def test_a_smaller_splitter_limit_makes_smaller_parts(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        with app(server, clock) as ops:
            result = ops.users(["alice"]).send(Text(REPORT[:3000]), split=Splitter(limit=1_000))
        assert len(result.parts) > 3 and result.delivered_user_ids == ("alice",)
        assert all(msg_param_bytes(Text(c)) <= 1_000 for c in contents(server))

    def test_a_failed_part_reports_what_went_out_and_what_is_left(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        # DingTalk refuses the third call of the second: the client believes in 1000 a second.
        server.emulator.update_app("ops", api_qps=2)
        with app(server, clock, rate="1000/1s") as ops:
            with pytest.raises(PartialDelivery) as info:
                ops.group(cid(server)).send(Text(REPORT), split=True, retry=False)
            exc = info.value
            assert (len(exc.sent), exc.total, len(exc.remaining)) == (2, 3, 1)
            assert isinstance(exc.error, dingpush.PlatformThrottled)
            assert "exc.remaining" in str(exc) and "msgUuid" not in str(exc)
            clock.advance(1)
            for part in exc.remaining:  # no de-duplication on app APIs: only what is left
                ops.group(cid(server)).send(part)
        assert [c.split("\n", 1)[0] for c in contents(server)] == ["(1/3)", "(2/3)", "(3/3)"]

    @pytest.mark.anyio
    async def test_async_split(self, server: EmulatorServer, clock: FakeClock) -> None:
        async with async_app(server, clock) as ops:
            result = await ops.group(cid(server)).send(Text(REPORT), split=True)
        assert len(result.parts) == 3 and len(server.emulator.messages()) == 3


class TestFlowControl:
    def test_flow_controlled_users_get_it_later_alone(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        # Alice may get one 1:1 message in 3 seconds; she just got one.
        server.emulator.update_app("ops", oto_user_limit=1, oto_user_window=3.0)
        with app(server, clock, retry=FAST) as ops:
            ops.users(["alice"]).send("earlier")
            start = clock.monotonic()
            result = ops.users(["alice", "bob", "ghost"]).send("build ready")
        assert result.delivered_user_ids == ("alice", "bob")
        assert result.invalid_user_ids == ("ghost",)
        assert result.flow_controlled_user_ids == ()
        # One call for all, then alice alone after 1 s (still throttled) and after 2 s more.
        assert result.attempts == 3 and len(result.process_query_keys) == 3
        assert clock.monotonic() - start == pytest.approx(3.0)
        received = [m.conversation_id for m in server.emulator.messages()]
        alice = server.emulator.conversation_of_user("alice").id
        bob = server.emulator.conversation_of_user("bob").id
        assert received == [alice, bob, alice]  # nobody got it twice

    def test_users_still_flow_controlled_are_reported(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        server.emulator.update_app("ops", flow_controlled_users=("bob",))
        with app(server, clock) as ops:
            result = ops.users(["alice", "bob"]).send("hello")
            once = ops.users(["alice", "bob"]).send("hello", retry=False)
        assert result.flow_controlled_user_ids == ("bob",) == once.flow_controlled_user_ids
        assert result.delivered_user_ids == ("alice",)
        assert (result.attempts, once.attempts) == (4, 1)  # the policy's 4 attempts for bob

    def test_resends_go_twenty_a_call(self, server: EmulatorServer, clock: FakeClock) -> None:
        many = [f"u{i:02d}" for i in range(45)]
        server.emulator.update_app("ops", users=many, oto_user_limit=1, oto_user_window=1.0)
        with app(server, clock, retry=FAST) as ops:
            ops.users(many[:25]).send("warm-up")
            result = ops.users(many).send("hello")
        assert result.delivered_user_ids == tuple(many)
        assert len(result.process_query_keys) == 3 + 2  # 45 users, then 25 again
        assert len(server.emulator.messages()) == 25 + 45

    def test_a_failure_during_a_resend_carries_the_partial_result(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        server.emulator.update_app("ops", flow_controlled_users=("alice",))
        lost = httpx.ReadError("connection reset")  # the resend's answer never came
        with app(server, clock, transport=Flaky({OTO_PATH: [None, lost]})) as ops:
            with pytest.raises(dingpush.TransportError) as info:
                ops.users(["alice", "bob"]).send("hello")
        partial = info.value.partial
        assert isinstance(partial, dingpush.UsersSendResult)
        assert partial.delivered_user_ids == ("bob",)
        assert partial.flow_controlled_user_ids == ("alice",)

    def test_a_user_who_misses_a_part_gets_none_of_the_later_ones(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        server.emulator.update_app("ops", flow_controlled_users=("bob",))
        with app(server, clock) as ops:
            result = ops.users(["alice", "bob"]).send(Text(REPORT), split=True, retry=False)
        assert len(result.parts) == 3
        assert result.delivered_user_ids == ("alice",)
        assert result.flow_controlled_user_ids == ("bob",)
        assert [p.user_ids for p in result.parts] == [("alice", "bob"), ("alice",), ("alice",)]
        assert len(server.emulator.messages()) == 3

    @pytest.mark.anyio
    async def test_async_resend(self, server: EmulatorServer, clock: FakeClock) -> None:
        server.emulator.update_app("ops", oto_user_limit=1, oto_user_window=1.0)
        async with async_app(server, clock, retry=FAST) as ops:
            await ops.users(["alice"]).send("earlier")
            result = await ops.users(["alice", "bob"]).send("hello")
        assert result.delivered_user_ids == ("alice", "bob") and result.attempts == 2
        assert len(calls(server, OTO_PATH)) == 3
        assert calls(server, GROUP_PATH) == []
