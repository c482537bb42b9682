"""Outbox ingest on PostgreSQL beside SQLite: durable enqueues per second, one store alone.

    python -m bench.outbox_ingest_pg [--dsn postgresql://postgres@127.0.0.1:5432/test]
        [--seconds 5] [--producers 64] [--rounds 3] [--pool 10] [--json]

The same 64 async producers as ``bench/outbox_ingest.py`` (a ~400-byte markdown alert with an
idempotency key per enqueue) against, in one run, interleaved round by round:

* ``SQLiteStore``, group commit (the embedded default), for comparison;
* ``PostgresStore`` with a pool of ``--pool`` connections: each enqueue is one INSERT committed
  on its own (``synchronous_commit = on``), PostgreSQL's own group commit sharing the WAL
  flushes of concurrent commits;
* two ``PostgresStore`` objects on one schema, the producers split between them: two relay
  instances' stores in one process (so one Python process's CPU still bounds it).

Each PostgreSQL round uses a fresh schema, dropped afterwards. Figures are medians over the
rounds; the machine may be shared (the database server runs on it too), so compare rows of
one run, not runs on different days. The store alone is measured, not the HTTP layer.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import pathlib
import statistics
import tempfile
import time
import uuid
from dataclasses import asdict

import psycopg
from psycopg import sql

from bench.outbox_ingest import Row, _median, _message, _store_round
from dingpush.relay.stores import OutboxStore, PostgresStore, SQLiteStore

DEFAULT_DSN = os.environ.get("DINGPUSH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


async def _split_round(name: str, stores: list[OutboxStore], producers: int, seconds: float) -> Row:
    """The producers spread over several stores (instances) writing to one outbox."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    counter = iter(range(1 << 62))

    async def produce(store: OutboxStore) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await store.enqueue(_message(next(counter)))
            latencies.append(time.perf_counter() - started)

    for store in stores:
        await store.open()
    try:
        started = time.perf_counter()
        await asyncio.gather(*(produce(stores[n % len(stores)]) for n in range(producers)))
        elapsed = time.perf_counter() - started
        batches = [s.write_stats() for s in stores if isinstance(s, PostgresStore)]
    finally:
        for store in stores:
            await store.aclose()
    cuts = statistics.quantiles(latencies, n=100)
    statements = sum(b.statements for b in batches)
    batch = sum(b.requests for b in batches) / statements if statements else None
    return Row(
        name, len(latencies) / elapsed, cuts[49] * 1000, cuts[98] * 1000, batch, len(latencies)
    )


def _drop(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def run(
    *,
    dsn: str = DEFAULT_DSN,
    seconds: float = 5.0,
    producers: int = 64,
    rounds: int = 3,
    pool: int = 10,
) -> list[Row]:
    """Run every scenario ``rounds`` times, interleaved, and return the median row of each."""
    results: dict[str, list[Row]] = {}
    with tempfile.TemporaryDirectory(prefix="dingpush-bench-") as tmp:
        for round_number in range(rounds):
            folder = pathlib.Path(tmp) / f"round-{round_number}"
            folder.mkdir()
            one, two = (f"bench_{uuid.uuid4().hex[:12]}" for _ in range(2))
            try:
                rows = [
                    asyncio.run(
                        _store_round(
                            f"SQLiteStore, group commit ({producers} producers)",
                            functools.partial(SQLiteStore, folder / "group.sqlite"),
                            producers,
                            seconds,
                        )
                    ),
                    asyncio.run(
                        _split_round(
                            f"PostgresStore, pool {pool} ({producers} producers)",
                            [PostgresStore(dsn, schema=one, pool_size=pool)],
                            producers,
                            seconds,
                        )
                    ),
                    asyncio.run(
                        _split_round(
                            f"2 x PostgresStore, pool {pool} each ({producers} producers)",
                            [PostgresStore(dsn, schema=two, pool_size=pool) for _ in range(2)],
                            producers,
                            seconds,
                        )
                    ),
                ]
            finally:
                _drop(dsn, one)
                _drop(dsn, two)
            for row in rows:
                results.setdefault(row.scenario, []).append(row)
    return [_median(rows) for rows in results.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="the PostgreSQL database to use")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each round")
    parser.add_argument("--producers", type=int, default=64, help="concurrent async producers")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--pool", type=int, default=10, help="PostgresStore's pool_size")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    rows = run(
        dsn=args.dsn,
        seconds=args.seconds,
        producers=args.producers,
        rounds=args.rounds,
        pool=args.pool,
    )
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return
    with psycopg.connect(args.dsn) as conn:
        server = conn.info.parameter_status("server_version")
    print(
        f"outbox ingest, {os.cpu_count()} CPUs, PostgreSQL {server} on this machine, "
        f"{args.rounds} x {args.seconds:g} s, median round"
    )
    print(f"{'scenario':<52} {'accepts/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'batch':>6}")
    for r in rows:
        p50 = "-" if r.p50_ms is None else f"{r.p50_ms:.2f}"
        p99 = "-" if r.p99_ms is None else f"{r.p99_ms:.2f}"
        batch = "-" if r.mean_batch is None else f"{r.mean_batch:.1f}"
        print(f"{r.scenario:<52} {r.accepts_per_s:>10,.0f} {p50:>8} {p99:>8} {batch:>6}")


if __name__ == "__main__":
    main()
