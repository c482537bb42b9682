"""The outbox store contract: every store (``conftest.STORES``) passes every test here.

Time comes from the ``clock`` fixture (a ``FakeClock``); no test waits for wall-clock time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid

import pytest

from dingpush.relay.stores import (
    Claim,
    DeadLetterFilter,
    InvalidTransition,
    LeaseLost,
    MessageNotFound,
    NewMessage,
    OutboxStore,
    Outcome,
    Status,
    StoreUnavailable,
)
from dingpush.testing import FakeClock

pytestmark = pytest.mark.anyio

LEASE = 30.0
_counter = itertools.count()


def new(
    target: str = "ops", kind: str = "text", text: str | None = None, **kw: object
) -> NewMessage:
    content = text if text is not None else f"message {next(_counter)}"
    payload = json.dumps({"msgtype": kind, kind: {"content": content}}, ensure_ascii=False)
    return NewMessage(target=target, kind=kind, payload=payload, **kw)  # type: ignore[arg-type]


async def enqueue(store: OutboxStore, count: int, **kw: object) -> list[str]:
    return [(await store.enqueue(new(**kw))).id for _ in range(count)]  # type: ignore[arg-type]


async def claim_one(store: OutboxStore, **kw: object) -> Claim:
    (claim,) = await store.claim(1, lease=LEASE, **kw)  # type: ignore[arg-type]
    return claim


# -- enqueue ----------------------------------------------------------------------------------


async def test_enqueue_stores_the_message_as_given(store: OutboxStore, clock: FakeClock) -> None:
    payload = json.dumps({"msgtype": "text", "text": {"content": "磁盘已满 ✓ \u2028"}})
    answer = await store.enqueue(NewMessage(target="ops", kind="text", payload=payload))
    assert answer.created
    assert str(uuid.UUID(answer.id)) == answer.id
    message = await store.get(answer.id)
    assert (message.target, message.kind, message.payload) == ("ops", "text", payload)
    assert message.status is Status.QUEUED
    assert message.created_at == message.updated_at == message.due_at == clock.time()
    assert (message.attempts, message.lease_until, message.delivered_at) == (0, None, None)
    assert (message.last_error, message.digest_id, message.carries) == (None, None, 0)


async def test_enqueue_many_answers_in_order(store: OutboxStore) -> None:
    batch = [new(text=f"m{i}") for i in range(5)]
    answers = await store.enqueue_many(batch)
    assert [json.loads((await store.get(a.id)).payload)["text"]["content"] for a in answers] == [
        f"m{i}" for i in range(5)
    ]
    assert await store.enqueue_many([]) == []


async def test_a_repeated_idempotency_key_returns_the_first_id(store: OutboxStore) -> None:
    first = await store.enqueue(new(text="first", idempotency_key="alert-1"))
    again = await store.enqueue(new(text="second", idempotency_key="alert-1"))
    assert again.id == first.id and first.created and not again.created
    page = await store.list_messages()
    assert [m.id for m in page.items] == [first.id]
    assert json.loads(page.items[0].payload)["text"]["content"] == "first"
    assert page.items[0].idempotency_key == "alert-1"


async def test_idempotency_keys_within_and_across_batches(store: OutboxStore) -> None:
    answers = await store.enqueue_many(
        [new(idempotency_key="a"), new(idempotency_key="b"), new(idempotency_key="a"), new()]
    )
    assert answers[2].id == answers[0].id and not answers[2].created
    assert [a.created for a in answers] == [True, True, False, True]
    later = await store.enqueue_many([new(idempotency_key="b"), new(idempotency_key="c")])
    assert later[0].id == answers[1].id and not later[0].created
    assert len((await store.list_messages()).items) == 4


async def test_idempotency_holds_under_concurrent_enqueues(store: OutboxStore) -> None:
    answers = await asyncio.gather(
        *(store.enqueue(new(idempotency_key="burst")) for _ in range(50))
    )
    assert len({a.id for a in answers}) == 1
    assert sum(a.created for a in answers) == 1
    assert len((await store.list_messages()).items) == 1


async def test_a_message_is_not_claimed_before_it_is_due(
    store: OutboxStore, clock: FakeClock
) -> None:
    (later,) = await enqueue(store, 1, due_at=clock.time() + 60)
    assert await store.claim(10, lease=LEASE) == []
    clock.advance(60)
    assert [c.id for c in await store.claim(10, lease=LEASE)] == [later]


# -- claim ------------------------------------------------------------------------------------


async def test_claim_takes_the_oldest_due_first_across_targets(
    store: OutboxStore, clock: FakeClock
) -> None:
    now = clock.time()
    late = (await store.enqueue(new("a", due_at=now - 5))).id
    early = (await store.enqueue(new("b", due_at=now - 50))).id
    middle = (await store.enqueue(new("a", due_at=now - 20))).id
    future = (await store.enqueue(new("b", due_at=now + 5))).id
    claims = await store.claim(2, lease=LEASE)
    assert [c.id for c in claims] == [early, middle]
    assert [c.id for c in await store.claim(5, lease=LEASE)] == [late]
    clock.advance(5)
    assert [c.id for c in await store.claim(5, lease=LEASE)] == [future]


async def test_claim_keeps_enqueue_order_among_equal_due_times(store: OutboxStore) -> None:
    ids = await enqueue(store, 12)
    claimed = [c.id for c in await store.claim(5, lease=LEASE)]
    claimed += [c.id for c in await store.claim(10, lease=LEASE)]
    assert claimed == ids


async def test_claim_for_one_target(store: OutboxStore) -> None:
    ops = await enqueue(store, 3, target="ops")
    await enqueue(store, 3, target="dev")
    claims = await store.claim(10, lease=LEASE, target="ops")
    assert [c.id for c in claims] == ops
    assert {c.message.target for c in claims} == {"ops"}
    assert await store.claim(10, lease=LEASE, target="ops") == []
    assert await store.claim(10, lease=LEASE, target="nobody") == []


async def test_claim_moves_messages_to_sending_under_a_lease(
    store: OutboxStore, clock: FakeClock
) -> None:
    (message_id,) = await enqueue(store, 1)
    claim = await claim_one(store)
    assert claim.lease_until == clock.time() + LEASE
    assert claim.message.status is Status.SENDING
    stored = await store.get(message_id)
    assert (stored.status, stored.lease_until) == (Status.SENDING, clock.time() + LEASE)
    assert await store.claim(10, lease=LEASE) == []


async def test_no_message_is_claimed_twice_by_concurrent_claimers(store: OutboxStore) -> None:
    ids = await enqueue(store, 200)
    claimed: list[str] = []

    async def claimer() -> None:
        while batch := await store.claim(7, lease=LEASE):
            claimed.extend(c.id for c in batch)
            await asyncio.sleep(0)

    await asyncio.gather(*(claimer() for _ in range(16)))
    assert sorted(claimed) == sorted(ids)


# -- settling a claim -------------------------------------------------------------------------


async def test_mark_delivered_records_the_reply(store: OutboxStore, clock: FakeClock) -> None:
    (message_id,) = await enqueue(store, 1)
    claim = await claim_one(store)
    clock.advance(2)
    reply = {"errcode": 0, "errmsg": "ok", "status_code": 200, "parts": 1}
    message = await store.mark_delivered(claim, reply=reply)
    assert message.status is Status.DELIVERED
    assert message.delivered_at == clock.time() and message.attempts == 1
    assert message.lease_until is None
    assert (await store.get(message_id)).reply == reply
    (attempt,) = await store.attempts(message_id)
    assert attempt.outcome is Outcome.DELIVERED and attempt.number == 1
    assert attempt.started_at == clock.time() - 2 and attempt.finished_at == clock.time()
    again = await store.mark_delivered(claim)  # a repeat changes nothing
    assert again.reply == reply and len(await store.attempts(message_id)) == 1


async def test_schedule_retry_requeues_at_the_given_time(
    store: OutboxStore, clock: FakeClock
) -> None:
    (message_id,) = await enqueue(store, 1)
    claim = await claim_one(store)
    retry_at = clock.time() + 30
    message = await store.schedule_retry(claim, retry_at=retry_at, error="系统繁忙", errcode=-1)
    assert (message.status, message.due_at, message.attempts) == (Status.QUEUED, retry_at, 1)
    assert (message.last_error, message.last_errcode) == ("系统繁忙", -1)
    assert await store.claim(1, lease=LEASE) == []
    clock.advance(30)
    second = await claim_one(store)
    await store.schedule_retry(
        second, retry_at=clock.time(), error="throttled", errcode="send.too.fast"
    )
    stored = await store.get(message_id)
    assert (stored.attempts, stored.last_errcode) == (2, "send.too.fast")
    history = await store.attempts(message_id)
    assert [(a.number, a.outcome, a.errcode) for a in history] == [
        (1, Outcome.RETRY, -1),
        (2, Outcome.RETRY, "send.too.fast"),
    ]


async def test_fail_makes_a_dead_letter(store: OutboxStore) -> None:
    (message_id,) = await enqueue(store, 1)
    claim = await claim_one(store)
    message = await store.fail(claim, error="robot removed from the group", errcode=400102)
    assert (message.status, message.attempts) == (Status.FAILED, 1)
    assert (message.last_error, message.last_errcode) == ("robot removed from the group", 400102)
    assert await store.claim(1, lease=LEASE) == []
    (attempt,) = await store.attempts(message_id)
    assert (attempt.outcome, attempt.error) == (Outcome.FAILED, "robot removed from the group")


async def test_retry_queues_a_failed_message_again(store: OutboxStore, clock: FakeClock) -> None:
    (message_id,) = await enqueue(store, 1)
    await store.fail(await claim_one(store), error="revoked", errcode=300001)
    clock.advance(100)
    message = await store.retry(message_id)
    assert (message.status, message.due_at, message.attempts) == (Status.QUEUED, clock.time(), 0)
    claim = await claim_one(store)
    await store.mark_delivered(claim)
    history = await store.attempts(message_id)
    assert [(a.number, a.outcome) for a in history] == [
        (1, Outcome.FAILED),
        (2, Outcome.DELIVERED),
    ]
    with pytest.raises(InvalidTransition, match="only failed messages"):
        await store.retry(message_id)
    with pytest.raises(MessageNotFound):
        await store.retry(str(uuid.uuid4()))


async def test_retry_at_a_later_time(store: OutboxStore, clock: FakeClock) -> None:
    (message_id,) = await enqueue(store, 1)
    await store.fail(await claim_one(store), error="x")
    await store.retry(message_id, due_at=clock.time() + 10)
    assert await store.claim(1, lease=LEASE) == []
    clock.advance(10)
    assert [c.id for c in await store.claim(1, lease=LEASE)] == [message_id]


async def _dead_letters(
    store: OutboxStore, clock: FakeClock, cases: list[tuple[str, str, int | str | None]]
) -> list[str]:
    """One dead letter per (target, error, errcode), one second apart, oldest first."""
    ids = []
    for target, error, errcode in cases:
        (message_id,) = await enqueue(store, 1, target=target)
        await store.fail(await claim_one(store, target=target), error=error, errcode=errcode)
        ids.append(message_id)
        clock.advance(1)
    return ids


DEAD = [
    ("ops", "TokenNotFound: token is not exist", 300001),
    ("ops", "gave up after 24 h: TransportError: connection refused", None),
    ("dev", "TokenNotFound: token is not exist", 300001),
    (
        "ops",
        "PermissionDenied: no permission",
        "Forbidden.AccessDenied.AccessTokenPermissionDenied",
    ),
    ("ops", "gave up after 24 h: ServerBusy: 系统繁忙", -1),
]


async def test_cancel_takes_a_queued_message_out_of_the_queue(
    store: OutboxStore, clock: FakeClock
) -> None:
    (kept, cancelled) = await enqueue(store, 2)
    clock.advance(1)
    message = await store.cancel(cancelled, reason="cancelled by alice: recalled before sending")
    assert message.status is Status.FAILED and message.attempts == 0
    assert message.cancelled and message.last_errcode == "cancelled"
    assert "alice" in (message.last_error or "")
    assert message.updated_at == clock.time()
    assert await store.attempts(cancelled) == []
    assert (await claim_one(store)).id == kept
    with pytest.raises(InvalidTransition):  # sending, then failed: nothing to cancel
        await store.cancel(kept, reason="too late")
    with pytest.raises(InvalidTransition):
        await store.cancel(cancelled, reason="twice")
    with pytest.raises(MessageNotFound):
        await store.cancel("no-such-id", reason="x")
    retried = await store.retry(cancelled)  # a dead letter an operator may still send
    assert retried.status is Status.QUEUED


async def test_note_recall_records_it_in_the_reply(store: OutboxStore) -> None:
    (message_id,) = await enqueue(store, 1)
    with pytest.raises(InvalidTransition):  # not delivered: nothing was recalled
        await store.note_recall(message_id, {"at": 1.0})
    claim = await claim_one(store)
    await store.mark_delivered(claim, reply={"errcode": 0, "process_query_keys": ["k1", "k2"]})
    first = {"at": 1.0, "by": "alice", "recalled": ["k1"], "failed": {"k2": "SYSTEM_ERROR"}}
    await store.note_recall(message_id, first)
    again = {"at": 2.0, "by": "bob", "recalled": ["k1", "k2"], "failed": {}}
    message = await store.note_recall(message_id, again)
    assert message.status is Status.DELIVERED
    assert message.reply == {"errcode": 0, "process_query_keys": ["k1", "k2"], "recall": again}
    assert (await store.get(message_id)).reply == message.reply
    with pytest.raises(MessageNotFound):
        await store.note_recall("no-such-id", again)


@pytest.mark.parametrize(
    ("where", "picked"),
    [
        (DeadLetterFilter(), [0, 1, 2, 3, 4]),
        (DeadLetterFilter(target="ops"), [0, 1, 3, 4]),
        (DeadLetterFilter(errcode=300001), [0, 2]),
        (DeadLetterFilter(errcode="300001"), []),  # a string code is not the int one
        (DeadLetterFilter(errcode="Forbidden.AccessDenied.AccessTokenPermissionDenied"), [3]),
        (DeadLetterFilter(errcode=-1), [4]),
        (DeadLetterFilter(error="TransportError"), [1]),
        (DeadLetterFilter(error="gave up after 24 h", target="ops"), [1, 4]),
        (DeadLetterFilter(error="transporterror"), []),  # case-sensitive
        (DeadLetterFilter(failed_since=1001.0), [1, 2, 3, 4]),
        (DeadLetterFilter(failed_before=1002.0), [0, 1]),
        (DeadLetterFilter(failed_since=1001.0, failed_before=1003.0, target="ops"), [1]),
    ],
    ids=repr,
)
async def test_retry_many_takes_the_dead_letters_the_filter_selects(
    store: OutboxStore, clock: FakeClock, where: DeadLetterFilter, picked: list[int]
) -> None:
    clock.set(1000.0)
    ids = await _dead_letters(store, clock, DEAD)
    (queued,) = await enqueue(store, 1)  # never taken: not a dead letter
    wanted = [ids[i] for i in picked]
    assert await store.retry_many(where, dry_run=True) == wanted
    statuses = [(await store.get(i)).status for i in ids]
    assert statuses == [Status.FAILED] * len(ids)  # a dry run changes nothing
    assert await store.retry_many(where) == wanted  # oldest first
    for index, message_id in enumerate(ids):
        message = await store.get(message_id)
        if index in picked:
            assert (message.status, message.attempts, message.due_at) == (
                Status.QUEUED,
                0,
                clock.time(),
            )
            assert [a.outcome for a in await store.attempts(message_id)] == [Outcome.FAILED]
        else:
            assert message.status is Status.FAILED
    assert (await store.get(queued)).status is Status.QUEUED
    assert await store.retry_many(where) == []  # nothing left that matches


async def test_retry_many_leaves_cancelled_messages_unless_asked_for_by_errcode(
    store: OutboxStore, clock: FakeClock
) -> None:
    """A message recalled while queued was taken back on purpose: "retry ops" must not send it."""
    (dead,) = await _dead_letters(store, clock, [("ops", "gave up", 300001)])
    (cancelled,) = await enqueue(store, 1)
    await store.cancel(cancelled, reason="cancelled by alice via api before it was sent")
    for where in (
        DeadLetterFilter(),
        DeadLetterFilter(target="ops"),
        DeadLetterFilter(error="alice"),
        DeadLetterFilter(failed_since=0.0),
    ):
        assert await store.retry_many(where, dry_run=True) == (
            [dead] if where.error is None else []
        )
    assert await store.retry_many(DeadLetterFilter(errcode="cancelled"), dry_run=True) == [
        cancelled
    ]
    only_cancelled = DeadLetterFilter(target="ops").cancelled()
    assert await store.retry_many(only_cancelled, dry_run=True) == [cancelled]
    assert await store.retry_many(DeadLetterFilter(target="ops")) == [dead]
    assert (await store.get(cancelled)).cancelled
    assert await store.retry_many(DeadLetterFilter(errcode="cancelled", target="ops")) == [
        cancelled
    ]
    assert (await store.get(cancelled)).status is Status.QUEUED


async def test_retry_many_takes_at_most_limit_oldest_first_and_wakes_waiters(
    store: OutboxStore, clock: FakeClock
) -> None:
    ids = await _dead_letters(store, clock, [("ops", "x", None)] * 5)
    waiter = asyncio.ensure_future(store.wait_for_work(60))
    await asyncio.sleep(0)
    later = clock.time() + 30
    assert await store.retry_many(DeadLetterFilter(), limit=2, due_at=later) == ids[:2]
    assert await waiter is True
    assert [(await store.get(i)).due_at for i in ids[:2]] == [later, later]
    assert await store.retry_many(DeadLetterFilter(), limit=10, dry_run=True) == ids[2:]
    clock.advance(30)
    claimed = await store.claim(10, lease=LEASE)
    assert [c.id for c in claimed] == ids[:2]  # their old order, due together


async def test_retry_many_checks_its_arguments(store: OutboxStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.retry_many(DeadLetterFilter(), limit=0)
    for bad in (
        {"target": ""},
        {"error": ""},
        {"errcode": 1.5},
        {"errcode": True},
        {"failed_since": "yesterday"},
        {"failed_since": float("nan")},
        {"failed_since": 10.0, "failed_before": 10.0},
    ):
        with pytest.raises(ValueError):
            DeadLetterFilter(**bad)


async def test_release_returns_claims_untried(store: OutboxStore) -> None:
    ids = await enqueue(store, 3)
    claims = await store.claim(3, lease=LEASE)
    assert await store.release([*claims, claims[0]]) == 3
    for message_id in ids:
        message = await store.get(message_id)
        assert (message.status, message.attempts, message.lease_until) == (Status.QUEUED, 0, None)
        assert await store.attempts(message_id) == []
    assert [c.id for c in await store.claim(3, lease=LEASE)] == ids  # still first in line
    assert await store.release([]) == 0


# -- leases -----------------------------------------------------------------------------------


async def test_an_expired_lease_is_requeued(store: OutboxStore, clock: FakeClock) -> None:
    (message_id,) = await enqueue(store, 1)
    await claim_one(store)
    clock.advance(LEASE - 1)
    assert await store.requeue_expired() == []
    assert await store.claim(1, lease=LEASE) == []
    clock.advance(1)
    assert await store.requeue_expired() == [message_id]
    message = await store.get(message_id)
    assert (message.status, message.attempts, message.lease_until) == (Status.QUEUED, 1, None)
    assert message.last_error is not None and "lease expired" in message.last_error
    (attempt,) = await store.attempts(message_id)
    assert attempt.outcome is Outcome.LEASE_EXPIRED
    assert [c.id for c in await store.claim(1, lease=LEASE)] == [message_id]


async def test_a_lost_lease_cannot_settle(store: OutboxStore, clock: FakeClock) -> None:
    (message_id,) = await enqueue(store, 1)
    stale = await claim_one(store)
    clock.advance(LEASE)
    await store.requeue_expired()
    with pytest.raises(LeaseLost):  # requeued, not yet claimed again
        await store.fail(stale, error="late")
    fresh = await claim_one(store)
    assert fresh.token != stale.token
    with pytest.raises(LeaseLost, match="lease"):
        await store.schedule_retry(stale, retry_at=clock.time(), error="late")
    with pytest.raises(LeaseLost):
        await store.fail(stale, error="late")
    assert await store.release([stale]) == 0
    assert (await store.get(message_id)).status is Status.SENDING
    await store.schedule_retry(fresh, retry_at=clock.time(), error="busy", errcode=-1)


async def test_a_late_delivery_is_still_recorded(store: OutboxStore, clock: FakeClock) -> None:
    (message_id,) = await enqueue(store, 1)
    stale = await claim_one(store)
    clock.advance(LEASE)
    await store.requeue_expired()
    fresh = await claim_one(store)
    # DingTalk accepted the stale holder's send: that is a fact. The fresh holder's own send
    # carries the same msgUuid, so DingTalk drops it as a duplicate.
    message = await store.mark_delivered(stale, reply={"errcode": 0})
    assert message.status is Status.DELIVERED
    with pytest.raises(LeaseLost):
        await store.schedule_retry(fresh, retry_at=clock.time(), error="x")
    assert (await store.mark_delivered(fresh)).reply == {"errcode": 0}
    assert (await store.get(message_id)).status is Status.DELIVERED


async def test_a_lost_lease_on_a_digested_message(store: OutboxStore, clock: FakeClock) -> None:
    (message_id,) = await enqueue(store, 1)
    stale = await claim_one(store)
    clock.advance(LEASE)
    await store.requeue_expired()
    await store.digest([message_id], new(kind="markdown"))
    with pytest.raises(LeaseLost, match="digested"):
        await store.mark_delivered(stale)


# -- digests ----------------------------------------------------------------------------------


async def test_digest_carries_its_originals(store: OutboxStore, clock: FakeClock) -> None:
    originals = await enqueue(store, 3)
    (other,) = await enqueue(store, 1)
    digest = await store.digest(originals, new(kind="markdown", text="3 alerts"))
    assert (digest.status, digest.carries, digest.kind) == (Status.QUEUED, 3, "markdown")
    for original in originals:
        message = await store.get(original)
        assert (message.status, message.digest_id) == (Status.DIGESTED, digest.id)
    assert [m.id for m in await store.digest_originals(digest.id)] == originals
    assert await store.digest_originals(other) == []
    claimed = [c.id for c in await store.claim(10, lease=LEASE)]
    assert claimed == [other, digest.id]


async def test_digest_is_all_or_nothing(store: OutboxStore) -> None:
    queued = await enqueue(store, 2)
    (busy,) = await enqueue(store, 1)
    (elsewhere,) = await enqueue(store, 1, target="dev")
    await store.claim(1, lease=LEASE, target="ops")  # takes queued[0]
    with pytest.raises(InvalidTransition, match="not queued") as caught:
        await store.digest([queued[1], queued[0]], new(kind="markdown"))
    assert caught.value.message_id == queued[0]
    with pytest.raises(InvalidTransition, match="target"):
        await store.digest([busy, elsewhere], new(kind="markdown"))
    with pytest.raises(MessageNotFound):
        await store.digest([busy, str(uuid.uuid4())], new(kind="markdown"))
    with pytest.raises(ValueError, match="at least one"):
        await store.digest([], new(kind="markdown"))
    with pytest.raises(ValueError, match="idempotency"):
        await store.digest([busy], new(kind="markdown", idempotency_key="k"))
    page = await store.list_messages()
    assert len(page.items) == 4  # no digest was stored
    assert {m.status for m in page.items} == {Status.QUEUED, Status.SENDING}
    with pytest.raises(MessageNotFound):
        await store.digest_originals(str(uuid.uuid4()))


# -- reads ------------------------------------------------------------------------------------


async def test_unknown_ids(store: OutboxStore) -> None:
    unknown = str(uuid.uuid4())
    with pytest.raises(MessageNotFound) as caught:
        await store.get(unknown)
    assert caught.value.message_id == unknown
    with pytest.raises(MessageNotFound):
        await store.attempts(unknown)


async def test_list_pages_through_everything_newest_first(store: OutboxStore) -> None:
    ids = await enqueue(store, 23)
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_messages(limit=5, cursor=cursor)
        seen.extend(m.id for m in page.items)
        await enqueue(store, 1)  # arrivals during paging do not disturb the pages
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ids[::-1]
    with pytest.raises(ValueError, match="cursor"):
        await store.list_messages(cursor="not-a-cursor")


async def test_list_filters_by_status_and_target(store: OutboxStore) -> None:
    ops = await enqueue(store, 3, target="ops")
    dev = await enqueue(store, 2, target="dev")
    await store.mark_delivered(await claim_one(store, target="ops"))
    await store.fail(await claim_one(store, target="dev"), error="x")

    async def ids(**kw: object) -> list[str]:
        return [m.id for m in (await store.list_messages(**kw)).items]  # type: ignore[arg-type]

    assert await ids(target="ops") == ops[::-1]
    assert await ids(status=Status.DELIVERED) == [ops[0]]
    assert await ids(status=Status.QUEUED) == [dev[1], ops[2], ops[1]]
    assert await ids(status=Status.QUEUED, target="dev") == [dev[1]]
    assert await ids(status=Status.FAILED, target="ops") == []
    page = await store.list_messages(status=Status.QUEUED, limit=2)
    rest = await store.list_messages(status=Status.QUEUED, limit=2, cursor=page.next_cursor)
    assert [m.id for m in rest.items] == [ops[1]] and rest.next_cursor is None


async def test_list_queued_in_delivery_order(store: OutboxStore, clock: FakeClock) -> None:
    texts = await enqueue(store, 2, kind="text")
    (link,) = await enqueue(store, 1, kind="link")
    (early,) = await enqueue(store, 1, kind="markdown", due_at=clock.time() - 10)
    await enqueue(store, 1, target="dev")
    await store.claim(1, lease=LEASE, target="ops")  # takes the early one
    assert [m.id for m in await store.list_queued("ops")] == [*texts, link]
    early_again = await store.enqueue(new(kind="markdown", due_at=clock.time() - 5))
    queued = await store.list_queued("ops", kinds={"text", "markdown"})
    assert [m.id for m in queued] == [early_again.id, *texts]
    assert [m.id for m in await store.list_queued("ops", limit=1)] == [early_again.id]
    assert early not in [m.id for m in await store.list_queued("ops")]
    assert await store.list_queued("nobody") == []


async def test_next_due(store: OutboxStore, clock: FakeClock) -> None:
    assert await store.next_due() is None
    now = clock.time()
    await store.enqueue(new("ops", due_at=now + 30))
    await store.enqueue(new("dev", due_at=now + 10))
    assert await store.next_due() == now + 10
    assert await store.next_due(target="ops") == now + 30
    assert await store.next_due(target="nobody") is None


async def test_stats_per_target(store: OutboxStore, clock: FakeClock) -> None:
    now = clock.time()
    await enqueue(store, 3, target="ops", due_at=now - 5)
    await enqueue(store, 1, target="ops")
    await enqueue(store, 2, target="dev")
    await store.mark_delivered(await claim_one(store, target="ops"))
    await claim_one(store, target="ops")  # one in flight
    await store.fail(await claim_one(store, target="dev"), error="bad token", errcode=300001)
    stats = await store.stats(window=60)
    ops, dev = stats.targets["ops"], stats.targets["dev"]
    assert (ops.queued, ops.sending, ops.failed, ops.backlog) == (2, 1, 0, 3)
    assert ops.oldest_due == now - 5 and ops.delivered_recent == 1 and ops.last_error is None
    assert (dev.queued, dev.failed, dev.oldest_due) == (1, 1, now)
    assert (dev.last_error, dev.last_errcode, dev.last_error_at) == ("bad token", 300001, now)
    assert (stats.queue_depth, stats.failed, stats.at, stats.window) == (4, 1, now, 60)
    clock.advance(61)
    assert (await store.stats(window=60)).targets["ops"].delivered_recent == 0
    assert (await store.stats(window=120)).targets["ops"].delivered_recent == 1


async def test_prune_removes_old_deliveries_and_keeps_the_rest(
    store: OutboxStore, clock: FakeClock
) -> None:
    old = (await store.enqueue(new(idempotency_key="old"))).id
    await store.mark_delivered(await claim_one(store))
    originals = await enqueue(store, 2)
    digest = await store.digest(originals, new(kind="markdown"))
    await store.mark_delivered(await claim_one(store))
    (dead,) = await enqueue(store, 1)
    await store.fail(await claim_one(store), error="x")
    clock.advance(10)
    (recent,) = await enqueue(store, 1)
    await store.mark_delivered(await claim_one(store))
    (waiting,) = await enqueue(store, 1)
    assert await store.prune(before=clock.time() - 5) == 4
    for gone in (old, digest.id, *originals):
        with pytest.raises(MessageNotFound):
            await store.get(gone)
    for kept in (dead, recent, waiting):
        await store.get(kept)
    assert (await store.enqueue(new(idempotency_key="old"))).created  # the key went with it
    assert await store.prune(before=clock.time() - 5) == 0


# -- lifecycle --------------------------------------------------------------------------------


async def test_ping_and_closing(store: OutboxStore) -> None:
    await store.ping()
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(StoreUnavailable, match=r"closed|not open"):
        await store.enqueue(new())
    with pytest.raises(StoreUnavailable):
        await store.ping()
    await store.open()  # the fixture closes it again
    await store.ping()


async def test_probe_commits_a_write_and_leaves_no_trace(store: OutboxStore) -> None:
    # PostgresStore too: probe() is what /readyz and start-up ask (see OutboxStore.probe).
    await store.probe()
    await store.probe()
    assert (await store.list_messages()).items == ()
    assert (await store.stats()).targets == {}
    assert await store.wait_for_work(0.01) is False  # a probe wakes no dispatcher
    await store.aclose()
    with pytest.raises(StoreUnavailable, match=r"closed|not open"):
        await store.probe()
    await store.open()  # the fixture closes it again
    await store.probe()


async def test_wait_for_work_wakes_on_enqueue(store: OutboxStore) -> None:
    assert await store.wait_for_work(0.01) is False
    waiter = asyncio.ensure_future(store.wait_for_work(60))
    await asyncio.sleep(0)
    await store.enqueue(new())
    assert await waiter is True
    (message_id,) = [m.id for m in (await store.list_messages()).items]
    claim = await claim_one(store)
    waiter = asyncio.ensure_future(store.wait_for_work(60))
    await asyncio.sleep(0)
    await store.release([claim])
    assert await waiter is True
    assert (await store.get(message_id)).status is Status.QUEUED


async def test_arguments_are_checked(store: OutboxStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.claim(0, lease=LEASE)
    with pytest.raises(ValueError, match="lease"):
        await store.claim(1, lease=0)
    with pytest.raises(ValueError, match="limit"):
        await store.list_messages(limit=0)
    with pytest.raises(ValueError, match="target"):
        NewMessage(target="", kind="text", payload="{}")
    with pytest.raises(ValueError, match="JSON text"):
        NewMessage(target="ops", kind="text", payload=b"{}")  # type: ignore[arg-type]
    await enqueue(store, 1)
    claim = await claim_one(store)
    with pytest.raises(ValueError, match="JSON"):
        await store.mark_delivered(claim, reply={"when": object()})
    with pytest.raises(ValueError, match="errcode"):
        await store.fail(claim, error="x", errcode=1.5)  # type: ignore[arg-type]
    assert (await store.get(claim.id)).status is Status.SENDING
