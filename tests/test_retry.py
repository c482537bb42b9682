"""Retries: the policy's arithmetic, and exactly-once delivery through the emulator's faults."""

from __future__ import annotations

import dataclasses
import pathlib
import re
import time
from collections.abc import Callable

import pytest

import dingpush
from dingpush import AsyncRobot, RetryPolicy, Robot
from dingpush._engine._retry import as_retry_policy
from dingpush.testing import EmulatorServer, FakeClock

SECRET = "SEC0123456789abcdef0123456789abcdef"
#: Fast back-off so the tests with real sockets stay quick.
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def url(dingtalk_emulator: EmulatorServer) -> str:
    # The emulator's own limit is raised: these tests are about faults, not rates.
    dingtalk_emulator.add_robot("ops", secret=SECRET, rate_limit=10_000, rate_window=1)
    return dingtalk_emulator.webhook_url("ops")


def delivered_once(server: EmulatorServer, results: list[dingpush.SendResult]) -> None:
    messages = server.emulator.messages(robot="ops")
    assert sorted(m.msg_uuid or "" for m in messages) == sorted(r.msg_uuid for r in results)


class TestPolicy:
    def test_backoff_doubles_up_to_max_delay(self) -> None:
        policy = RetryPolicy(max_attempts=10, base_delay=1, max_delay=5, jitter=0)
        error = dingpush.TransportError("x")
        delays = [policy.delay(n, error, 0.0) for n in range(1, 6)]
        assert delays == [1, 2, 4, 5, 5]

    def test_jitter_adds_up_to_its_fraction(self) -> None:
        policy = RetryPolicy(base_delay=2, jitter=0.5, max_delay=100)
        error = dingpush.TransportError("x")
        assert policy.delay(1, error, 0.0, rand=0.0) == 2
        assert policy.delay(1, error, 0.0, rand=0.999) == pytest.approx(2.999)
        drawn = {policy.delay(1, error, 0.0) for _ in range(20)}
        assert all(d is not None and 2 <= d <= 3 for d in drawn) and len(drawn) > 1

    def test_gives_up_after_max_attempts_and_max_elapsed(self) -> None:
        policy = RetryPolicy(max_attempts=3, base_delay=1, jitter=0, max_elapsed=10)
        error = dingpush.ServerBusy(-1, "系统繁忙")
        assert policy.delay(2, error, 0.0) == 2
        assert policy.delay(3, error, 0.0) is None
        assert policy.delay(1, error, 9.5) is None

    @pytest.mark.parametrize(
        "error",
        [
            dingpush.TransportError("reset"),
            dingpush.Timeout("slow"),
            dingpush.ProtocolError("gateway", status_code=502),
            dingpush.ServerBusy(-1, "系统繁忙"),
            dingpush.PlatformThrottled(90018, "qps"),
        ],
        ids=type,
    )
    def test_retried(self, error: dingpush.DingPushError) -> None:
        assert RetryPolicy.retryable(error)

    @pytest.mark.parametrize(
        "error",
        [
            dingpush.SecurityRejected(310000, "sign not match"),
            dingpush.TokenNotFound(300001, "token is not exist"),
            dingpush.RobotUnavailable(400102, "机器人已停用"),
            dingpush.MessageTooLarge(),
            dingpush.ContentRejected(430102, "x"),
            dingpush.InvalidRequest(40035, "缺少参数 json"),
            dingpush.ProtocolError("not found page", status_code=404),
            dingpush.RateLimited(130101, "send too fast"),
            ValueError("a bug"),
        ],
        ids=type,
    )
    def test_never_retried(self, error: BaseException) -> None:
        assert not RetryPolicy.retryable(error)
        assert RetryPolicy().delay(1, error, 0.0) is None

    def test_platform_advice_is_honoured(self) -> None:
        policy = RetryPolicy(base_delay=0.1, jitter=0, max_delay=0.5, max_elapsed=1000)
        qps = dingpush.PlatformThrottled(90018, "qps")
        assert policy.delay(1, qps, 0.0) == 1.0  # §7: one-second penalty window
        api = dingpush.PlatformThrottled(90002, "all requests banned")
        assert [policy.delay(n, api, 0.0) for n in (1, 2, 3)] == [1, 2, 4]  # §7: 1 s, 2 s, 4 s
        qpm = dingpush.PlatformThrottled("Forbidden.AccessDenied.QpmLimitForAppkeyAndApi", "x")
        assert policy.delay(1, qpm, 0.0) == 60.0
        busy = dingpush.ServerBusy(-1, "busy")
        busy.retry_after = 7.0  # type: ignore[attr-defined]
        assert policy.delay(1, busy, 0.0) == 7.0

    def test_shorthands(self) -> None:
        assert as_retry_policy(True) == as_retry_policy(None) == RetryPolicy()
        assert as_retry_policy(False) == RetryPolicy.never() == RetryPolicy(max_attempts=1)
        assert as_retry_policy(3) == RetryPolicy(max_attempts=3)
        assert as_retry_policy(FAST) is FAST
        for bad in (0, -1, "3", 2.5):
            with pytest.raises(TypeError, match="retry="):
                as_retry_policy(bad)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "kwargs", [{"max_attempts": 0}, {"base_delay": -1}, {"jitter": 2}, {"max_elapsed": -1}]
    )
    def test_validation(self, kwargs: dict[str, float]) -> None:
        with pytest.raises(ValueError):
            RetryPolicy(**kwargs)  # type: ignore[arg-type]


