"""The relay: HTTP ingest, a 1,000-alert burst with and without coalescing, 500 targets.

The relay runs in its own process (``python -m dingpush.relay --config``, SQLite outbox), the
load generator in another (``python -m bench.loadgen``), the emulator in a third.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
import tempfile
import time
import typing

import httpx

from bench import Context, Section, scenario
from bench._relay import BenchTarget, RelayProcess
from bench.loadgen import measure
from bench.outbox_ingest import _raw_round
from bench.profile import layers
from bench.scenarios.delivery import _dtc_projection

CLIENTS = 64


@scenario("relay-ingest", order=51)
def relay_ingest(context: Context) -> Section:
    """Durable accepts per second over HTTP, beside the raw fsync-per-commit rate."""
    seconds, rounds = (1.0, 1) if context.quick else (5.0, 3)
    context.emulator.reset()
    url = context.emulator.add_robot("bench", rate=(20, 60.0))
    results, raws = [], []
    for _ in range(rounds):
        with RelayProcess([BenchTarget("bench", url)]) as relay:
            raws.append(_raw_round(relay.directory / "raw.sqlite", seconds))
            results.append(measure(relay.url, seconds, CLIENTS))
    result = sorted(results, key=lambda r: r["accepted_per_s"])[len(results) // 2]
    raw = sorted(raws, key=lambda r: r.accepts_per_s)[len(raws) // 2]
    breakdown = _ingest_profile(url, seconds)
    section = Section(
        "Relay ingest over HTTP",
        f"`python -m bench.loadgen` (its own process, raw asyncio HTTP/1.1) keeps {CLIENTS} "
        f"connections busy for {seconds:g} s with `POST /v1/messages` (a ~400-byte markdown "
        "alert, a fresh `Idempotency-Key` each); the relay (its own process, uvicorn, SQLite "
        "outbox with group commit, `synchronous=FULL`) answers 202 only after the commit. The "
        "raw row is one `sqlite3` connection committing one INSERT per fsync on the same disk "
        f"in the same run. Median of {rounds} round(s).",
        ["what", "accepted/s", "p50 ms", "p99 ms", "answers"],
    )
    section.rows.append(
        [
            f"relay `POST /v1/messages`, {CLIENTS} clients",
            f"{result['accepted_per_s']:.0f}",
            f"{result['p50_ms']:.1f}",
            f"{result['p99_ms']:.1f}",
            ", ".join(f"{n}× {s}" for s, n in sorted(result["statuses"].items())),
        ]
    )
    section.rows.append(
        [
            "raw `sqlite3`, one fsync per commit (1 writer)",
            f"{raw.accepts_per_s:.0f}",
            f"{raw.p50_ms:.2f}" if raw.p50_ms is not None else "",
            f"{raw.p99_ms:.2f}" if raw.p99_ms is not None else "",
            f"{raw.accepted} commits",
        ]
    )
    section.notes.append(
        f"Target: ≥ 3,000 durable accepts/s with {CLIENTS} clients, p99 ≤ 50 ms — measured "
        f"{result['accepted_per_s']:,.0f}/s, p99 {result['p99_ms']:.1f} ms; "
        f"{result['accepted_per_s'] / raw.accepts_per_s:.1f}× the raw fsync-per-commit rate of "
        f"this disk, whose fsync takes {raw.p50_ms or 0:.2f} ms. With fsync this cheap the HTTP "
        "path is bound by the relay's CPU (HTTP parsing, checks, the event loop), not by the "
        "disk; group commit is what keeps a slower disk out of the way (the store alone, "
        "above: requests share one fsync)."
    )
    ratio = result["accepted_per_s"] / raw.accepts_per_s
    section.notes.append(
        f"Target (issue 17): ≥ 1.5× the raw fsync-per-commit rate with {CLIENTS} clients, p99 "
        f"≤ 30 ms — measured {ratio:.2f}× and p99 {result['p99_ms']:.1f} ms"
        + ("." if ratio >= 1.5 and result["p99_ms"] <= 30 else f", short by {1.5 / ratio:.2f}×.")
        + " Where the relay's event loop spends its CPU per request (one more round under "
        "cProfile on the thread's CPU clock; proportions only): "
        + "; ".join(f"{name} {share:.0%}" for name, share in breakdown)
        + ". The disk is not what bounds it: the request's CPU is, on a machine the load "
        "generator, the relay and (here) other work share."
    )
    return section


#: Where an ingest request's CPU goes, by file or function (first match wins).
INGEST_LAYERS = (
    ("<module>", "start-up"),
    ("_messages/", "parse_message and the target's checks"),
    ("relay/_relay.py:check", "parse_message and the target's checks"),
    ("relay/stores/", "the outbox (enqueue, the commit wait)"),
    ("relay/_relay.py:enqueue", "the outbox (enqueue, the commit wait)"),
    ("relay/_api.py", "the API handler (body, JSON, idempotency key, answer)"),
    ("relay/_http.py", "the API handler (body, JSON, idempotency key, answer)"),
    ("/json/", "the API handler (body, JSON, idempotency key, answer)"),
    ("/uvicorn/", "uvicorn (HTTP parsing, the response)"),
    ("/starlette/", "starlette (middleware, routing, request)"),
    ("/asyncio/", "the event loop (asyncio, epoll)"),
    ("select.epoll", "the event loop (asyncio, epoll)"),
)


def _ingest_profile(url: str, seconds: float) -> list[tuple[str, float]]:
    """Shares of the relay's event-loop CPU by layer, from one round under cProfile."""
    with tempfile.TemporaryDirectory() as folder:
        stats = str(pathlib.Path(folder) / "ingest.prof")
        with RelayProcess([BenchTarget("bench", url)], profile=stats) as relay:
            measure(relay.url, seconds, CLIENTS)
        folded = layers(stats, INGEST_LAYERS)
    for left_out in ("start-up", "other"):
        folded.pop(left_out, None)
    total = sum(folded.values()) or 1.0
    return [(name, value / total) for name, value in sorted(folded.items(), key=lambda x: -x[1])]


