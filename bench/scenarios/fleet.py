"""Several relays on one PostgreSQL database (issue 14): ingest, dispatch, failover.

Every relay is its own process (``python -m dingpush.relay --config``) with
``store = "postgresql://…"`` and a schema of the run's own, dropped afterwards; the SQLite
rows are the single relay of the same run, for comparison. PostgreSQL runs on the same 2-core
machine as the relays, the load generator and the emulator: compare rows of one run. With
``BENCH_BASE_PYTHON`` set to another checkout's interpreter, ``fleet-dispatch`` runs that
checkout's fleet too, its rounds interleaved with this one's.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import statistics
import sys
import time
import typing
import uuid
from collections.abc import Iterator, Sequence

import psycopg
from psycopg import sql

from bench import Context, Section, scenario
from bench._relay import BenchTarget, RelayProcess
from bench.loadgen import measure
from bench.outbox_ingest_pg import DEFAULT_DSN

CLIENTS = 64


@contextlib.contextmanager
def _schema() -> Iterator[str]:
    name = f"bench_fleet_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        with psycopg.connect(DEFAULT_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def _pg(
    targets: Sequence[BenchTarget], schema: str, *more: str, python: str = sys.executable
) -> RelayProcess:
    return RelayProcess(
        targets, store=DEFAULT_DSN, extra=[f'schema = "{schema}"', *more], python=python
    )


def _together(urls: Sequence[str], seconds: float) -> dict[str, typing.Any]:
    """The load generator against several instances at once, the clients split between them."""
    each = CLIENTS // len(urls)
    with concurrent.futures.ThreadPoolExecutor(len(urls)) as pool:
        results = list(pool.map(lambda url: measure(url, seconds, each), urls))
    return {
        "accepted_per_s": sum(r["accepted_per_s"] for r in results),
        "p50_ms": max(r["p50_ms"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
        "statuses": {
            s: sum(int(r["statuses"].get(s, 0)) for r in results)
            for s in {s for r in results for s in r["statuses"]}
        },
    }


def _median(results: list[dict[str, typing.Any]]) -> dict[str, typing.Any]:
    return sorted(results, key=lambda r: r["accepted_per_s"])[len(results) // 2]


@scenario("fleet-ingest", order=54)
def fleet_ingest(context: Context) -> Section:
    """Durable accepts per second over HTTP: one and two relays on PostgreSQL, one on SQLite."""
    seconds, rounds = (1.0, 1) if context.quick else (5.0, 3)
    context.emulator.reset()
    targets = [BenchTarget("bench", context.emulator.add_robot("bench", rate=(20, 60.0)))]
    runs: dict[str, list[dict[str, typing.Any]]] = {"sqlite": [], "pg1": [], "pg2": []}
    for _ in range(rounds):  # interleaved, so that a noisy neighbour slows every row alike
        with RelayProcess(targets) as relay:
            runs["sqlite"].append(measure(relay.url, seconds, CLIENTS))
        with _schema() as schema, _pg(targets, schema) as relay:
            runs["pg1"].append(measure(relay.url, seconds, CLIENTS))
        with _schema() as schema, _pg(targets, schema) as one, _pg(targets, schema) as two:
            runs["pg2"].append(_together([one.url, two.url], seconds))
    section = Section(
        "Several relays on PostgreSQL: ingest over HTTP",
        f"`python -m bench.loadgen` keeps {CLIENTS} connections busy for {seconds:g} s with "
        "`POST /v1/messages` (a ~400-byte markdown alert, a fresh `Idempotency-Key` each), "
        "against one relay on SQLite, one relay on PostgreSQL, and two relays on one "
        "PostgreSQL schema (32 connections each; p50/p99 are the worse instance's). Every 202 "
        "is committed (`synchronous_commit = on`). PostgreSQL 15 runs on the same 2-core "
        f"machine as the relays and the load generator. Median of {rounds} round(s), the rows "
        "interleaved round by round.",
        ["relays", "accepted/s", "p50 ms", "p99 ms", "answers"],
    )
    names = {
        "sqlite": "1 relay, SQLite (same run)",
        "pg1": "1 relay, PostgreSQL",
        "pg2": "2 relays, one PostgreSQL schema",
    }
    for key, label in names.items():
        result = _median(runs[key])
        section.rows.append(
            [
                label,
                f"{result['accepted_per_s']:.0f}",
                f"{result['p50_ms']:.1f}",
                f"{result['p99_ms']:.1f}",
                ", ".join(f"{n}× {s}" for s, n in sorted(result["statuses"].items())),
            ]
        )
    pg1, lite = _median(runs["pg1"]), _median(runs["sqlite"])
    met = pg1["accepted_per_s"] >= 2000 and pg1["p99_ms"] <= 50
    section.notes.append(
        f"Target: ≥ 2,000 durable accepts/s at p99 ≤ 50 ms for one instance on PostgreSQL — "
        f"measured {pg1['accepted_per_s']:,.0f}/s at p99 {pg1['p99_ms']:.1f} ms "
        + ("(met)." if met else "(the p99 is not met)")
        + (
            ""
            if met
            else f"; SQLite's relay in the same run had p99 {lite['p99_ms']:.1f} ms: the tail is "
            "the shared machine's (the relay, the load generator and the database on 2 cores), "
            "not the store's."
        )
        + " Two instances "
        "share these 2 cores with the database and the load generator, so the second row "
        "shows that the instances do not serialise on the database, not what two machines take."
    )
    return section


def _post(urls: Sequence[str], targets: int, total: int, prefix: str = "t") -> None:
    import httpx

    clients = [httpx.Client(base_url=url, timeout=120, trust_env=False) for url in urls]
    try:
        for n, first in enumerate(range(0, total, 1000)):
            batch = [
                {
                    "target": f"{prefix}{i % targets}",
                    "message": {"msgtype": "text", "text": {"content": f"alert {i}"}},
                }
                for i in range(first, min(first + 1000, total))
            ]
            reply = clients[n % len(clients)].post("/v1/messages:batch", json={"messages": batch})
            reply.raise_for_status()
    finally:
        for client in clients:
            client.close()


def _dispatch(
    context: Context, targets: int, window: float, instances: int, python: str = sys.executable
) -> tuple[float, float, int, int]:
    """Every target sent one window's worth; (seconds, CPU seconds, delivered, throttles)."""
    context.emulator.reset()
    specs = [
        BenchTarget(
            f"t{i}",
            context.emulator.add_robot(f"t{i}", rate=(20, window), lockout=window * 10),
            rate=f"20/{window:g}s",
        )
        for i in range(targets)
    ]
    total = targets * 20
    with contextlib.ExitStack() as stack:
        if instances == 0:
            relays = [stack.enter_context(RelayProcess(specs))]
        else:
            schema = stack.enter_context(_schema())
            relays = [
                stack.enter_context(_pg(specs, schema, python=python)) for _ in range(instances)
            ]
        cpu_before = sum(r.cpu_seconds() for r in relays)
        started = time.monotonic()
        _post([r.url for r in relays], targets, total)

        def delivered() -> int:
            return sum(sum(r.delivered().values()) for r in relays)

        relays[0].wait(lambda: delivered() >= total, timeout=window * 3 + 300, every=0.5)
        elapsed = time.monotonic() - started
        cpu = sum(r.cpu_seconds() for r in relays) - cpu_before
        done = delivered()
    stats = context.emulator._api("GET", "/stats")["robots"]
    throttles = sum(
        int(s["rejected"].get("throttled", 0)) + int(s["rejected"].get("locked", 0))
        for s in stats.values()
    )
    return elapsed, cpu, done, throttles


