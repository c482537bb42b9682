"""The CLI's cold start (``bench/cli_cold_start.py``) as a scenario of the harness."""

from __future__ import annotations

from bench import Context, Section, scenario
from bench.cli_cold_start import APPRISE, DRY_RUN, REAL_SEND, Row, ratio, run


@scenario("cli-cold-start", order=60)
def cli_cold_start(context: Context) -> Section:
    """Whole `dingpush` processes, exec to exit, beside apprise's dry run."""
    runs = 5 if context.quick else 21
    rows = run(runs)
    section = Section(
        "CLI cold start",
        f"Wall-clock time of a whole process, from exec to exit, median of {runs} runs "
        "interleaved so that a noisy neighbour slows every command alike. dingpush reads a "
        "`dingpush.toml` with one signed robot (its secret from an environment variable). The "
        "real send goes to an emulator in its own process through the cross-process rate "
        "limiter's SQLite file (the CLI's default; the robot's rate lifted so that no run "
        "waits for a slot); apprise has no real send to compare, since its DingTalk plugin only "
        "posts to oapi.dingtalk.com.",
        ["command", "median ms", "min ms", "max ms", "target ms", "apprise --dry-run ÷ this"],
    )
    for row in rows:
        section.rows.append(
            [
                f"`{row.command}`",
                f"{row.median_ms:.0f}",
                f"{row.min_ms:.0f}",
                f"{row.max_ms:.0f}",
                f"≤ {row.target_ms:.0f}" if row.target_ms else "",
                f"{ratio(rows, APPRISE, row.command):.2f}×" if "dingpush" in row.command else "",
            ]
        )
    section.notes.append(
        f"`{DRY_RUN}` imports neither httpx nor any server library (a test checks it); the "
        f"real send imports httpx but not httpx's own command line (Rich, Pygments)."
    )
    section.notes.append(
        f"`{REAL_SEND}` includes the signed HTTP round trip to the local emulator."
    )
    section.notes.append(_issue_17(rows))
    return section


def _issue_17(rows: list[Row]) -> str:
    """Issue 17's targets, as fractions of apprise's dry run, and what bounds a miss."""
    parts = []
    for name, target in ((DRY_RUN, 0.35), (REAL_SEND, 0.6)):
        share = 1 / ratio(rows, APPRISE, name)
        verdict = "met" if share <= target else f"missed by {share / target:.2f}×"
        parts.append(f"`{name}` ≤ {target:g}× apprise's dry run — measured {share:.2f}×, {verdict}")
    return (
        "Targets (issue 17): "
        + "; ".join(parts)
        + ". The real send imports httpx and httpcore (~30 ms of `python -X importtime` on "
        "this machine, which the dry run does not pay), opens the rate limiter's SQLite file "
        "and makes the round trip."
    )