def _post_alerts(url: str, count: int) -> float:
    """Post ``count`` alerts one request each (16 at a time), as Alertmanager would."""
    started = time.time()
    with httpx.Client(base_url=url, timeout=60, trust_env=False) as http:

        def one(i: int) -> None:
            body = {
                "target": "burst",
                "message": {
                    "msgtype": "text",
                    "text": {"content": f"[FIRING] alert {i}: disk usage on web-{i % 7:02d} > 90%"},
                },
            }
            reply = http.post("/v1/messages", json=body, headers={"Idempotency-Key": f"a-{i}"})
            reply.raise_for_status()

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(one, range(count)))
    return started


def _relay_burst(
    context: Context, count: int, limit: int, window: float, coalesce: bool
) -> tuple[int, int, int, float]:
    """(DingTalk messages, alerts carried, throttle replies, seconds to the last delivery)."""
    context.emulator.reset()
    url = context.emulator.add_robot("burst", rate=(limit, window), lockout=window * 10)
    target = BenchTarget(
        "burst", url, rate=f"{limit}/{window:g}s", coalesce=coalesce, coalesce_after=f"{window:g}s"
    )
    with RelayProcess([target]) as relay:
        started = _post_alerts(relay.url, count)

        def drained() -> bool:
            return (
                relay.metric("delivered") + relay.metric("digested") - relay.metric("digests")
                >= count
            )

        if not relay.wait(drained, timeout=count / limit * window * 1.5 + 120, every=0.2):
            raise RuntimeError("the relay did not drain the burst")
        carried = relay.metric("delivered") + relay.metric("digested") - relay.metric("digests")
    messages = context.emulator._api("GET", "/messages?robot=burst")["messages"]
    stats = context.emulator.stats("burst")
    throttles = int(stats["rejected"].get("throttled", 0)) + int(stats["rejected"].get("locked", 0))
    last = max(m["time"] for m in messages)
    return len(messages), carried, throttles, last - started


