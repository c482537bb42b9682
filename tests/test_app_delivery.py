"""App sends through the delivery engine: rate budgets and retries (protocol §4.1, §7).

Every test shares one ``FakeClock`` between the client and the emulator, so waiting is free
and no test reads the wall clock.
"""

from __future__ import annotations

import dataclasses

import httpx
import pytest

import dingpush
from _appdelivery import (
    FAST,
    GROUP_PATH,
    NOTICE_PATH,
    OTO_PATH,
    TOKEN_PATH,
    UPLOAD_PATH,
    AsyncFlaky,
    Flaky,
    agent,
    app,
    async_app,
    calls,
    refused,
    refused_connection,
    register,
)
from _appsupport import cid, png_bytes
from dingpush import Image, RateLimited, RetryPolicy
from dingpush.testing import EmulatorServer, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(dingtalk_emulator: EmulatorServer, clock: FakeClock) -> EmulatorServer:
    register(dingtalk_emulator, clock)
    return dingtalk_emulator


class TestRates:
    def test_twenty_calls_a_second_per_api_and_never_a_throttle(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        start = clock.monotonic()
        with app(server, clock) as ops:
            group = ops.group(cid(server))
            for i in range(20):
                group.send(f"build {i}")
            assert clock.monotonic() == start  # DingTalk's 20 a second: sent at once
            group.send("the 21st")  # waits for the second to pass
        assert clock.monotonic() - start >= 1.0
        assert len(server.emulator.messages()) == 21
        assert refused(server, "qps_throttled") == 0

    def test_wait_false_raises_with_the_budget_named(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        with app(server, clock, rate="2/1s") as ops:
            group = ops.group(cid(server))
            group.send("one")
            group.send("two")
            with pytest.raises(RateLimited) as info:
                group.send("three", wait=False)
            with pytest.raises(RateLimited):
                group.send("three", max_wait=0.5)  # the slot is a second away
        assert info.value.errcode == "local"
        assert "2/1s groupMessages/send calls" in str(info.value)
        assert "RobotPool" not in str(info.value)
        assert info.value.retry_at == pytest.approx(clock.time() + 1.0)
        assert len(calls(server, GROUP_PATH)) == 2  # nothing was sent for the refusals

    def test_each_api_has_its_own_budget(self, server: EmulatorServer, clock: FakeClock) -> None:
        with app(server, clock, rate="3/1s") as ops:
            for i in range(3):
                ops.group(cid(server)).send(f"group {i}", wait=False)
                ops.users(["alice"]).send(f"user {i}", wait=False)
                ops.notify(agent(server), users=["bob"]).send(f"notice {i}", wait=False)
        assert len(server.emulator.messages()) == 9

    def test_clients_of_one_app_share_the_budget(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        with app(server, clock, rate="2/1s") as first, app(server, clock, rate="2/1s") as second:
            first.group(cid(server)).send("a")
            second.group(cid(server)).send("b")
            with pytest.raises(RateLimited):
                first.group(cid(server)).send("c", wait=False)

    def test_a_platform_qps_throttle_is_backed_off_and_delivered_once(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        # A client that believes in 1000 a second meets DingTalk's 20 (protocol §7).
        start = clock.monotonic()
        with app(server, clock, rate="1000/1s") as ops:
            results = [ops.group(cid(server)).send(f"alert {i}") for i in range(25)]
        assert refused(server, "qps_throttled") == 1
        assert results[20].attempts == 2 and sum(r.attempts for r in results) == 26
        assert clock.monotonic() - start >= 1.0  # the one-second penalty was sat out
        assert len(server.emulator.messages()) == 25

    def test_90018_on_an_oapi_path_cools_the_app_down(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        server.emulator.update_app("ops", api_qps=1)
        notice_key = None
        with app(server, clock, rate="1000/1s") as ops:
            notice = ops.notify(agent(server), users=["alice"])
            notice.send("first")
            with pytest.raises(dingpush.PlatformThrottled) as info:
                notice.send("second", retry=False)
            assert info.value.errcode == 90018
            notice_key = ops._delivery.key(NOTICE_PATH)
            # Every sender of the app's asyncsend_v2 now holds back for the penalty (§7).
            assert ops._delivery.limiter.cooldown_left(notice_key) == pytest.approx(1.0)
            with pytest.raises(RateLimited, match="cooling down"):
                notice.send("third", wait=False)
            notice.send("third")
        assert notice_key is not None
        assert refused(server, "qps_throttled") == 1

    def test_send_too_fast_cools_the_api_down_then_sends_again(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        server.emulator.inject_fault("errcode", path=GROUP_PATH, errmsg="send.too.fast")
        start = clock.monotonic()
        with app(server, clock, cooldown=30) as ops:
            result = ops.group(cid(server)).send("hello")
        assert result.attempts == 2 and clock.monotonic() - start >= 30
        assert len(server.emulator.messages()) == 1

    def test_send_too_fast_with_wait_false_says_when(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        server.emulator.inject_fault("errcode", path=GROUP_PATH, errmsg="send.too.fast")
        with app(server, clock) as ops, pytest.raises(RateLimited) as info:
            ops.group(cid(server)).send("hello", wait=False)
        assert info.value.errcode == "send.too.fast"
        assert info.value.retry_at == pytest.approx(clock.time() + 60.0)

    def test_bad_settings(self, server: EmulatorServer, clock: FakeClock) -> None:
        with pytest.raises(ValueError, match="20/1s"):
            app(server, clock, rate="fast")
        with pytest.raises(ValueError, match="100 users"):
            app(server, clock, notice_rate="50/60s")
        with pytest.raises(ValueError, match="cooldown"):
            app(server, clock, cooldown=-1)
        with app(server, clock) as ops, pytest.raises(ValueError, match="max_wait"):
            ops.group(cid(server)).send("x", max_wait=-1)


class TestNoticeBudgets:
    def test_recipients_a_minute_are_never_dropped(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        many = [f"u{i:03d}" for i in range(180)]
        server.emulator.update_app("ops", users=many, notice_recipients_per_minute=150)
        start = clock.monotonic()
        with app(server, clock, notice_rate="150/60s") as ops:
            results = [
                ops.notify(agent(server), users=many[i : i + 60]).send(f"batch {i}")
                for i in range(0, 180, 60)
            ]
            dropped = [ops.send_result(agent(server), r.task_id).forbidden for r in results]
        assert dropped == [(), (), ()]
        assert clock.monotonic() - start >= 60  # the third batch waited for the minute
        assert len(server.emulator.messages()) == 180

    def test_without_the_budget_dingtalk_drops_the_excess_silently(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        many = [f"u{i:03d}" for i in range(180)]
        server.emulator.update_app("ops", users=many, notice_recipients_per_minute=150)
        with app(server, clock, notice_rate="100000/60s") as ops:
            results = [
                ops.notify(agent(server), users=many[i : i + 60]).send(f"batch {i}")
                for i in range(0, 180, 60)
            ]
            last = ops.send_result(agent(server), results[-1].task_id)
        assert {f.code for f in last.forbidden} == {"143103"} and len(last.forbidden) == 30
        assert last.forbidden[0].reason == "the app's recipients-per-minute limit"

    def test_no_slot_names_the_recipients_budget(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        many = [f"u{i:03d}" for i in range(150)]
        server.emulator.update_app("ops", users=many)
        with app(server, clock, notice_rate="100/60s") as ops:
            ops.notify(agent(server), users=many[:100]).send("first")
            with pytest.raises(RateLimited, match="100/60s work-notification recipients"):
                ops.notify(agent(server), users=many[100:]).send("second", wait=False)

    def test_everyone_three_times_a_day(self, server: EmulatorServer, clock: FakeClock) -> None:
        with app(server, clock) as ops:
            everyone = ops.notify(agent(server), everyone=True)
            for i in range(3):
                everyone.send(f"all hands {i}")
            with pytest.raises(RateLimited, match="everyone 3 times in 24 hours") as info:
                everyone.send("a fourth")  # would wait a day: more than max_wait
            assert info.value.retry_at == pytest.approx(clock.time() + 86_400)
            clock.advance(86_400)
            everyone.send("the next day")
        assert len(server.emulator.notice_tasks()) == 4


class TestRetries:
    def test_a_dingtalk_error_answer_is_retried(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        server.emulator.inject_fault("errcode", path=GROUP_PATH)  # HTTP 500 system.error
        server.emulator.inject_fault("errcode", path=NOTICE_PATH)  # errcode -1 系统繁忙
        with app(server, clock, retry=FAST) as ops:
            group = ops.group(cid(server)).send("hello")
            notice = ops.notify(agent(server), users=["alice"]).send("hello")
        assert (group.attempts, notice.attempts) == (2, 2)
        assert len(server.emulator.messages()) == 2

    def test_a_request_that_never_left_is_retried(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        flaky = Flaky({GROUP_PATH: [refused_connection(GROUP_PATH)] * 2})
        with app(server, clock, retry=FAST, transport=flaky) as ops:
            result = ops.group(cid(server)).send("hello")
        assert result.attempts == 3
        assert len(server.emulator.messages()) == 1

    @pytest.mark.parametrize("after_accept", [False, True], ids=["before", "after"])
    def test_an_ambiguous_failure_is_not_retried(
        self, server: EmulatorServer, clock: FakeClock, after_accept: bool
    ) -> None:
        # The answer was lost: DingTalk may have posted the message, and would post it again.
        server.emulator.inject_fault("drop", path=GROUP_PATH, after_accept=after_accept)
        with app(server, clock, retry=FAST) as ops, pytest.raises(dingpush.TransportError) as info:
            ops.group(cid(server)).send("hello")
        assert info.value.maybe_delivered
        assert len(calls(server, GROUP_PATH)) == 1
        assert len(server.emulator.messages()) == int(after_accept)

    def test_retry_ambiguous_accepts_the_risk_of_a_duplicate(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        server.emulator.inject_fault("drop", path=GROUP_PATH, after_accept=True)
        server.emulator.inject_fault("http500", path=OTO_PATH)  # a gateway page, before
        risky = dataclasses.replace(FAST, retry_ambiguous=True)
        with app(server, clock, retry=risky) as ops:
            group = ops.group(cid(server)).send("hello")
            users = ops.users(["alice"]).send("hello")
        assert (group.attempts, users.attempts) == (2, 2)
        texts = [m.payload["msgParam"]["content"] for m in server.emulator.messages()]
        assert texts == ["hello", "hello", "hello"]  # the group got it twice: the risk taken

    def test_permanent_errors_are_never_retried(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        server.emulator.inject_fault("errcode", path=GROUP_PATH, errmsg="contain.notAllowed.text")
        with app(server, clock, retry=FAST) as ops:
            with pytest.raises(dingpush.ContentRejected):
                ops.group(cid(server)).send("x")
            with pytest.raises(dingpush.InvalidRequest):
                ops.group("cidUnknown==").send("x")
            server.emulator.update_app("ops", permissions=())
            with pytest.raises(dingpush.PermissionDenied):
                ops.group(cid(server)).send("x")
        assert len(calls(server, GROUP_PATH)) == 3

    def test_a_refreshed_token_is_not_a_retry(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        with app(server, clock, retry=False) as ops:
            ops.access_token()
            server.emulator.expire_tokens("ops")
            result = ops.group(cid(server)).send("after expiry", retry=False)
        assert result.attempts == 1
        assert server.emulator.token_requests("ops") == 2

    def test_a_failed_token_request_does_not_make_the_send_ambiguous(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        # The token request's answer was lost (ambiguous for it, harmless: it only reads), and
        # the send itself had not gone out, so the send is retried.
        flaky = Flaky({TOKEN_PATH: [httpx.ReadError("connection reset")]})
        with app(server, clock, retry=FAST, transport=flaky) as ops:
            result = ops.notify(agent(server), users=["alice"]).send("hello")
        assert result.attempts == 2
        assert len(server.emulator.messages()) == 1

    def test_uploads_and_queries_are_retried_whatever_the_failure(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        server.emulator.inject_fault("drop", path=UPLOAD_PATH, after_accept=True)
        with app(server, clock, retry=FAST) as ops:
            result = ops.group(cid(server)).send(Image(data=png_bytes(), filename="cpu.png"))
            task = ops.notify(agent(server), users=["alice"]).send("hello")
            server.emulator.inject_fault(
                "drop", path="/topapi/message/corpconversation/getsendresult"
            )
            delivery = ops.send_result(agent(server), task.task_id)
        assert result.attempts == 1 and delivery.unread_user_ids == ("alice",)
        # The lost answer's upload is kept by DingTalk too: a spare copy, not a message.
        assert len(server.emulator.media_items()) == 2
        assert len(server.emulator.messages()) == 2

    def test_the_default_policy_gives_up_after_four_attempts(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        server.emulator.inject_fault("errcode", path=OTO_PATH, count=None)
        with app(server, clock) as ops, pytest.raises(dingpush.ServerBusy):
            ops.users(["alice"]).send("x")
        assert len(calls(server, OTO_PATH)) == 4

    def test_per_send_retry_overrides_the_apps(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        server.emulator.inject_fault("errcode", path=OTO_PATH, count=None)
        with app(server, clock, retry=FAST) as ops, pytest.raises(dingpush.ServerBusy):
            ops.users(["alice"]).send("x", retry=2)
        assert len(calls(server, OTO_PATH)) == 2


@pytest.mark.anyio
class TestAsync:
    async def test_waits_for_the_budget_without_blocking(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        start = clock.monotonic()
        async with async_app(server, clock, rate="5/1s") as ops:
            for i in range(10):
                await ops.group(cid(server)).send(f"build {i}")
            with pytest.raises(RateLimited):
                await ops.group(cid(server)).send("x", wait=False)
        assert clock.monotonic() - start == pytest.approx(1.0)  # 5 now, 5 a second later
        assert len(server.emulator.messages()) == 10

    async def test_retries_and_ambiguity(self, server: EmulatorServer, clock: FakeClock) -> None:
        flaky = AsyncFlaky({NOTICE_PATH: [refused_connection(NOTICE_PATH)]})
        server.emulator.inject_fault("drop", path=GROUP_PATH, after_accept=True)
        async with async_app(server, clock, retry=FAST, transport=flaky) as ops:
            notice = await ops.notify(agent(server), users=["alice"]).send("hello")
            with pytest.raises(dingpush.TransportError) as info:
                await ops.group(cid(server)).send("hello")
            delivery = await ops.send_result(agent(server), notice.task_id)
        assert notice.attempts == 2 and info.value.maybe_delivered
        assert delivery.unread_user_ids == ("alice",)
        assert len(server.emulator.messages()) == 2

    async def test_platform_throttle_then_delivered(
        self, server: EmulatorServer, clock: FakeClock
    ) -> None:
        server.emulator.update_app("ops", api_qps=2)
        async with async_app(server, clock, rate="1000/1s") as ops:
            results = [await ops.users(["alice"]).send(f"n{i}") for i in range(3)]
        assert [r.attempts for r in results] == [1, 1, 2]
        assert refused(server, "qps_throttled") == 1
        assert len(server.emulator.messages()) == 3


def test_retry_policy_says_why_an_app_send_is_not_retried() -> None:
    lost = dingpush.TransportError("connection reset")
    never_sent = dingpush.TransportError("refused", maybe_delivered=False)
    policy = RetryPolicy(base_delay=1, jitter=0)
    assert policy.delay(1, lost, 0.0) == 1.0  # a robot: msgUuid makes it safe
    assert policy.delay(1, lost, 0.0, idempotent=False) is None
    assert policy.delay(1, never_sent, 0.0, idempotent=False) == 1.0
    risky = RetryPolicy(base_delay=1, jitter=0, retry_ambiguous=True)
    assert risky.delay(1, lost, 0.0, idempotent=False) == 1.0
    busy = dingpush.ServerBusy(-1, "系统繁忙")
    assert policy.delay(1, busy, 0.0, idempotent=False) == 1.0  # DingTalk said: not done


def test_backoff_without_an_error() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=0.5, jitter=0, max_elapsed=10)
    assert policy.backoff(1, 0.0) == 0.5
    assert policy.backoff(2, 0.0, floor=2.0) == 2.0
    assert policy.backoff(3, 0.0) is None  # attempts used up
    assert policy.backoff(1, 9.8) is None  # max_elapsed


@pytest.mark.parametrize(
    ("error", "maybe_delivered"),
    [
        (httpx.ConnectError("refused"), False),
        (httpx.ConnectTimeout("slow connect"), False),
        (httpx.PoolTimeout("no free connection"), False),
        (httpx.ProxyError("proxy said 403"), False),
        (httpx.ReadTimeout("no answer"), True),
        (httpx.WriteTimeout("half sent"), True),
        (httpx.RemoteProtocolError("server disconnected"), True),
        (httpx.ReadError("reset"), True),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_which_transport_failures_may_have_been_delivered(
    error: Exception, maybe_delivered: bool
) -> None:
    from dingpush._wire import map_transport_errors

    with pytest.raises(dingpush.TransportError) as info, map_transport_errors(str, "DingTalk"):
        raise error
    assert info.value.maybe_delivered is maybe_delivered


@pytest.mark.parametrize(("status", "maybe_delivered"), [(502, True), (503, False), (504, True)])
def test_which_gateway_pages_may_have_been_delivered(status: int, maybe_delivered: bool) -> None:
    from dingpush._wire import parse_v1_reply

    with pytest.raises(dingpush.ProtocolError) as info:
        parse_v1_reply(status, b"<html>Bad Gateway</html>", str)
    assert info.value.transient and info.value.maybe_delivered is maybe_delivered
