"""Stream mode (``bench/stream_mode.py``) as a scenario of the harness (issue 16)."""

from __future__ import annotations

import statistics

from bench import Context, Section, scenario
from bench.stream_mode import OURS, PEER, RECONNECT_TARGET_S, run


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


@scenario("stream", order=70)
def stream(context: Context) -> Section:
    """Receiving over Stream mode: reconnect after a dropped connection, chat → reply."""
    rows = run(context.emulator.url, quick=context.quick)
    section = Section(
        "Stream mode: reconnect and chat → handler → reply",
        "Each client receives for its own app of the same emulator process (its Stream gateway, "
        "§13). *Reconnect*: the emulator cuts the connection and a person posts at once; the "
        "time from the cut to the handler holding the message (reconnection, a new ticket, the "
        "frame). *Latency*: from before a person posts (the emulator's control API) to the "
        "answer of the handler's reply through the message's sessionWebhook. Wall-clock time "
        "on a machine shared with other jobs: read the ratios of the same run. Unlike the "
        "delivery tables, both clients run in a thread of the harness's process (one after "
        "the other), since a handler's time is measured against the emulator's control API.",
        [
            "client",
            "reconnect median s",
            "reconnect max s",
            "target s",
            "latency median ms",
            "latency p95 ms",
            "runs",
        ],
    )
    for row in rows:
        section.rows.append(
            [
                row.client,
                f"{statistics.median(row.reconnect_s):.2f}",
                f"{max(row.reconnect_s):.2f}",
                f"≤ {RECONNECT_TARGET_S:.0f}" if row.client == OURS else "",
                f"{statistics.median(row.latency_ms):.1f}",
                f"{_p95(row.latency_ms):.1f}",
                f"{len(row.reconnect_s)} drops, {len(row.latency_ms)} messages",
            ]
        )
    section.notes.append(
        f"{OURS} reconnects at once after a connection that had lived (then backs off from "
        f"0.5 s, doubling, if attempts fail); {PEER} sleeps a fixed 10 s after any network "
        "error."
    )
    section.notes.append(
        f"{PEER} replies with a blocking `requests.post` inside its async handler, which holds "
        "the event loop (no acks, pings or other frames meanwhile) for the whole round trip; "
        f"{OURS} replies through its async HTTP client."
    )
    return section