@scenario("relay-burst", order=52)
def relay_burst(context: Context) -> Section:
    """1,000 alerts into one robot at 20/60 s: digests versus one message each, and the peers."""
    count = 200 if context.quick else 1000
    window = 5.0 if context.quick else 60.0
    scale = 60.0 / window
    section = Section(
        f"Burst of {count} alerts into one robot at 20/60 s, through the relay",
        f"{count} text alerts are posted to the relay one request each (16 at a time, as "
        "Alertmanager or Grafana would), for one robot that takes 20 messages a minute. With "
        "coalescing (the default, `coalesce_after` = one window) the backlog is merged into "
        "digests that fit DingTalk's 20,000 bytes; without, every alert waits its turn. "
        + (
            f"Quick mode shrinks the window to {window:g} s (×{scale:g} for minutes). "
            if context.quick
            else "With coalescing the robot's real 20/60 s window is used. "
        )
        + "The run without coalescing uses the emulator's shrunken window (20/1 s, ×60) and is "
        "reported in real minutes; the peers run against the real 20/60 s window, are stopped "
        "at a cap and projected from their own sleep rules.",
        ["client", "alerts delivered", "DingTalk messages", "throttle replies", "last delivery"],
    )
    sent, carried, throttles, last = _relay_burst(context, count, 20, window, coalesce=True)
    section.rows.append(
        [
            "dingpush relay, coalescing",
            f"{carried}/{count}",
            str(sent),
            str(throttles),
            f"{last * scale / 60:.1f} min ({last * scale:.0f} s)",
        ]
    )
    fast_window = 1.0 if not context.quick else 0.25
    sent2, carried2, throttles2, last2 = _relay_burst(
        context, count, 20, fast_window, coalesce=False
    )
    real = last2 * 60.0 / fast_window
    section.rows.append(
        [
            "dingpush relay, coalescing off",
            f"{carried2}/{count}",
            str(sent2),
            str(throttles2),
            f"{real / 60:.1f} min (measured {last2:.1f} s at 20/{fast_window:g}s)",
        ]
    )
    cap = 3.0 if context.quick else 20.0
    for tool, label in (("DingtalkChatbot", "DingtalkChatbot 1.5.7"), ("apprise", "apprise")):
        context.emulator.reset()
        url = context.emulator.add_robot("peer", rate=(20, 60.0), lockout=600.0)
        run = context.run_tool(tool, [url], count, cap=cap)
        stats = context.emulator.stats("peer")
        per = (run.outcomes[-1][2] / len(run.outcomes)) if run.outcomes else 0.01
        projected = (
            _dtc_projection(count, per) if tool == "DingtalkChatbot" else (count - 1) * 5.5 + per
        )
        refused = int(stats["rejected"].get("throttled", 0)) + int(
            stats["rejected"].get("locked", 0)
        )
        section.rows.append(
            [
                label,
                f"{stats['accepted']}/{count} within the {cap:g} s cap",
                f"{stats['accepted']} (one per alert)",
                str(refused),
                f"projected {projected / 60:.0f} min; the sender blocks until then",
            ]
        )
    section.notes += [
        f"Target: all delivered, the last within 2 minutes with coalescing and about 50 "
        f"minutes without — measured {last * scale / 60:.1f} min and {real / 60:.1f} min.",
        "alerts delivered: alerts DingTalk now shows, alone or inside a digest (the relay's "
        "counts); DingTalk messages: what the emulator accepted.",
        "DingtalkChatbot sleeps in the caller's thread (20-slot queue, then 60 s); apprise "
        "waits 5.5 s between messages. Neither keeps anything if the process stops meanwhile.",
    ]
    return section


