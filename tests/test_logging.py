"""dingpush.logging.DingTalkHandler: never blocks the application, loses nothing silently."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import textwrap
import threading
import typing

import httpx
import pytest

from dingpush import MemoryRateLimiter, Robot
from dingpush.logging import MAX_BYTES_LIMIT, DingTalkHandler, fold_traceback, mask_secrets
from dingpush.lowlevel import WEBHOOK_BODY_LIMIT
from dingpush.testing import EmulatorServer, FakeClock

TOKEN = "6c2a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8e9f0"
SECRET = "SEC0123456789abcdef0123456789abcdef"
WEBHOOK = f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"


class BlockingDingTalk:
    """A DingTalk stand-in whose first request waits until the test releases it."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.release = threading.Event()
        self.entered = threading.Event()
        self.requests: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.entered.set()
        assert self.release.wait(60), "the test never released the network"
        with self._lock:
            self.requests.append((self.clock.time(), request.content))
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok"})

    def texts(self) -> list[str]:
        return [json.loads(body)["markdown"]["text"] for _, body in self.requests]


def robot_for(fake: BlockingDingTalk) -> Robot:
    return Robot(
        WEBHOOK,
        secret=SECRET,
        transport=httpx.MockTransport(fake),
        clock=fake.clock,
        limiter=MemoryRateLimiter(fake.clock),
    )


