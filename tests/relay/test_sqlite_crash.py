"""Crash safety: a process writing to the outbox is killed with SIGKILL, and nothing it was told
had been stored is missing afterwards; its claims come back once their lease runs out."""

from __future__ import annotations

import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from dingpush.relay.stores import SQLiteStore, Status
from dingpush.testing import FakeClock

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

WORKER = pathlib.Path(__file__).with_name("_crash_worker.py")
LEASE = 120.0


def run_and_kill(path: pathlib.Path, *, enqueued: int, claimed: int) -> dict[str, list[str]]:
    """Start the worker, read its acknowledgements until enough arrived, then SIGKILL it."""
    seen: dict[str, list[str]] = {"enqueued": [], "claimed": [], "delivered": []}
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), str(path), str(LEASE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        while len(seen["enqueued"]) < enqueued or len(seen["claimed"]) < claimed:
            line = worker.stdout.readline()
            if not line:
                raise AssertionError(f"the worker stopped early: {worker.stderr.read()}")  # type: ignore[union-attr]
            if line.endswith("\n"):  # a line cut by the kill is no acknowledgement
                kind, _, message_id = line.strip().partition(" ")
                seen[kind].append(message_id)
        os.kill(worker.pid, signal.SIGKILL)  # mid-flight: it never stops writing
        assert worker.wait() == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        for stream in (worker.stdout, worker.stderr):
            if stream is not None:
                stream.close()
    return seen


async def test_nothing_acknowledged_is_lost_when_the_process_is_killed(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "outbox.sqlite"
    seen = run_and_kill(path, enqueued=800, claimed=100)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()

    clock = FakeClock(start=time.time())
    async with SQLiteStore(path, clock=clock) as store:
        stored = {}
        cursor = None
        while True:
            page = await store.list_messages(limit=500, cursor=cursor)
            stored.update({m.id: m for m in page.items})
            if (cursor := page.next_cursor) is None:
                break
        assert set(seen["enqueued"]) <= set(stored)  # every acknowledged message is there
        delivered = set(seen["delivered"])
        assert all(stored[i].status is Status.DELIVERED for i in delivered)
        in_flight = set(seen["claimed"]) - delivered
        assert in_flight and all(stored[i].status is Status.SENDING for i in in_flight)

        # The dead process's claims come back once their lease has run out, and only then.
        assert await store.requeue_expired() == []
        clock.advance(LEASE + 1)
        requeued = set(await store.requeue_expired())
        assert in_flight <= requeued
        claims = await store.claim(len(stored), lease=30)
        claimed_now = {c.id for c in claims}
        assert claimed_now == {i for i, m in stored.items() if m.status is not Status.DELIVERED}
        assert in_flight <= claimed_now
