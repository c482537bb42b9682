"""``dingpush retry``: a relay's dead letters queued again through its API."""

from __future__ import annotations

import asyncio
import json
import time
import typing
from collections.abc import Iterator

import httpx
import pytest

from dingpush import RetryPolicy
from dingpush.relay import Relay, RelayServer, RelaySettings, RobotTarget, TargetOptions
from dingpush.relay.stores import MemoryStore, NewMessage
from dingpush.testing import EmulatorServer

from .conftest import Runner

API_TOKEN = "retry-command-api-token-0123456789"


FAST = RetryPolicy(max_attempts=8, base_delay=0.005, max_delay=0.05, jitter=0.0)


def text(content: str) -> dict[str, object]:
    return {"msgtype": "text", "text": {"content": content}}


def _wait(check: typing.Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within 30 s"
        time.sleep(0.02)


class Served(typing.NamedTuple):
    url: str
    ops: list[str]
    dev: str

    def statuses(self, ids: list[str]) -> list[str]:
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        return [
            httpx.get(f"{self.url}/v1/messages/{i}", headers=headers).json()["status"] for i in ids
        ]


@pytest.fixture
def served(dingtalk_emulator: EmulatorServer, home: object) -> Iterator[Served]:
    """A relay with three dead letters of ``ops`` (300001) and one of ``dev`` (310000)."""
    emulator = dingtalk_emulator.emulator
    options = TargetOptions(coalesce=False)
    targets = []
    for name in ("ops", "dev"):
        dingtalk_emulator.add_robot(name)
        targets.append(RobotTarget(name, dingtalk_emulator.webhook_url(name), options=options))
    settings = RelaySettings(port=0, api_tokens=(API_TOKEN,), retry=FAST, idle_poll=0.2)
    relay = Relay(targets, settings=settings)
    with RelayServer(relay) as server:
        headers = {"Authorization": f"Bearer {API_TOKEN}"}

        def send(target: str, content: str) -> str:
            body = {"target": target, "message": text(content)}
            reply = httpx.post(f"{server.url}/v1/messages", json=body, headers=headers)
            return str(reply.json()["id"])

        emulator.inject_fault("errcode", errcode=300001, errmsg="token is not exist", count=3)
        ops = [send("ops", f"revoked {i}") for i in range(3)]
        emulator.inject_fault("errcode", errcode=310000, errmsg="sign not match", count=1)
        dev = send("dev", "unsigned")
        done = Served(server.url, ops, dev)
        _wait(lambda: set(done.statuses([*ops, dev])) == {"failed"}, "the dead letters")
        yield done


def test_counts_then_retries_by_target_and_errcode(served: Served, run: Runner) -> None:
    where = ("--relay", served.url, "--token", API_TOKEN)
    counted = run("retry", *where, "--target", "ops", "--errcode", "300001", "--dry-run")
    assert counted.exit_code == 0, counted.output
    assert counted.stdout == "3 dead letters match; nothing was changed\n"
    assert served.statuses(served.ops) == ["failed"] * 3

    first = run("retry", *where, "--target", "ops", "--errcode", "300001", "--limit", "2")
    assert first.exit_code == 0, first.output
    assert first.stdout == (
        "queued again: 2 dead letters (more match: run it again, or raise --limit)\n"
    )
    rest = run("retry", *where, "--errcode", "300001", "--since", "1h", "--json")
    assert rest.exit_code == 0, rest.output
    answer = json.loads(rest.stdout)
    assert answer == {
        "ok": True,
        "retried": 1,
        "ids": served.ops[2:],
        "more": False,
        "dry_run": False,
        "cancelled_left_out": 0,
    }
    _wait(lambda: served.statuses(served.ops) == ["delivered"] * 3, "the retried deliveries")
    assert served.statuses([served.dev]) == ["failed"]
    nothing = run("retry", *where, "--target", "ops")
    assert nothing.stdout == "no dead letter matches\n"
    assert API_TOKEN not in "".join(r.output for r in (counted, first, rest, nothing))


def test_refusals_say_what_to_do(served: Served, run: Runner) -> None:
    unauthorised = run("retry", "--relay", served.url)
    assert unauthorised.exit_code == 3
    assert "wants one of its API tokens: pass --token or set DINGPUSH_RELAY_TOKEN" in (
        unauthorised.stderr
    )
    where = ("--relay", served.url, "--token", API_TOKEN)
    unknown = run("retry", *where, "--target", "nope")
    assert unknown.exit_code == 2 and "no target named 'nope'" in unknown.stderr
    assert "ops" in unknown.stderr and API_TOKEN not in unknown.output
    when = run("retry", *where, "--since", "last tuesday")
    assert when.exit_code == 2 and "neither a duration" in when.stderr
    for edge in ("0001-01-01T00:00",):  # local time to UTC reached year 0: a traceback
        far = run("retry", *where, "--until", edge)
        assert far.exit_code == 2 and "--until" in far.stderr and "Traceback" not in far.output
    assert served.statuses([*served.ops, served.dev]) == ["failed"] * 4


def test_an_unreachable_relay_is_a_transport_error(run: Runner, home: object) -> None:
    result = run("retry", "--relay", "http://127.0.0.1:9", "--json")
    assert result.exit_code == 6
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "TransportError" and "dingpush serve" in error["message"]


def test_a_recalled_message_is_retried_only_by_errcode_cancelled(
    dingtalk_emulator: EmulatorServer, run: Runner, home: object
) -> None:
    """Recalled while queued = cancelled: ``dingpush retry --target ops`` must not send it."""
    dingtalk_emulator.add_robot("ops")
    store = MemoryStore()
    payload = json.dumps(text("recalled"))
    later = time.time() + 3600
    new = NewMessage(target="ops", kind="text", payload=payload, due_at=later)
    message_id = asyncio.run(store.enqueue(new)).id
    target = RobotTarget("ops", dingtalk_emulator.webhook_url("ops"), options=TargetOptions())
    settings = RelaySettings(port=0, api_tokens=(API_TOKEN,), retry=FAST, idle_poll=0.2)
    with RelayServer(Relay([target], store=store, settings=settings)) as server:
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        recall = httpx.post(f"{server.url}/v1/messages/{message_id}/recall", headers=headers)
        assert recall.json()["outcome"] == "cancelled"
        where = ("--relay", server.url, "--token", API_TOKEN)
        left = run("retry", *where, "--target", "ops")
        assert left.exit_code == 0 and left.stdout == "no dead letter matches\n", left.output
        assert "1 recalled before sending was left out: --errcode cancelled" in left.stderr
        asked = run("retry", *where, "--errcode", "cancelled")
        assert asked.stdout == "queued again: 1 dead letter\n", asked.output
