"""Bulk retry of dead letters: by target, by error and by the time they failed.

``POST /v1/messages:retry`` (a JSON filter), the dashboard's form and ``dingpush retry`` (which
posts to that endpoint) all end in :func:`retry_dead_letters`, so the three accept the same
filter and answer the same way.
"""

from __future__ import annotations

import datetime
import math
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass

from ._http import HTTPProblem
from ._relay import Relay
from .stores import DeadLetterFilter

__all__ = ["MAX_RETRY_LIMIT", "BulkRetry", "from_form", "from_json", "retry_dead_letters"]

#: The most dead letters one request queues again (send the filter again for more).
MAX_RETRY_LIMIT = 10_000
DEFAULT_RETRY_LIMIT = 1000
_FIELDS = ("target", "errcode", "error", "failed_since", "failed_before", "limit", "dry_run")
_INTEGER = re.compile(r"-?\d{1,18}")


@dataclass(frozen=True, slots=True)
class BulkRetry:
    """One bulk retry: which dead letters, how many at most, and whether only to count them."""

    match: DeadLetterFilter
    limit: int = DEFAULT_RETRY_LIMIT
    dry_run: bool = False


async def retry_dead_letters(relay: Relay, request: BulkRetry) -> dict[str, typing.Any]:
    """Queue the dead letters ``request`` selects again and wake their targets' dispatchers."""
    store, match = relay.store, request.match
    ids = await store.retry_many(match, limit=request.limit, dry_run=request.dry_run)
    more = False
    if len(ids) == request.limit:
        if request.dry_run:  # look one past the ones listed
            past = await store.retry_many(match, limit=request.limit + 1, dry_run=True)
            more = len(past) > len(ids)
        else:  # the retried ones are queued now: is any dead letter of the filter left?
            more = bool(await store.retry_many(match, limit=1, dry_run=True))
    if ids and not request.dry_run:
        relay.dispatcher.kick(match.target)
    # Messages recalled while queued match the rest of the filter but are left out (only an
    # errcode filter of "cancelled" takes them): say how many, so "0 match" is not a mystery.
    left_out = 0
    if match.errcode is None:
        cancelled = match.cancelled()
        left_out = len(await store.retry_many(cancelled, limit=request.limit, dry_run=True))
    return {
        "retried": len(ids),
        "ids": ids,
        "more": more,
        "dry_run": request.dry_run,
        "cancelled_left_out": left_out,
    }


def from_json(relay: Relay, body: object) -> BulkRetry:
    """``POST /v1/messages:retry``'s body: a 400 naming the field for anything off."""
    if not isinstance(body, dict):
        raise HTTPProblem(
            400, 'the body must be a JSON object such as {"target": "ops"} ({} takes all)'
        )
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise HTTPProblem(
            400,
            f"unknown field {unknown[0]!r}: the filter takes " + ", ".join(_FIELDS),
            pointer=f"/{unknown[0]}",
        )
    target = body.get("target")
    if target is not None:
        relay.target(target, "/target")  # 400 for a non-string, 404 naming the known targets
    errcode = body.get("errcode")
    if errcode is not None and not _errcode(errcode):
        raise _bad("errcode", 'an integer (300001) or a string ("Forbidden.AccessDenied")')
    error = body.get("error")
    if error is not None and not (isinstance(error, str) and _text(error)):
        raise _bad("error", "a non-empty piece of the error's text")
    times = {name: _epoch(body.get(name), name) for name in ("failed_since", "failed_before")}
    limit = body.get("limit", DEFAULT_RETRY_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RETRY_LIMIT:
        raise _bad("limit", f"a whole number from 1 to {MAX_RETRY_LIMIT:,}")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise _bad("dry_run", "true or false")
    return BulkRetry(_filter(target, errcode, error, **times), limit, dry_run)


def from_form(relay: Relay, form: Mapping[str, str]) -> BulkRetry:
    """The dashboard's form: empty fields mean "any"; times are the relay's local time."""
    target = form.get("target", "").strip() or None
    if target is not None:
        relay.target(target, "")
    code = form.get("errcode", "").strip()
    errcode: int | str | None = (int(code) if _INTEGER.fullmatch(code) else code) or None
    error = form.get("error", "").strip() or None
    if not all(_text(value) for value in (code, error) if value):
        raise HTTPProblem(400, "the filter's texts must be valid UTF-8 text")
    times = {
        name: _local_time(form.get(name, "").strip(), label)
        for name, label in (("failed_since", "Failed since"), ("failed_before", "Failed before"))
    }
    return BulkRetry(
        _filter(target, errcode, error, **times),
        DEFAULT_RETRY_LIMIT,
        form.get("action") == "preview",
    )


def _filter(
    target: str | None,
    errcode: int | str | None,
    error: str | None,
    failed_since: float | None,
    failed_before: float | None,
) -> DeadLetterFilter:
    try:
        return DeadLetterFilter(
            target=target,
            errcode=errcode,
            error=error,
            failed_since=failed_since,
            failed_before=failed_before,
        )
    except ValueError as exc:
        raise HTTPProblem(400, str(exc), field="failed_since") from None


def _errcode(value: object) -> bool:
    """An errcode as stores keep it: a 64-bit integer, or storable text."""
    if isinstance(value, str):
        return _text(value)
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def _text(value: str) -> bool:
    """Non-empty text that can be stored (a lone surrogate cannot)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return bool(value)


def _bad(name: str, what: str) -> HTTPProblem:
    return HTTPProblem(400, f"{name} must be {what}", pointer=f"/{name}", field=name)


def _epoch(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(name, "a time in seconds since the epoch")
    return float(value)


def _local_time(value: str, label: str) -> float | None:
    """A ``datetime-local`` field (``2024-06-01T14:30``) in the relay's time zone."""
    if not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
        # A moment at the calendar's ends has no UTC time (year 0 or 10,000): ValueError.
        return moment.timestamp() if moment.tzinfo else moment.astimezone().timestamp()
    except (ValueError, OverflowError, OSError):
        raise HTTPProblem(
            400, f"{label}: {value!r} is not a date and time such as 2024-06-01T14:30"
        ) from None