class TestDecide:
    """``RetryPolicy.decide``: the one decision the engine and the relay's dispatcher act on."""

    POLICY = RetryPolicy(max_attempts=4, base_delay=1, max_delay=8, jitter=0, max_elapsed=100)

    def test_a_transient_failure_is_retried_after_the_back_off(self) -> None:
        decision = self.POLICY.decide(dingpush.TransportError("reset"), attempt=2, elapsed=3.0)
        assert decision == dingpush.Decision(
            kind="retry", reason="transient", delay=2.0, attempt=2, elapsed=3.0
        )
        assert str(decision) == "a transient failure: attempt 3 in 2.0 s"

    def test_a_throttle_cools_down_whatever_the_count(self) -> None:
        throttled = dingpush.RateLimited(130101, "send too fast")
        decision = self.POLICY.decide(throttled, attempt=99, elapsed=1e9)
        assert (decision.kind, decision.reason, decision.delay) == ("cool_down", "throttled", None)

    @pytest.mark.parametrize(
        ("error", "attempt", "elapsed", "idempotent", "reason"),
        [
            (dingpush.TokenNotFound(300001, "token is not exist"), 1, 0.0, True, "permanent"),
            (dingpush.Timeout("read"), 1, 0.0, False, "ambiguous"),
            (dingpush.ServerBusy(-1, "busy"), 4, 0.0, True, "attempts"),
            (dingpush.ServerBusy(-1, "busy"), 2, 99.0, True, "horizon"),
        ],
    )
    def test_gives_up_and_says_why(
        self,
        error: BaseException,
        attempt: int,
        elapsed: float,
        idempotent: bool,
        reason: str,
    ) -> None:
        decision = self.POLICY.decide(
            error, attempt=attempt, elapsed=elapsed, idempotent=idempotent
        )
        assert (decision.kind, decision.reason, decision.delay) == ("give_up", reason, None)

    def test_an_ambiguous_failure_is_retried_where_a_repeat_is_dropped(self) -> None:
        assert self.POLICY.decide(dingpush.Timeout("read"), attempt=1, elapsed=0.0).kind == "retry"
        risky = dataclasses.replace(self.POLICY, retry_ambiguous=True)
        decision = risky.decide(dingpush.Timeout("read"), attempt=1, elapsed=0.0, idempotent=False)
        assert decision.kind == "retry"

    def test_a_partial_delivery_is_judged_by_its_cause(self) -> None:
        partial = dingpush.PartialDelivery(
            sent=[], total=2, error=dingpush.ServerBusy(-1, "busy"), msg_uuid="m"
        )
        assert self.POLICY.decide(partial, attempt=1, elapsed=0.0).kind == "retry"

    def test_an_unknown_exception_is_retried_by_decide_but_not_by_delay(self) -> None:
        # The relay's outbox retries a bug rather than lose the message; a client never sees one.
        decision = self.POLICY.decide(ValueError("a bug"), attempt=1, elapsed=0.0)
        assert (decision.kind, decision.reason) == ("retry", "unknown")
        assert self.POLICY.delay(1, ValueError("a bug"), 0.0) is None

    def test_without_a_count_only_time_bounds_the_retries(self) -> None:
        policy = RetryPolicy(
            max_attempts=None, base_delay=1, max_delay=600, jitter=0, max_elapsed=86400
        )
        busy = dingpush.ServerBusy(-1, "busy")
        assert policy.decide(busy, attempt=10_000, elapsed=0.0).delay == 600
        assert policy.decide(busy, attempt=10_000, elapsed=86000.0).reason == "horizon"
        assert policy.pause(10_000) == 600  # the relay's rest between probes: never None

    def test_delay_agrees_with_decide(self) -> None:
        errors = [
            dingpush.TransportError("x"),
            dingpush.ServerBusy(-1, "busy"),
            dingpush.PlatformThrottled(90002, "banned"),
            dingpush.TokenNotFound(300001, "x"),
            dingpush.RateLimited(130101, "x"),
        ]
        for error in errors:
            for attempt in range(1, 6):
                decision = self.POLICY.decide(error, attempt=attempt, elapsed=0.0, rand=0.5)
                expected = decision.delay if decision.kind == "retry" else None
                assert self.POLICY.delay(attempt, error, 0.0, rand=0.5) == expected


