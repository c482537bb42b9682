"""The relay's outbox ingest (``bench/outbox_ingest.py``) as a scenario of the harness."""

from __future__ import annotations

from bench import Context, Section, scenario
from bench.outbox_ingest import run


@scenario("ingest", order=50)
def ingest(context: Context) -> Section:
    """Durable enqueues per second into the relay's outbox, with and without group commit."""
    seconds, rounds = (0.5, 1) if context.quick else (5.0, 3)
    rows = run(seconds=seconds, producers=64, rounds=rounds)
    section = Section(
        "Outbox ingest (relay)",
        f"64 concurrent producers enqueue ~400-byte alerts for {seconds:g} s into each store "
        f"(median of {rounds} round(s)); see `bench/outbox_ingest.py` for what each row is. "
        "This measures the disk under the relay, not DingTalk.",
        ["store", "accepted/s", "p50 ms", "p99 ms", "mean batch", "accepted"],
    )
    for row in rows:
        section.rows.append(
            [
                row.scenario,
                f"{row.accepts_per_s:.0f}",
                "" if row.p50_ms is None else f"{row.p50_ms:.2f}",
                "" if row.p99_ms is None else f"{row.p99_ms:.2f}",
                "" if row.mean_batch is None else f"{row.mean_batch:.1f}",
                str(row.accepted),
            ]
        )
    return section
