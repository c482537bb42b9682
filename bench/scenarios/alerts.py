"""Alerts into the relay: rendering and routing cost, Alertmanager ingest, a real storm.

``alert-render`` runs ``dingpush.alerts.process_alerts`` in the benchmark's own process and
reports CPU time (``time.process_time``: the machine is shared, wall time is noisy) per alert
for groups of 1, 50 and 500 alerts, beside parsing alone. ``alert-ingest`` posts Alertmanager
bodies to a relay process with 64 clients, beside ``POST /v1/messages`` to the same relay in the
same run. ``alert-storm`` fires 1,000 alerts at a real Alertmanager (Debian's
``prometheus-alertmanager``) whose webhook is the relay's receiver, for one robot at 20/60 s.
"""

from __future__ import annotations

import copy
import functools
import json
import pathlib
import tempfile
import time
import typing

from bench import Context, Section, scenario
from bench._alertmanager import Alertmanager, alert
from bench._relay import BenchTarget, RelayProcess
from bench.loadgen import measure

CLIENTS = 64
ROUTES = """
[routes.bench]
targets = ["bench"]
"""


def _group(size: int) -> dict[str, typing.Any]:
    from dingpush.alerts import sample

    _, body = sample("alertmanager-storm")
    first = body["alerts"][0]
    alerts = []
    for index in range(size):
        item = copy.deepcopy(first)
        host = f"web-{index:03d}"
        item["labels"]["instance"] = f"{host}:9100"
        item["annotations"]["summary"] = f"CPU above 90% on {host}"
        item["fingerprint"] = f"{index:016x}"
        alerts.append(item)
    body["alerts"] = alerts
    return body