@scenario("fleet-dispatch", order=55)
def fleet_dispatch(context: Context) -> Section:
    """Many targets at their limit across three relays on PostgreSQL, CPU per message."""
    targets = 50 if context.quick else 500
    window = 5.0 if context.quick else 60.0
    rounds = 2 if context.quick else 3
    base = os.environ.get("BENCH_BASE_PYTHON")
    rows = [("1 relay, SQLite (same run)", 0, sys.executable)]
    if base:
        rows.append((f"3 relays, PostgreSQL, base (`{base}`)", 3, base))
    rows.append(("3 relays, PostgreSQL", 3, sys.executable))
    section = Section(
        f"{targets} targets at their limit across 3 relays on PostgreSQL",
        f"{targets} robots at 20/{window:g} s, each sent one window's worth (20 messages) at "
        "once, the batches spread over the relays; coalescing off, so each message goes alone. "
        "Three relays share one PostgreSQL schema (one budget per robot, one instance per "
        "target at a time); the SQLite row is one relay of the same run. Relay CPU is the "
        "relays' processes' user + system time from the first post to the last delivery. "
        f"Median (by CPU per message) of {rounds} rounds, the rows interleaved round by round; "
        "the CPU per message of every round is listed."
        + (f" Quick mode: {targets} targets, {window:g} s windows." if context.quick else ""),
        [
            "relays",
            "delivered",
            "throttle replies",
            "all sent in",
            "relay CPU",
            "CPU per message",
            "every round",
        ],
    )
    total = targets * 20
    runs: dict[str, list[tuple[float, float, int, int]]] = {label: [] for label, _, _ in rows}
    for _ in range(rounds):  # interleaved, so that a noisy neighbour slows every row alike
        for label, instances, python in rows:
            runs[label].append(_dispatch(context, targets, window, instances, python))
    for label, _, _ in rows:
        each = sorted(runs[label], key=lambda r: r[1] / max(r[2], 1))
        elapsed, cpu, done, _ = each[len(each) // 2]
        section.rows.append(
            [
                label,
                f"{done}/{total}",
                str(max(r[3] for r in each)),
                f"{elapsed:.1f} s",
                f"{cpu:.1f} s",
                f"{cpu / max(done, 1) * 1000:.2f} ms",
                ", ".join(f"{r[1] / max(r[2], 1) * 1000:.2f}" for r in runs[label]),
            ]
        )
    section.notes.append(
        "Target: 0 throttle replies across the fleet (the budget lives in the database; the "
        "column shows the most of any round). A relay on PostgreSQL spends more CPU per "
        "message than one on SQLite: each message costs round trips (the shared budget's "
        "reservation and stamp, the claim, the settle) where SQLite calls a library in the "
        "process."
    )
    return section


def _failover(context: Context, lease: float, backlog: int) -> float:
    """One round: seconds from the holder's kill to the target's next delivery."""
    context.emulator.reset()
    url = context.emulator.add_robot("f", rate=(20, 1.0))
    specs = [BenchTarget("f0", url, rate="20/1s")]
    with contextlib.ExitStack() as stack:
        schema = stack.enter_context(_schema())
        relays = [
            stack.enter_context(_pg(specs, schema, f'target_lease = "{lease:g}s"'))
            for _ in range(3)
        ]
        _post([relays[1].url], 1, backlog, prefix="f")
        holders: list[RelayProcess] = []

        def found() -> bool:
            holders[:] = [r for r in relays if r.delivered().get("f0", 0) > 0]
            return len(holders) == 1

        relays[0].wait(found, timeout=60)
        started = time.monotonic()
        holders[0].kill()
        before = int(context.emulator.stats("f")["accepted"])

        def moved() -> bool:
            return int(context.emulator.stats("f")["accepted"]) > before

        relays[0].wait(moved, timeout=lease * 4 + 60, every=0.01)
        return time.monotonic() - started


@scenario("fleet-failover", order=56)
def fleet_failover(context: Context) -> Section:
    """Time from ``kill -9`` of a target's lease holder to the target's next delivery."""
    lease, rounds, backlog = (2.0, 1, 200) if context.quick else (5.0, 3, 600)
    times = [_failover(context, lease, backlog) for _ in range(rounds)]
    section = Section(
        "Failover: kill -9 of a target's lease holder",
        f"Three relays on one PostgreSQL schema, one robot at 20/1 s with a backlog of {backlog}, "
        f'`target_lease = "{lease:g}s"`. The instance delivering the target (its lease holder) '
        "is killed with SIGKILL; measured is the time from the kill to the target's next "
        f"delivery by another instance. {rounds} round(s).",
        ["target_lease", "failover, median", "failover, longest", "bound"],
    )
    section.rows.append(
        [
            f"{lease:g} s",
            f"{statistics.median(times):.1f} s",
            f"{max(times):.1f} s",
            f"≈ {lease * 4 / 3:.1f} s (the lease, plus a third of it between two asks)",
        ]
    )
    section.notes.append(
        "The lease bounds it: the dead holder's lease runs out at most `target_lease` after its "
        "last renewal, and the others ask for it every third of `target_lease`. The message "
        "the dead instance had in flight comes back after `lease` and is sent again with the "
        "same msgUuid (DingTalk drops it if it had arrived)."
    )
    return section
