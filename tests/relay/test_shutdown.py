"""Graceful shutdown of ``dingpush serve`` on SIGTERM and SIGINT, as a real process.

The relay runs as a subprocess with an SQLite outbox; the emulator answers its one message
slowly (a ``delay`` fault), so the message is in flight when the signal arrives. Afterwards the
outbox is read with ``SQLiteStore``: the message is back in the queue (or delivered), never left
``sending`` under a lease. Nothing asserts a duration; waits are bounds.
"""

from __future__ import annotations

import asyncio
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from dingpush.relay.stores import OutboxMessage, SQLiteStore, Status
from dingpush.testing import EmulatorServer

from ._support import text

#: Longer than any bound below: the message stays in flight unless the relay lets it go.
FOREVER = 600.0


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    # Its own server: a delayed answer outlives the test, and this one is cut off at the end
    # (the session's emulator would wait for it, or record it into the next test).
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def slow_robot(emulator: EmulatorServer) -> Iterator[EmulatorServer]:
    emulator.emulator.reset(robots=True)
    emulator.add_robot("ops")
    yield emulator
    emulator.emulator.clear_faults()


class _Relay:
    """``dingpush serve --config`` in a subprocess, its stderr kept in a file."""

    def __init__(self, folder: pathlib.Path, webhook: str, *, shutdown_deadline: str) -> None:
        config = folder / "dingpush.toml"
        config.write_text(
            f'[targets.ops]\nwebhook = "{webhook}"\n\n'
            f'[relay]\nport = 0\nstore = "outbox.sqlite"\nlease = "300s"\n'
            f'shutdown_deadline = "{shutdown_deadline}"\n',
            encoding="utf-8",
        )
        self.outbox = folder / "outbox.sqlite"
        self.stderr_path = folder / "stderr.txt"
        command = [sys.executable, "-m", "dingpush", "serve", "--config", str(config)]
        with self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                command, cwd=folder, stdout=subprocess.PIPE, stderr=stderr, text=True
            )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        assert first.startswith("dingpush relay listening on "), first
        self.url = first.split()[4]

    def send(self, content: str) -> str:
        reply = httpx.post(
            f"{self.url}/v1/messages", json={"target": "ops", "message": text(content)}
        )
        assert reply.status_code == 202, reply.text
        return str(reply.json()["id"])

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def wait(self) -> int:
        try:
            return self.process.wait(timeout=60)
        finally:
            assert self.process.stdout is not None
            self.process.stdout.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")

    def stored(self, message_id: str) -> OutboxMessage:
        async def read() -> OutboxMessage:
            async with SQLiteStore(self.outbox) as store:
                return await store.get(message_id)

        return asyncio.run(read())


def _until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)


def _in_flight(server: EmulatorServer) -> Callable[[], bool]:
    # The delay fault is taken when the request arrives, before the emulator waits.
    return lambda: not server.emulator.faults()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_releases_a_send_still_in_flight_at_the_deadline_and_exits_0(
    slow_robot: EmulatorServer, tmp_path: pathlib.Path, sig: signal.Signals
) -> None:
    slow_robot.emulator.inject_fault("delay", delay=FOREVER)
    relay = _Relay(tmp_path, slow_robot.webhook_url("ops"), shutdown_deadline="1s")
    try:
        message_id = relay.send("deploy done")
        _until(_in_flight(slow_robot), "the send to reach the emulator")
        relay.signal(sig)
        assert relay.wait() == 0, relay.stderr
    finally:
        relay.stop()
    assert "releasing them to the queue" in relay.stderr
    assert "Traceback" not in relay.stderr
    # The outbox was closed: SQLite removes the WAL file when its last connection closes.
    assert not relay.outbox.with_name("outbox.sqlite-wal").exists()
    stored = relay.stored(message_id)
    assert stored.status is Status.QUEUED  # not `sending` until a 300 s lease runs out
    assert stored.lease_until is None
    assert stored.attempts == 0  # released untried: the next start sends the same msgUuid


@pytest.mark.slow
def test_sigterm_lets_a_send_finish_within_the_deadline(
    slow_robot: EmulatorServer, tmp_path: pathlib.Path
) -> None:
    slow_robot.emulator.inject_fault("delay", delay=0.5)
    relay = _Relay(tmp_path, slow_robot.webhook_url("ops"), shutdown_deadline="60s")
    try:
        message_id = relay.send("deploy done")
        _until(_in_flight(slow_robot), "the send to reach the emulator")
        relay.signal(signal.SIGTERM)
        assert relay.wait() == 0, relay.stderr
    finally:
        relay.stop()
    assert "Traceback" not in relay.stderr
    # One line per delivery outcome, without -v (issue 15).
    assert f"delivery outcome=delivered target=ops id={message_id} attempts=1" in relay.stderr
    stored = relay.stored(message_id)
    assert stored.status is Status.DELIVERED
    assert [m.msg_uuid for m in slow_robot.emulator.messages()] == [message_id]


@pytest.mark.slow
def test_a_second_signal_stops_waiting_and_releases_at_once(
    slow_robot: EmulatorServer, tmp_path: pathlib.Path
) -> None:
    slow_robot.emulator.inject_fault("delay", delay=FOREVER)
    # A deadline the process would outlive the test's bound by, were it not hurried.
    relay = _Relay(tmp_path, slow_robot.webhook_url("ops"), shutdown_deadline="10m")
    try:
        message_id = relay.send("deploy done")
        _until(_in_flight(slow_robot), "the send to reach the emulator")
        relay.signal(signal.SIGTERM)
        _until(lambda: "Finished server process" in relay.stderr, "the API to stop")
        relay.signal(signal.SIGINT)  # Ctrl+C while the dispatcher waits for the send
        assert relay.wait() == 0, relay.stderr
    finally:
        relay.stop()
    assert "when hurried: releasing them to the queue" in relay.stderr
    assert relay.stored(message_id).status is Status.QUEUED