def _cpu_per_call(call: typing.Callable[[], object], alerts: int, budget: int) -> float:
    """CPU microseconds per alert of ``call``, repeated until ``budget`` alerts are done."""
    rounds = max(1, budget // alerts)
    call()  # warm: templates compiled, caches filled
    started = time.process_time()
    for _ in range(rounds):
        call()
    return (time.process_time() - started) / (rounds * alerts) * 1e6


@scenario("alert-render", order=54)
def alert_render(context: Context) -> Section:
    """CPU µs per alert: parse, route and render an Alertmanager group; parsing alone beside."""
    from dingpush.alerts import Route, Templates, parse_alertmanager, process_alerts
    from dingpush.testing import FakeClock

    budget = 2_000 if context.quick else 20_000
    templates = Templates()
    clock = FakeClock(1714565520.0)
    routes = Route(
        targets=["ops"],
        routes=[
            Route(name="critical", match=['severity="critical"'], targets=["oncall"]),
            Route(name="db", match=['team=~"db|dba"'], targets=["db"]),
        ],
    )
    section = Section(
        "Alert rendering and routing (the relay's Alertmanager receiver)",
        "`process_alerts()` — parse the body strictly, route each alert through a three-route "
        "table, render the builtin `alertmanager` template in Jinja2's sandbox, resolve "
        "mentions — on one Alertmanager body (version 4) of 1, 50 and 500 alerts, in one "
        "process; CPU time (`time.process_time`), since the machine is shared and wall time is "
        f"noisy. About {budget:,} alerts per row. The peer row is the parsing alone "
        "(`parse_alertmanager`) of the same bytes in the same run.",
        [
            "alerts in the group",
            "parse only, µs/alert",
            "parse + route + render, µs/alert",
            "per group, ms",
            "message bytes",
        ],
    )
    for size in (1, 50, 500):
        raw = json.dumps(_group(size)).encode()
        outcome = process_alerts(
            "alertmanager", routes, raw, templates=templates, clock=clock, name="ops"
        )
        size_bytes = sum(
            len(json.dumps(m.message.to_payload(), ensure_ascii=False).encode())
            for m in outcome.messages
        )
        parse = _cpu_per_call(functools.partial(parse_alertmanager, raw), size, budget)
        full = _cpu_per_call(
            functools.partial(
                process_alerts,
                "alertmanager",
                routes,
                raw,
                templates=templates,
                clock=clock,
                name="ops",
            ),
            size,
            budget,
        )
        section.rows.append(
            [size, f"{parse:.1f}", f"{full:.1f}", f"{full * size / 1000:.2f}", f"{size_bytes:,}"]
        )
    section.notes.append(
        "Groups of more than ten alerts are rendered one line per alert, so the cost per alert "
        "falls with the group's size; a group's message over 20,000 bytes is sent in numbered "
        "parts by the relay. Bodies over 16 KiB are rendered in a worker thread, off the "
        "relay's event loop."
    )
    return section


@scenario("alert-ingest", order=55)
def alert_ingest(context: Context) -> Section:
    """Alertmanager bodies accepted per second with 64 clients, beside POST /v1/messages."""
    seconds, rounds = (1.0, 1) if context.quick else (5.0, 3)
    context.emulator.reset()
    url = context.emulator.add_robot("bench", rate=(20, 60.0))
    plain, alerts = [], []
    for _ in range(rounds):
        with RelayProcess([BenchTarget("bench", url)], extra=ROUTES) as relay:
            cpu = relay.cpu_seconds()
            result = measure(relay.url, seconds, CLIENTS)
            result["cpu_us"] = (relay.cpu_seconds() - cpu) / max(result["requests"], 1) * 1e6
            plain.append(result)
            cpu = relay.cpu_seconds()
            result = measure(f"{relay.url}/alertmanager/bench", seconds, CLIENTS, alertmanager=True)
            result["cpu_us"] = (relay.cpu_seconds() - cpu) / max(result["requests"], 1) * 1e6
            alerts.append(result)

    def median(results: list[dict[str, typing.Any]]) -> dict[str, typing.Any]:
        return sorted(results, key=lambda r: r["accepted_per_s"])[len(results) // 2]

    section = Section(
        "Alertmanager ingest over HTTP (relay)",
        f"{CLIENTS} kept-alive connections for {seconds:g} s against one relay process (uvicorn, "
        "SQLite outbox with group commit): `POST /alertmanager/bench` with Alertmanager webhook "
        "bodies (one firing alert each, every one a new notification: its own group key and "
        "fingerprint), each parsed, routed, rendered and committed before the 200; and, to "
        "the same relay in the same run, `POST /v1/messages` with a ~400-byte markdown "
        f"message (`bench.loadgen`). Relay CPU per request from `/proc`. Median of {rounds} "
        "round(s).",
        ["what", "accepted/s", "p50 ms", "p99 ms", "relay CPU µs/request", "answers"],
    )
    for name, result in (
        (f"`POST /alertmanager/bench`, {CLIENTS} clients", median(alerts)),
        (f"`POST /v1/messages` (peer, same run), {CLIENTS} clients", median(plain)),
    ):
        section.rows.append(
            [
                name,
                f"{result['accepted_per_s']:.0f}",
                f"{result['p50_ms']:.1f}",
                f"{result['p99_ms']:.1f}",
                f"{result['cpu_us']:.0f}",
                ", ".join(f"{n}× {s}" for s, n in sorted(result["statuses"].items())),
            ]
        )
    a, p = median(alerts), median(plain)
    section.notes.append(
        f"An Alertmanager notification costs {a['cpu_us'] / max(p['cpu_us'], 1):.1f}× the relay "
        "CPU of a plain message (its body is parsed strictly, routed and rendered by Jinja2 "
        f"before the commit): {a['accepted_per_s']:,.0f}/s against {p['accepted_per_s']:,.0f}/s."
    )
    return section


def _shown(context: Context, names: typing.Sequence[str]) -> int:
    messages = context.emulator._api("GET", "/messages?robot=storm")["messages"]
    text = "\n".join(json.dumps(m["payload"], ensure_ascii=False) for m in messages)
    return sum(1 for name in names if name in text)


@scenario("alert-storm", order=56)
def alert_storm(context: Context) -> Section:
    """1,000 alerts from a real Alertmanager into one robot at 20/60 s, through the relay."""
    count = 200 if context.quick else 1000
    window = 5.0 if context.quick else 60.0
    context.emulator.reset()
    url = context.emulator.add_robot("storm", rate=(20, window), lockout=window * 10)
    target = BenchTarget(
        "storm", url, rate=f"20/{window:g}s", coalesce=True, coalesce_after=f"{window:g}s"
    )
    routes = '\n[routes.ops]\ntargets = ["storm"]\n'
    names = [f"Storm{index:04d}" for index in range(count)]
    with (
        RelayProcess([target], extra=routes) as relay,
        tempfile.TemporaryDirectory(prefix="dingpush-bench-am-") as folder,
        Alertmanager(
            pathlib.Path(folder), f"{relay.url}/alertmanager/ops", group_by=("alertname",)
        ) as am,
    ):
        started = time.time()
        am.fire(
            [
                alert(name, {"instance": f"web-{i % 7}", "severity": "critical"})
                for i, name in enumerate(names)
            ]
        )
        deadline = time.monotonic() + (240 if not context.quick else 120)
        shown = 0
        while time.monotonic() < deadline:
            shown = _shown(context, names)
            if shown >= count:
                break
            time.sleep(0.5)
        messages = context.emulator._api("GET", "/messages?robot=storm")["messages"]
        last = max((m["time"] for m in messages), default=started)
        digests = relay.metric("digests")
        notifications = relay.metric("accepted")
    stats = context.emulator.stats("storm")
    throttles = int(stats["rejected"].get("throttled", 0)) + int(stats["rejected"].get("locked", 0))
    section = Section(
        f"A {count}-alert storm from a real Alertmanager, through the relay",
        f"{count} alerts with distinct names are posted at once to a real Alertmanager "
        "(Debian's `prometheus-alertmanager`, `group_by: [alertname]`, `group_wait` 1 s): it "
        f"sends {count} webhook notifications to the relay's `/alertmanager/ops`, for one robot "
        f"that takes 20 messages per {window:g} s; the relay renders each, commits it, sends "
        "the first 20 and merges the rest into digests (`coalesce_after` = one window). "
        + ("Quick mode: a 5 s window. " if context.quick else "The robot's real window. "),
        [
            "alerts shown",
            "notifications accepted",
            "DingTalk messages",
            "digests",
            "throttle replies",
            "last shown after",
        ],
    )
    section.rows.append(
        [
            f"{shown}/{count}",
            notifications,
            len(messages),
            digests,
            throttles,
            f"{last - started:.0f} s",
        ]
    )
    section.notes.append(
        f"Target: all shown within 2 minutes, 0 throttle replies — measured {shown}/{count} in "
        f"{last - started:.0f} s, {throttles} throttle replies."
    )
    return section
