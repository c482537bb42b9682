"""``dingpush retry``: queue a relay's dead letters again, by target, error and time.

It talks to the running relay's API (``POST /v1/messages:retry``) rather than to the outbox
file: the relay may be on another machine or in a container, its outbox may be PostgreSQL or
in memory, the API checks the same tokens and filters as the dashboard, and the relay's
dispatcher is woken at once instead of finding the messages on its next look.
"""

from __future__ import annotations

import datetime
import typing

import click

from dingpush import DingPushError

from ._common import common_options
from ._relay_api import relay_client, relay_options, relay_post
from ._state import State, error_json, exit_status, get_state

#: Dead letters asked for per request (the API takes at most 10,000).
PAGE = 1000


def _when(value: str | None, option: str) -> float | None:
    """``30m``, ``2h``, ``7d`` (that long ago) or ``2024-06-01T14:30`` (local unless offset)."""
    if value is None:
        return None
    from dingpush import parse_duration

    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        try:
            return datetime.datetime.now().timestamp() - parse_duration(value)
        except ValueError:
            raise click.BadParameter(
                f"{value!r} is neither a duration (30m, 2h, 7d: that long ago) nor a date and "
                "time (2024-06-01T14:30)",
                param_hint=option,
            ) from None
    try:  # a moment at the calendar's ends has no UTC time (year 0 or 10,000)
        return moment.timestamp() if moment.tzinfo else moment.astimezone().timestamp()
    except (ValueError, OverflowError, OSError):
        raise click.BadParameter(
            f"{value!r} has no UTC time (too near the calendar's first or last year); give a "
            "date and time such as 2024-06-01T14:30",
            param_hint=option,
        ) from None


def _errcode(value: str | None) -> int | str | None:
    if value is None:
        return None
    text = value.strip()
    digits = text[1:] if text.startswith("-") else text
    return int(text) if digits.isdigit() and len(digits) <= 18 else text


@click.command()
@relay_options("One of the relay's api_tokens ($DINGPUSH_RELAY_TOKEN); none for a relay without.")
@click.option("--target", metavar="NAME", default=None, help="Only dead letters of this target.")
@click.option(
    "--errcode",
    metavar="CODE",
    default=None,
    help="Only those whose last errcode is CODE. Messages recalled while queued are left out "
    "unless CODE is cancelled.",
)
@click.option(
    "--error",
    "error_text",
    metavar="TEXT",
    default=None,
    help="Only those whose last error contains TEXT (case-sensitive), e.g. TransportError.",
)
@click.option(
    "--since",
    metavar="WHEN",
    default=None,
    help="Only those that failed since WHEN: 2h (ago), 7d, or 2024-06-01T14:30 (local time).",
)
@click.option("--until", metavar="WHEN", default=None, help="Only those that failed before WHEN.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Queue at most this many (default: every one that matches).",
)
@click.option("--dry-run", is_flag=True, help="Only count the dead letters that match.")
@click.option("--json", "as_json", is_flag=True, help="Print the result (or the error) as JSON.")
@common_options
def retry(
    relay_url: str,
    token: str | None,
    target: str | None,
    errcode: str | None,
    error_text: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Queue a relay's dead letters again: all, or by target, errcode, error and time.

    \b
    dingpush retry --target ops --errcode 300001    # the robot's token is fixed now
    dingpush retry --error TransportError --since 6h --dry-run

    Each goes back to the queue with a fresh attempt count, as the dashboard's Retry does;
    its history is kept. A message recalled while it was queued is left out unless asked for
    with --errcode cancelled. Talks to the running relay (--relay, $DINGPUSH_RELAY_URL).
    """
    state = get_state()
    if token:
        state.add_secrets([token])
    query: dict[str, typing.Any] = {
        "target": target,
        "errcode": _errcode(errcode),
        "error": error_text,
        "failed_since": _when(since, "--since"),
        "failed_before": _when(until, "--until"),
    }
    query = {k: v for k, v in query.items() if v is not None}
    try:
        result = _retry(state, relay_url.rstrip("/"), token, query, limit, dry_run, as_json)
    except DingPushError as exc:
        if not as_json:
            raise
        state.json({"ok": False, "error": error_json(exc, state)})
        raise click.exceptions.Exit(exit_status(exc)) from None
    if as_json:
        state.json({"ok": True, **result})
        return
    count, more = result["retried"], result["more"]
    letters = f"dead letter{'' if count == 1 else 's'}"
    if dry_run:
        verb = "matches" if count == 1 and not more else "match"
        state.out(f"{count:,}{' or more' if more else ''} {letters} {verb}; nothing was changed")
    elif count:
        left = " (more match: run it again, or raise --limit)" if more else ""
        state.out(f"queued again: {count:,} {letters}{left}")
    else:
        state.out("no dead letter matches")
    left_out = result["cancelled_left_out"]
    if left_out:
        were = "was" if left_out == 1 else "were"
        state.err(
            f"{left_out:,} recalled before sending {were} left out: "
            "--errcode cancelled sends them after all"
        )


def _retry(
    state: State,
    url: str,
    token: str | None,
    query: dict[str, typing.Any],
    limit: int | None,
    dry_run: bool,
    as_json: bool,
) -> dict[str, typing.Any]:
    """Post the filter until nothing more matches (or ``limit``); the summed answer."""
    ids: list[str] = []
    more = False
    left_out = 0
    with relay_client(url, token) as http:
        while True:
            want = min(PAGE if limit is None else limit - len(ids), 10_000)
            if dry_run:
                want = min(limit or 10_000, 10_000)
            answer = relay_post(
                http,
                url,
                "/v1/messages:retry",
                {**query, "limit": want, "dry_run": dry_run},
                unauthorized=f"the relay at {url} wants one of its API tokens: pass --token or "
                "set DINGPUSH_RELAY_TOKEN (a value of [relay] api_tokens)",
                refused=(400, 404),
            )
            ids += answer["ids"]
            more = bool(answer["more"])
            left_out = int(answer.get("cancelled_left_out", 0))  # an older relay has none
            if dry_run or not more or (limit is not None and len(ids) >= limit):
                break
            if not as_json:
                state.err(f"queued again: {len(ids):,} so far…")
    return {
        "retried": len(ids),
        "ids": ids,
        "more": more,
        "dry_run": dry_run,
        "cancelled_left_out": left_out,
    }
