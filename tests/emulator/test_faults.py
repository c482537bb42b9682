"""Injected faults, in-process and over real loopback HTTP."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from dingpush.emulator import ConnectionDropped, Emulator, RobotConfig
from dingpush.testing import EmulatorServer

from ._support import Send, text


@pytest.mark.anyio
async def test_errcode_fault_defaults_to_system_busy(send: Send, emulator: Emulator) -> None:
    emulator.inject_fault("errcode")
    response = await send(text())
    assert (response.status_code, response.json()) == (200, {"errcode": -1, "errmsg": "系统繁忙"})
    assert (await send(text())).json()["errcode"] == 0  # count=1: used up

    faulted, normal = emulator.requests()
    assert (faulted.reason, faulted.fault, faulted.errcode, faulted.accepted) == (
        "fault",
        "errcode",
        -1,
        False,
    )
    assert faulted.msgtype == "text" and faulted.robot == "ops"
    assert normal.fault is None
    assert len(emulator.messages()) == 1
    assert emulator.faults() == []


@pytest.mark.anyio
async def test_errcode_fault_with_chosen_code_and_count(send: Send, emulator: Emulator) -> None:
    emulator.inject_fault("errcode", errcode=88, errmsg="鉴权异常", count=2)
    replies = [(await send(text())).json() for _ in range(3)]
    assert replies == [{"errcode": 88, "errmsg": "鉴权异常"}] * 2 + [{"errcode": 0, "errmsg": "ok"}]


@pytest.mark.anyio
async def test_http500_fault_answers_a_gateway_page(send: Send, emulator: Emulator) -> None:
    emulator.inject_fault("http500")
    response = await send(text())
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert "500 Internal Server Error" in response.text
    record = emulator.requests()[0]
    assert (record.http_status, record.errcode, record.fault) == (500, None, "http500")
    assert emulator.messages() == []


@pytest.mark.anyio
async def test_faults_target_a_robot_or_a_path(send: Send, emulator: Emulator) -> None:
    emulator.add_robot(RobotConfig("other", "other-token"))
    emulator.inject_fault("errcode", robot="other")
    emulator.inject_fault("errcode", path="/elsewhere", errcode=-2)
    assert (await send(text())).json()["errcode"] == 0
    assert (await send(text(), token="other-token")).json()["errcode"] == -1
    assert [f.path for f in emulator.faults()] == ["/elsewhere"]
    emulator.clear_faults()
    assert emulator.faults() == []


@pytest.mark.anyio
async def test_drop_over_asgi_transport_raises_a_transport_error(
    send: Send, emulator: Emulator
) -> None:
    emulator.inject_fault("drop")
    with pytest.raises(httpx.RemoteProtocolError) as excinfo:
        await send(text())
    assert isinstance(excinfo.value, ConnectionDropped)
    assert emulator.requests()[0].http_status is None


@pytest.mark.anyio
async def test_after_accept_errcode_keeps_the_message(send: Send, emulator: Emulator) -> None:
    emulator.inject_fault("errcode", after_accept=True)
    assert (await send(text(msgUuid="m-1"))).json()["errcode"] == -1
    assert (await send(text(msgUuid="m-1"))).json()["errcode"] == 0
    assert len(emulator.messages()) == 1
    first, retry = emulator.requests()
    assert (first.accepted, first.reason, first.errcode, first.fault) == (
        True,
        "accepted",
        -1,
        "errcode",
    )
    assert retry.reason == "duplicate"


@pytest.mark.anyio
async def test_probability_draws_are_seeded(send: Send, emulator: Emulator) -> None:
    emulator.update_robot("ops", rate_limit=1000)
    emulator.inject_fault("errcode", count=None, probability=0.3, seed=7)
    answers = [(await send(text())).json()["errcode"] for _ in range(200)]

    draws = random.Random(7)
    expected = [-1 if draws.random() < 0.3 else 0 for _ in range(200)]
    assert answers == expected
    assert 30 < answers.count(-1) < 90
    [fault] = emulator.faults()
    assert (fault.remaining, fault.fired) == (None, answers.count(-1))


@pytest.mark.anyio
async def test_delay_fault_answers_late(send: Send, emulator: Emulator) -> None:
    # Held: a caller that gives up long before the delay gets no answer at all.
    emulator.inject_fault("delay", delay=60.0)
    with anyio.move_on_after(0.05) as scope:
        await send(text())
    assert scope.cancelled_caught
    emulator.clear_faults()

    # Then answered normally, recorded as delayed.
    emulator.inject_fault("delay", delay=0.01)
    assert (await send(text())).json()["errcode"] == 0
    assert [r.fault for r in emulator.requests()][-1] == "delay"
    assert len(emulator.messages()) == 1


def test_fault_arguments_are_checked(emulator: Emulator) -> None:
    bad: list[dict[str, Any]] = [
        {"count": 0},
        {"probability": 1.5},
        {"delay": -1.0},
        {"errcode": 5},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            emulator.inject_fault("drop", **kwargs)
    with pytest.raises(ValueError, match="kind"):
        emulator.inject_fault("explode")  # type: ignore[arg-type]


# -- over real HTTP -----------------------------------------------------------------------


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for the emulator"
        time.sleep(0.01)


def test_drop_breaks_the_response_over_a_socket(dingtalk_emulator: EmulatorServer) -> None:
    dingtalk_emulator.add_robot("ops")
    dingtalk_emulator.emulator.inject_fault("drop")
    with httpx.Client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(dingtalk_emulator.webhook_url("ops"), json=text())
        assert client.post(dingtalk_emulator.webhook_url("ops"), json=text()).json()["errcode"] == 0
    assert len(dingtalk_emulator.emulator.messages()) == 1


def test_drop_after_accept_then_retry_is_exactly_once(dingtalk_emulator: EmulatorServer) -> None:
    dingtalk_emulator.add_robot("ops")
    dingtalk_emulator.emulator.inject_fault("drop", after_accept=True)
    payload = text("deploy v2.3", msgUuid="deploy-v2.3")
    with httpx.Client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(dingtalk_emulator.webhook_url("ops"), json=payload)
        retry = client.post(dingtalk_emulator.webhook_url("ops"), json=payload)
    assert retry.json() == {"errcode": 0, "errmsg": "ok"}
    emulator = dingtalk_emulator.emulator
    assert [m.msg_uuid for m in emulator.messages()] == ["deploy-v2.3"]
    assert emulator.stats().robots["ops"].duplicates == 1


def test_delay_makes_a_client_time_out(dingtalk_emulator: EmulatorServer) -> None:
    dingtalk_emulator.add_robot("ops")
    emulator = dingtalk_emulator.emulator
    emulator.inject_fault("delay", delay=0.5)
    with (
        httpx.Client(timeout=httpx.Timeout(10.0, read=0.1)) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.post(dingtalk_emulator.webhook_url("ops"), json=text(msgUuid="slow"))
    # The server carries on after the client gave up: the message still arrives.
    wait_for(lambda: emulator.requests())
    assert emulator.requests()[0].fault == "delay"
    assert [m.msg_uuid for m in emulator.messages()] == ["slow"]


def test_http500_over_a_socket(dingtalk_emulator: EmulatorServer) -> None:
    dingtalk_emulator.add_robot("ops")
    dingtalk_emulator.emulator.inject_fault("http500", robot="ops")
    with httpx.Client() as client:
        response = client.post(dingtalk_emulator.webhook_url("ops"), json=text())
    assert response.status_code == 500
    assert response.headers["server"] == "DingTalk/1.0.0"


def test_wait_idle_waits_for_a_request_its_client_gave_up_on(
    dingtalk_emulator: EmulatorServer,
) -> None:
    # A timed-out client leaves its request running in the emulator; teardown waits for it so
    # it cannot be recorded into the next test.
    dingtalk_emulator.add_robot("slow", "slow-token")
    dingtalk_emulator.emulator.inject_fault("delay", delay=0.5)
    with httpx.Client(timeout=0.05) as client, pytest.raises(httpx.TimeoutException):
        client.post(
            dingtalk_emulator.webhook_url("slow"),
            json={"msgtype": "text", "text": {"content": "late"}},
        )
    assert dingtalk_emulator.emulator.wait_idle(timeout=5.0)
    (record,) = dingtalk_emulator.emulator.requests()
    assert record.accepted