@scenario("relay-targets", order=53)
def relay_targets(context: Context) -> Section:
    """500 targets at their limit, served by one relay process pinned to one core."""
    targets = 50 if context.quick else 500
    window = 5.0 if context.quick else 60.0
    per_target = 40  # two windows' worth: 20 go at once, 20 a window later
    context.emulator.reset()
    urls = [
        context.emulator.add_robot(f"t{i}", rate=(20, window), lockout=window * 10)
        for i in range(targets)
    ]
    specs = [BenchTarget(f"t{i}", url, rate=f"20/{window:g}s") for i, url in enumerate(urls)]
    total = targets * per_target
    everywhere = os.sched_getaffinity(context.emulator.pid)
    os.sched_setaffinity(context.emulator.pid, {1})  # the relay has CPU 0 to itself
    try:
        return _targets_run(context, targets, window, per_target, specs, total)
    finally:
        os.sched_setaffinity(context.emulator.pid, everywhere)


def _targets_run(
    context: Context,
    targets: int,
    window: float,
    per_target: int,
    specs: list[BenchTarget],
    total: int,
) -> Section:
    with RelayProcess(specs, cpu=0) as relay:
        cpu_before = relay.cpu_seconds()
        started = time.monotonic()
        relay.post_spread(total, targets)
        half = targets * 20
        short: list[dict[str, typing.Any]] = []

        def first_window_sent() -> bool:
            return sum(relay.delivered().values()) >= half

        if not relay.wait(first_window_sent, timeout=window * 0.75, every=1.0):
            # Late: note which targets lag and why, before the next window hides it.
            views = relay.http.get("/v1/targets").json()["targets"]
            short = [t for t in views if t["sent_recently"] < 20]
            relay.wait(first_window_sent, timeout=300, every=1.0)
        first_window = time.monotonic() - started
        retries = relay.metric("retries")
        relay.wait(
            lambda: sum(relay.delivered().values()) >= total, timeout=window * 3 + 300, every=0.5
        )
        elapsed = time.monotonic() - started
        cpu = relay.cpu_seconds() - cpu_before
        delivered = sum(relay.delivered().values())
    stats = context.emulator._api("GET", "/stats")["robots"]
    throttles = sum(
        int(s["rejected"].get("throttled", 0)) + int(s["rejected"].get("locked", 0))
        for s in stats.values()
    )
    needed = targets * 20 / window
    section = Section(
        f"{targets} targets at their limit, one relay process on one core",
        f"{targets} robots, each at 20/{window:g} s, each sent {per_target} messages at once "
        "(two windows' worth) through one relay pinned to one CPU (`sched_setaffinity`), "
        "SQLite outbox, coalescing off so every message goes alone. At their limit the "
        f"targets take {needed:,.0f} messages a second in all; the relay must send each "
        "target's 20 within the window and never trip a throttle."
        + (f" Quick mode: {targets} targets, {window:g} s windows." if context.quick else ""),
        [
            "targets",
            "messages",
            "delivered",
            "throttle replies",
            "first window sent in",
            "dispatch rate",
            "needed",
            "relay CPU",
        ],
    )
    section.rows.append(
        [
            str(targets),
            str(total),
            f"{delivered}/{total}",
            str(throttles),
            f"{first_window:.1f} s",
            f"{half / first_window:,.0f}/s",
            f"{needed:,.0f}/s",
            f"{cpu:.1f} s in {elapsed:.0f} s ({cpu / elapsed:.0%} of one core)",
        ]
    )
    if short or retries:
        errors = sorted({str(t["last_error"]) for t in short if t["last_error"]})
        section.notes.append(
            f"{len(short)} targets had sent fewer than 20 when the first window was counted; "
            f"{retries} attempts were retried. Errors seen: {'; '.join(errors) or 'none'}."
        )
    section.notes.append(
        f"Target: {targets} targets at their limit on one core — the first window's "
        f"{half:,} messages went out in {first_window:.1f} s of its {window:g} s "
        f"({half / first_window / needed:.1f}× the pace the targets allow), all {total:,} "
        f"delivered with {throttles} throttle replies."
    )
    return section