class TestExactlyOnce:
    @pytest.mark.parametrize(
        ("fault", "extra"),
        [
            ("http500", {}),
            ("drop", {}),
            ("errcode", {"errcode": -1}),
            ("drop", {"after_accept": True}),  # accepted, then the answer was lost
            ("http500", {"after_accept": True}),
        ],
        ids=["500", "drop", "busy", "drop-after-accept", "500-after-accept"],
    )
    def test_a_transient_fault_is_retried_with_the_same_msg_uuid(
        self, dingtalk_emulator: EmulatorServer, url: str, fault: str, extra: dict[str, object]
    ) -> None:
        dingtalk_emulator.emulator.inject_fault(fault, count=2, **extra)  # type: ignore[arg-type]
        with Robot(url, secret=SECRET, retry=FAST) as robot:
            result = robot.send("deploy finished")
        assert result.attempts == 3
        delivered_once(dingtalk_emulator, [result])
        uuids = {r.msg_uuid for r in dingtalk_emulator.emulator.requests()}
        assert uuids == {result.msg_uuid}

    def test_a_timeout_is_retried_and_never_duplicates(
        self, dingtalk_emulator: EmulatorServer, url: str
    ) -> None:
        # The slow request is still processed after the client gave up; the retry carries the
        # same msgUuid, so whichever lands second is dropped as a duplicate.
        dingtalk_emulator.emulator.inject_fault("delay", delay=0.6)
        with Robot(url, secret=SECRET, timeout=0.2, retry=FAST) as robot:
            result = robot.send("slow")
        assert result.attempts == 2
        # Wait (bounded) for the slow request to land, so it cannot spill into the next test.
        deadline = time.monotonic() + 5
        while len(dingtalk_emulator.emulator.requests()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        delivered_once(dingtalk_emulator, [result])
        assert dingtalk_emulator.emulator.stats().robots["ops"].duplicates == 1

    def test_soak_with_random_faults(self, dingtalk_emulator: EmulatorServer, url: str) -> None:
        emulator = dingtalk_emulator.emulator
        emulator.inject_fault("http500", count=None, probability=0.25, seed=1)
        emulator.inject_fault("drop", count=None, probability=0.2, seed=2, after_accept=True)
        emulator.inject_fault("errcode", count=None, probability=0.1, seed=3)
        policy = RetryPolicy(max_attempts=12, base_delay=0.001, max_delay=0.005)
        clock = FakeClock(emulator.clock.time())
        with Robot(url, secret=SECRET, retry=policy, clock=clock, rate="1000/1s") as robot:
            results = [robot.send(f"alert {i}") for i in range(40)]
        delivered_once(dingtalk_emulator, results)
        assert sum(r.attempts for r in results) > 40  # faults did fire
        assert emulator.stats().robots["ops"].duplicates > 0  # and msgUuid absorbed them

    @pytest.mark.anyio
    async def test_async_retries(self, dingtalk_emulator: EmulatorServer, url: str) -> None:
        dingtalk_emulator.emulator.inject_fault("drop", count=1, after_accept=True)
        dingtalk_emulator.emulator.inject_fault("errcode", count=1)
        async with AsyncRobot(url, secret=SECRET, retry=FAST) as robot:
            result = await robot.send("hello")
        assert result.attempts == 3
        delivered_once(dingtalk_emulator, [result])

    def test_giving_up_raises_the_last_error(
        self, dingtalk_emulator: EmulatorServer, url: str
    ) -> None:
        dingtalk_emulator.emulator.inject_fault("http500", count=None)
        with Robot(url, secret=SECRET, retry=FAST) as robot:
            with pytest.raises(dingpush.ProtocolError):
                robot.send("x")
        assert len(dingtalk_emulator.emulator.requests()) == 4

    def test_per_send_override(self, dingtalk_emulator: EmulatorServer, url: str) -> None:
        dingtalk_emulator.emulator.inject_fault("http500", count=None)
        with Robot(url, secret=SECRET, retry=FAST) as robot:
            with pytest.raises(dingpush.ProtocolError):
                robot.send("x", retry=2)
        assert len(dingtalk_emulator.emulator.requests()) == 2


class TestPermanentErrors:
    @pytest.mark.parametrize(
        ("setup", "error"),
        [
            (lambda s: s.emulator.update_robot("ops", secret="SECanother"), "SecurityRejected"),
            (lambda s: s.emulator.update_robot("ops", status="disabled"), "RobotUnavailable"),
            (lambda s: s.emulator.update_robot("ops", keywords=("K",)), "SecurityRejected"),
            (lambda s: s.emulator.inject_fault("errcode", errcode=460101), "MessageTooLarge"),
            (lambda s: s.emulator.inject_fault("errcode", errcode=430102), "ContentRejected"),
            (lambda s: s.emulator.inject_fault("errcode", errcode=40035), "InvalidRequest"),
            (lambda s: s.emulator.remove_robot("ops"), "TokenNotFound"),
        ],
        ids=lambda v: v if isinstance(v, str) else "",
    )
    def test_raise_at_once(
        self,
        dingtalk_emulator: EmulatorServer,
        url: str,
        setup: Callable[[EmulatorServer], object],
        error: str,
    ) -> None:
        setup(dingtalk_emulator)
        with Robot(url, secret=SECRET, retry=FAST) as robot:
            with pytest.raises(getattr(dingpush, error)):
                robot.send("x")
        assert len(dingtalk_emulator.emulator.requests()) == 1


def horizon(policy: RetryPolicy, rand: float) -> tuple[int, float]:
    """Attempts, and seconds of back-off from the first failure, until ``policy`` gives up on a
    send whose every attempt fails at once (the jitter drawn as ``rand`` each time)."""
    busy = dingpush.ServerBusy(-1, "系统繁忙")
    attempt, elapsed = 1, 0.0
    while (decision := policy.decide(busy, attempt=attempt, elapsed=elapsed, rand=rand)).delay:
        attempt, elapsed = attempt + 1, elapsed + decision.delay
    assert decision.kind == "give_up"
    return attempt, elapsed


class TestHorizon:
    """The docs state the real horizons; computed here from the policies, they cannot drift."""

    DOCS = pathlib.Path(__file__).parent.parent / "docs"

    def test_the_library_gives_up_when_delivery_md_says(self) -> None:
        low, high = horizon(RetryPolicy(), 0.0), horizon(RetryPolicy(), 0.999999)
        assert low[0] == high[0] == 4
        stated = f"{low[1]:.1f}–{high[1]:.1f} s"
        assert stated == "3.5–4.4 s"
        text = (self.DOCS / "delivery.md").read_text(encoding="utf-8")
        assert text.count(stated) >= 2  # the table and the prose

    def test_the_relay_gives_up_after_give_up_after_as_relay_md_says(self) -> None:
        from dingpush import parse_duration
        from dingpush.relay import RelaySettings
        from dingpush.relay._settings import RELAY_RETRY

        settings = RelaySettings()
        text = (self.DOCS / "relay.md").read_text(encoding="utf-8")
        (row,) = re.findall(r"^\| `give_up_after` \| `([^`]+)` \|", text, re.MULTILINE)
        assert parse_duration(row) == settings.give_up_after == 86400
        assert 'give_up_after = "24h"' in text and "1.6 h" not in text
        for rand in (0.0, 0.5, 0.999999):
            attempts, seconds = horizon(settings.retry_policy, rand)
            # The last attempt comes within the horizon, less than one longest back-off before it.
            longest = RELAY_RETRY.max_delay * (1 + RELAY_RETRY.jitter)
            assert settings.give_up_after - longest < seconds <= settings.give_up_after
            assert attempts > 100  # no count ends it
        # The policy it replaced: twelve attempts, over before the first half hour (median).
        old = dataclasses.replace(RELAY_RETRY, max_attempts=12)
        attempts, seconds = horizon(old, 0.5)
        assert attempts == 12 and round(seconds, 1) == 1750.9
        assert "29 minutes" in text
