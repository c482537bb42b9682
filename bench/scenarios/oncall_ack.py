"""``@robot ack`` to the group's confirmation (``bench/oncall_ack.py``) as a scenario (issue 16)."""

from __future__ import annotations

import statistics

from bench import Context, Section, scenario
from bench.oncall_ack import TARGET_S, run

_MODES = {
    "callback": "HTTP callback (§12): the reply is the callback's answer",
    "stream": "Stream mode (§13): reply through the sessionWebhook",
}


@scenario("oncall-ack", order=75)
def oncall_ack(context: Context) -> Section:
    """From ``@robot ack`` posted at the emulator to the group's confirmation there."""
    rows = run(context.emulator.url, quick=context.quick)
    section = Section(
        "On call: `@robot ack` → the group's confirmation",
        "A relay (in a thread of the harness, an in-memory incident store) serves an app-group "
        'target; for each run an incident is opened, "alice" posts `ack` with `@robot` '
        "through the emulator's control API, and the figure is the time from before that post "
        "to the group's \"#N acknowledged by alice\" in the emulator's chat (polled every "
        "2 ms). It includes the emulator's delivery to the relay, the command, the incident "
        "store's acknowledgement and the reply. Wall-clock time on a machine shared with "
        "other jobs.",
        ["receiving mode", "p50 ms", "max ms", "target", "runs"],
    )
    for row in rows:
        section.rows.append(
            [
                _MODES[row.mode],
                f"{statistics.median(row.latency_ms):.1f}",
                f"{max(row.latency_ms):.1f}",
                f"≤ {TARGET_S * 1000:.0f} ms",
                len(row.latency_ms),
            ]
        )
    section.notes.append(
        "In HTTP mode the emulator makes each callback with a new connection (as DingTalk "
        "does), and the control API answers once the reply is shown; in Stream mode the frame "
        "rides the open WebSocket and the reply is one more HTTP call."
    )
    return section