@pytest.fixture
def logger() -> typing.Iterator[logging.Logger]:
    log = logging.getLogger("tests.dingtalk_handler")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def test_a_burst_from_eight_threads_never_waits_on_the_network(logger: logging.Logger) -> None:
    fake = BlockingDingTalk(FakeClock())
    handler = DingTalkHandler(robot_for(fake), queue_size=2000, linger=0, flush_timeout=30)
    logger.addHandler(handler)
    logger.error("first")  # the worker takes it and blocks in the network
    assert fake.entered.wait(10)

    def burst(thread: int) -> None:
        for index in range(1250):
            if index % 100 == 0:
                try:
                    raise ValueError(f"boom {thread}-{index}")
                except ValueError:
                    logger.exception("record %d-%d", thread, index)
            else:
                logger.error("record %d-%d", thread, index)

    threads = [threading.Thread(target=burst, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # Every application call returned while DingTalk had not answered a single request.
    assert not any(thread.is_alive() for thread in threads)
    assert not fake.release.is_set() and fake.requests == []
    during = handler.stats()
    assert during.emitted == 10_001 and during.dropped > 0

    fake.release.set()
    handler.flush(timeout=60)
    stats = handler.stats()
    assert stats.pending == 0 and stats.failed == 0
    assert stats.sent + stats.dropped == 10_001

    texts = fake.texts()
    delivered = re.findall(r"record (\d+)-(\d+)", "\n".join(texts))
    assert len(delivered) == len(set(delivered)) == stats.sent - 1  # "first" has no number
    reported = sum(int(n) for n in re.findall(r"⚠️ (\d+) record\(s\) dropped", "\n".join(texts)))
    assert reported == stats.dropped  # every drop was told in a later message
    for _, body in fake.requests:
        assert len(body) <= 20_000  # DingTalk's limit on the body, as sent
    stamps = [stamp for stamp, _ in fake.requests]
    for index, stamp in enumerate(stamps):  # the robot's 20 messages a minute, on its clock
        assert sum(1 for other in stamps[index:] if other - stamp < 60) <= 20
    assert stats.messages == len(fake.requests) < stats.sent / 20  # bursts were merged


def test_tracebacks_are_folded_and_secrets_masked(logger: logging.Logger) -> None:
    fake = BlockingDingTalk(FakeClock())
    fake.release.set()
    handler = DingTalkHandler(robot_for(fake), linger=0, secrets=["hunter2-database"])
    logger.addHandler(handler)

    def level(depth: int) -> None:
        if depth == 0:
            raise ZeroDivisionError("division by zero")
        level(depth - 1)

    try:
        level(6)
    except ZeroDivisionError:
        logger.exception(
            "sync failed for %s with password hunter2-database token=abcdef123456 %s",
            WEBHOOK,
            SECRET,
        )
    handler.flush(timeout=30)
    (text,) = fake.texts()
    for secret in (TOKEN, SECRET, "hunter2-database", "abcdef123456"):
        assert secret not in text
    assert "access\\_token=6c2a…e9f0" in text
    assert "ZeroDivisionError: division by zero" in text
    assert "outer frame(s)" in text and "Traceback (most recent call last)" not in text
    assert text.count("> ") <= 6  # the exception, the elision and three frames


def test_fold_traceback_keeps_the_exception_and_the_innermost_frames() -> None:
    try:
        try:
            empty: dict[str, int] = {}
            empty["missing"]
        except KeyError as exc:
            raise RuntimeError("lookup failed") from exc
    except RuntimeError:
        folded = fold_traceback(sys.exc_info(), frames=1)
    assert folded[0] == "RuntimeError: lookup failed"
    assert folded[-1] == "caused by KeyError: 'missing'"
    assert fold_traceback(None) == []


def test_mask_secrets() -> None:
    text = "url dingtalk://SECabc@tok123456789012345 Authorization: Bearer abcdefgh12345678"
    masked = mask_secrets(text)
    assert "tok123456789012345" not in masked and "abcdefgh12345678" not in masked
    assert mask_secrets("password=****") == "password=****"  # masking twice changes nothing


def test_records_of_the_handlers_own_sending_are_ignored() -> None:
    fake = BlockingDingTalk(FakeClock())
    fake.release.set()
    root = logging.getLogger()
    handler = DingTalkHandler(robot_for(fake), level=logging.DEBUG, linger=0)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        logging.getLogger("tests.app").error("only this")
        handler.flush(timeout=30)
        handler.flush(timeout=0.2)  # httpx logs its request from the worker: not sent again
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
    assert len(fake.requests) == 1 and handler.stats().sent == 1


def test_a_formatter_is_respected(logger: logging.Logger) -> None:
    fake = BlockingDingTalk(FakeClock())
    fake.release.set()
    handler = DingTalkHandler(robot_for(fake), linger=0)
    handler.setFormatter(logging.Formatter("[%(process)d] %(message)s"))
    logger.addHandler(handler)
    logger.error("formatted")
    handler.flush(timeout=30)
    assert re.search(r"\\\[\d+\\\] formatted", fake.texts()[0])  # escaped: shown as typed


def test_close_is_bounded_and_counts_what_it_could_not_send(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = BlockingDingTalk(FakeClock())
    handler = DingTalkHandler(robot_for(fake), linger=0, flush_timeout=0.2)
    logger.addHandler(handler)
    logger.error("stuck")
    assert fake.entered.wait(10)
    logger.error("behind it")
    handler.close()  # returns although DingTalk never answers
    stats = handler.stats()
    assert (stats.dropped, stats.pending) == (2, 0)
    assert "2 log record(s) not sent to DingTalk before exit" in capsys.readouterr().err
    logger.error("after close")
    assert handler.stats().dropped == 3
    fake.release.set()


class FakeRelay:
    """``POST /v1/messages`` of a dingpush relay, answering from a script."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.posts: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.posts.append(request)
        status = self.statuses.pop(0) if self.statuses else 202
        body = {"id": "x", "status": "queued"} if status == 202 else {"detail": "nope"}
        return httpx.Response(status, json=body)


def test_relay_sends_are_retried_with_one_idempotency_key(logger: logging.Logger) -> None:
    relay = FakeRelay([503, 503])
    handler = DingTalkHandler(
        relay="http://relay.example",
        target="ops",
        token="relay-api-token-0123456789",
        linger=0,
        transport=httpx.MockTransport(relay),
    )
    logger.addHandler(handler)
    logger.error("disk full")
    handler.flush(timeout=30)
    assert [p.url.path for p in relay.posts] == ["/v1/messages"] * 3
    assert len({p.headers["Idempotency-Key"] for p in relay.posts}) == 1
    assert relay.posts[0].headers["Authorization"] == "Bearer relay-api-token-0123456789"
    body = json.loads(relay.posts[0].content)
    assert body["target"] == "ops" and body["message"]["msgtype"] == "markdown"
    assert handler.stats().sent == 1


def test_a_refused_message_is_counted_and_reported_next(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    relay = FakeRelay([422])
    handler = DingTalkHandler(
        relay="http://relay.example", target="ops", linger=0, transport=httpx.MockTransport(relay)
    )
    logger.addHandler(handler)
    logger.error("first")
    handler.flush(timeout=30)
    assert handler.stats().failed == 1
    assert "1 record(s) not sent: the relay answered 422" in capsys.readouterr().err
    logger.error("second")
    handler.flush(timeout=30)
    text = json.loads(relay.posts[-1].content)["message"]["markdown"]["text"]
    assert "⚠️ 1 record(s) could not be sent: the relay answered 422" in text
    assert handler.stats().sent == 1


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="one"):
        DingTalkHandler()
    with pytest.raises(ValueError, match="target"):
        DingTalkHandler(relay="http://relay.example")


def test_records_queued_at_exit_are_sent(dingtalk_emulator: EmulatorServer) -> None:
    dingtalk_emulator.add_robot("logs", "logs-token", secret=SECRET)
    script = textwrap.dedent(
        f"""
        import logging
        from dingpush.logging import DingTalkHandler

        log = logging.getLogger("app")
        log.addHandler(DingTalkHandler({dingtalk_emulator.webhook_url("logs")!r},
                                       secret={SECRET!r}, linger=30))
        log.error("exiting with %d jobs left", 3)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    (message,) = dingtalk_emulator.emulator.messages()
    assert "exiting with 3 jobs left" in message.payload["markdown"]["text"]


def test_a_record_that_escaping_grows_is_cut_to_fit_one_body(logger: logging.Logger) -> None:
    # The handler cuts a record's text in bytes before it is escaped (markdown, then JSON:
    # '"' and '\\' take two bytes each in the body). The body DingTalk counts is what must fit:
    # a record of quotes with a traceback of backslashes was a 40,698-byte body, refused.
    fake = BlockingDingTalk(FakeClock())
    fake.release.set()
    handler = DingTalkHandler(robot_for(fake), linger=0)
    logger.addHandler(handler)
    try:
        raise ValueError("\\" * 20_000)
    except ValueError:
        logger.exception('"' * 20_000)
    handler.flush(timeout=30)
    assert handler.stats().failed == 0
    ((_, body),) = fake.requests
    assert len(body) <= WEBHOOK_BODY_LIMIT
    (text,) = fake.texts()
    assert '"' * 1000 in text and "… (cut)" in text


@pytest.mark.parametrize(
    "max_bytes", [999, MAX_BYTES_LIMIT + 1, 20_000, 18_000.5, "18000", None, True, 10**30]
)
def test_max_bytes_outside_what_one_body_holds_is_refused_with_the_bound(max_bytes: object) -> None:
    # 18000.5 was taken, then killed the worker thread at the first record (records lost).
    with pytest.raises(ValueError, match=f"between 1000 and {MAX_BYTES_LIMIT}"):
        DingTalkHandler(
            f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}",
            max_bytes=max_bytes,  # type: ignore[arg-type]
        )


def test_the_largest_max_bytes_still_makes_a_body_dingtalk_takes(logger: logging.Logger) -> None:
    # Many records at the bound, each of quotes and backslashes (escaping doubles them), under a
    # long logger name: the packed message's body stays within DingTalk's limit.
    fake = BlockingDingTalk(FakeClock())
    handler = DingTalkHandler(robot_for(fake), linger=0, max_bytes=MAX_BYTES_LIMIT)
    named = logging.getLogger("a." + "very_long_logger_name_" * 20)
    named.addHandler(handler)
    named.propagate = False
    try:
        for n in range(40):
            named.error('"\\' * 300 + f" record {n}")
        fake.release.set()
        handler.flush(timeout=30)
    finally:
        named.removeHandler(handler)
        handler.close()
    assert handler.stats().failed == 0
    assert fake.requests and all(len(body) <= WEBHOOK_BODY_LIMIT for _, body in fake.requests)
