"""Outbox ingest: durable enqueues per second with many concurrent producers.

    python -m bench.outbox_ingest [--seconds 5] [--producers 64] [--rounds 3] [--json]

Side by side in one run, on the same disk:

* ``sqlite3 fsync-per-commit``: the raw rate of one connection committing each INSERT on its own
  (WAL, ``synchronous=FULL``): the ceiling without group commit;
* ``SQLiteStore, group commit off``: the store with every write in its own transaction;
* ``SQLiteStore, group commit``: the default, where concurrent enqueues share one fsync;
* ``MemoryStore``: the same producers with no disk at all (the Python overhead).

Each enqueue carries a ~400-byte markdown alert and an idempotency key, as the relay's
``POST /v1/messages`` would store it. Figures are medians over the rounds; the machine may be
shared, so compare the rows of one run rather than runs on different days. This module stands on
its own (``run()`` returns the rows) so the bench harness can register it as a scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import pathlib
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass

from dingpush.relay.stores import MemoryStore, NewMessage, OutboxStore, SQLiteStore

PAYLOAD = json.dumps(
    {
        "msgtype": "markdown",
        "markdown": {
            "title": "CPU alert",
            "text": "### 🔥 web-01 CPU 97%\n\n- **severity**: critical\n- **since**: "
            "2026-11-28 13:05:00 +08:00\n- **runbook**: https://runbooks.example.com/cpu\n\n"
            "> 磁盘和 CPU 告警：请值班同学尽快处理。@ops-lead",
        },
        "at": {"atUserIds": ["ops-lead"], "isAtAll": False},
    },
    ensure_ascii=False,
)


@dataclass(frozen=True)
class Row:
    scenario: str
    accepts_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    mean_batch: float | None
    accepted: int


def _message(n: int) -> NewMessage:
    return NewMessage(
        target=f"team-{n % 8}",
        kind="markdown",
        payload=PAYLOAD,
        idempotency_key=f"bench-{uuid.uuid4().hex}",
    )


async def _producers(store: OutboxStore, producers: int, seconds: float) -> tuple[int, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    counter = iter(range(1 << 62))

    async def produce() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await store.enqueue(_message(next(counter)))
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(produce() for _ in range(producers)))
    return len(latencies), latencies


async def _store_round(
    name: str, make: Callable[[], OutboxStore], producers: int, seconds: float
) -> Row:
    async with make() as store:
        started = time.perf_counter()
        accepted, latencies = await _producers(store, producers, seconds)
        elapsed = time.perf_counter() - started
        batch = store.write_stats().mean_batch if isinstance(store, SQLiteStore) else None
    cuts = statistics.quantiles(latencies, n=100)
    return Row(name, accepted / elapsed, cuts[49] * 1000, cuts[98] * 1000, batch, accepted)


def _raw_round(path: pathlib.Path, seconds: float) -> Row:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS m (id TEXT PRIMARY KEY, key TEXT UNIQUE, body TEXT)")
    accepted, latencies = 0, []
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO m VALUES (:id, :key, :body)",
            {"id": str(uuid.uuid4()), "key": uuid.uuid4().hex, "body": PAYLOAD},
        )
        conn.execute("COMMIT")
        latencies.append(time.perf_counter() - began)
        accepted += 1
    elapsed = time.perf_counter() - started
    conn.close()
    cuts = statistics.quantiles(latencies, n=100)
    return Row(
        "sqlite3 fsync-per-commit (1 writer)",
        accepted / elapsed,
        cuts[49] * 1000,
        cuts[98] * 1000,
        1.0,
        accepted,
    )


def run(
    *, seconds: float = 5.0, producers: int = 64, rounds: int = 3, directory: str | None = None
) -> list[Row]:
    """Run every scenario ``rounds`` times, interleaved, and return the median row of each."""
    results: dict[str, list[Row]] = {}
    with tempfile.TemporaryDirectory(prefix="dingpush-bench-", dir=directory) as tmp:
        for round_number in range(rounds):
            folder = pathlib.Path(tmp) / f"round-{round_number}"
            folder.mkdir()
            rows = [
                _raw_round(folder / "raw.sqlite", seconds),
                asyncio.run(
                    _store_round(
                        f"SQLiteStore, group commit off ({producers} producers)",
                        functools.partial(
                            SQLiteStore, folder / "single.sqlite", group_commit=False
                        ),
                        producers,
                        seconds,
                    )
                ),
                asyncio.run(
                    _store_round(
                        f"SQLiteStore, group commit ({producers} producers)",
                        functools.partial(SQLiteStore, folder / "group.sqlite"),
                        producers,
                        seconds,
                    )
                ),
                asyncio.run(
                    _store_round(
                        f"MemoryStore ({producers} producers)", MemoryStore, producers, seconds
                    )
                ),
            ]
            for row in rows:
                results.setdefault(row.scenario, []).append(row)
    return [_median(rows) for rows in results.values()]


def _median(rows: list[Row]) -> Row:
    return sorted(rows, key=lambda r: r.accepts_per_s)[len(rows) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each round")
    parser.add_argument("--producers", type=int, default=64, help="concurrent async producers")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--dir", default=None, help="where the database files go (same disk!)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    rows = run(
        seconds=args.seconds, producers=args.producers, rounds=args.rounds, directory=args.dir
    )
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return
    print(
        f"outbox ingest, {os.cpu_count()} CPUs, SQLite {sqlite3.sqlite_version}, "
        f"{args.rounds} x {args.seconds:g} s, median round"
    )
    print(f"{'scenario':<44} {'accepts/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'batch':>6}")
    for r in rows:
        p50 = "-" if r.p50_ms is None else f"{r.p50_ms:.2f}"
        p99 = "-" if r.p99_ms is None else f"{r.p99_ms:.2f}"
        batch = "-" if r.mean_batch is None else f"{r.mean_batch:.1f}"
        print(f"{r.scenario:<44} {r.accepts_per_s:>10,.0f} {p50:>8} {p99:>8} {batch:>6}")
    raw = next(r for r in rows if r.scenario.startswith("sqlite3"))
    group = next(r for r in rows if "group commit (" in r.scenario)
    print(
        f"group commit: {group.accepts_per_s / raw.accepts_per_s:.1f}x the raw "
        "fsync-per-commit rate"
    )


if __name__ == "__main__":
    main()
