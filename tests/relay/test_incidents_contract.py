"""The incident store contract: every incident store (``INCIDENT_STORES``) passes every test.

Times are plain numbers the tests pass in (the stores take ``now`` from their caller); nothing
waits for wall-clock time.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from _pgsupport import DSN, drop_schema, scratch_schema
from dingpush.relay._incidents import (
    ChatClaim,
    EventKind,
    Incident,
    IncidentState,
    IncidentStore,
    TimelineEvent,
)
from dingpush.relay.stores import IncidentNotFound, MemoryIncidentStore, PostgresStore, SQLiteStore
from dingpush.relay.stores._postgres_incidents import PostgresIncidentStore

pytestmark = pytest.mark.anyio

#: Where an incident store joins the suite: one line that builds it (an async context manager).
INCIDENT_STORES: dict[str, Callable[[pathlib.Path], Any]] = {
    "memory": lambda tmp_path: MemoryIncidentStore(),
    "sqlite": lambda tmp_path: SQLiteStore(tmp_path / "outbox.sqlite").incidents,
    "postgres": lambda tmp_path: PostgresStore(DSN, schema=scratch_schema(), pool_size=6).incidents,
}

T0 = 1_800_000_000.0


@pytest.fixture(params=sorted(INCIDENT_STORES))
async def incidents(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> AsyncIterator[IncidentStore]:
    made = INCIDENT_STORES[request.param](tmp_path)
    try:
        async with made as opened:
            yield opened
    finally:
        if isinstance(made, PostgresIncidentStore):
            drop_schema(made.schema)


async def open_one(
    store: IncidentStore,
    group_key: str = "g1",
    *,
    route: str = "ops",
    policy: str | None = "page",
    due_at: float | None = T0 + 300,
    now: float = T0,
    targets: tuple[str, ...] = ("ops",),
) -> Incident:
    return await store.open_incident(
        route=route,
        group_key=group_key,
        title=f"DiskFull {group_key}",
        labels={"alertname": "DiskFull", "instance": group_key},
        policy=policy,
        targets=targets,
        due_at=due_at,
        now=now,
    )


def kinds(incident: Incident) -> list[EventKind]:
    return [event.kind for event in incident.timeline]


# -- opening ----------------------------------------------------------------------------------


async def test_open_makes_an_incident_as_given(incidents: IncidentStore) -> None:
    made = await open_one(incidents, targets=("ops", "db", "ops"))
    assert made.number >= 1
    assert (made.route, made.group_key, made.title) == ("ops", "g1", "DiskFull g1")
    assert dict(made.labels) == {"alertname": "DiskFull", "instance": "g1"}
    assert (made.policy, made.state, made.opened_at) == ("page", IncidentState.OPEN, T0)
    assert (made.step, made.due_at, made.targets) == (0, T0 + 300, ("ops", "db"))
    assert (made.message_ids, made.acknowledged_by, made.closed_at) == ((), None, None)
    assert made.timeline == (TimelineEvent(at=T0, kind=EventKind.OPENED, detail="DiskFull g1"),)
    assert made.key == ("ops", "g1")
    assert await incidents.get(made.number) == made


async def test_numbers_increase(incidents: IncidentStore) -> None:
    numbers = [(await open_one(incidents, f"g{i}")).number for i in range(5)]
    assert numbers == sorted(numbers) and len(set(numbers)) == 5
    other_route = await open_one(incidents, "g0", route="db")
    assert other_route.number > numbers[-1]


async def test_open_is_idempotent_per_route_and_group(incidents: IncidentStore) -> None:
    first = await open_one(incidents)
    again = await open_one(incidents, now=T0 + 60, due_at=T0 + 999)
    assert again == first
    assert (await open_one(incidents, route="db")).number != first.number


async def test_concurrent_opens_of_one_group_make_one_incident(incidents: IncidentStore) -> None:
    made = await asyncio.gather(*(open_one(incidents) for _ in range(8)))
    assert len({incident.number for incident in made}) == 1


async def test_a_route_without_policy_never_comes_due(incidents: IncidentStore) -> None:
    made = await open_one(incidents, policy=None, due_at=T0)
    assert (made.policy, made.due_at) == (None, None)
    assert await incidents.claim_due(now=T0 + 10_000, holder="a", lease=30) == []


async def test_get_of_an_unknown_number_is_none(incidents: IncidentStore) -> None:
    assert await incidents.get(999) is None


# -- messages ---------------------------------------------------------------------------------


async def test_attach_messages_keeps_order_without_repeats(incidents: IncidentStore) -> None:
    made = await open_one(incidents)
    await incidents.attach_messages(made.number, ["m1", "m2"])
    after = await incidents.attach_messages(made.number, ["m2", "m3", "m3"])
    assert after.message_ids == ("m1", "m2", "m3")
    assert (await incidents.get(made.number)) == after


async def test_find_by_message(incidents: IncidentStore) -> None:
    one = await open_one(incidents, "g1")
    two = await open_one(incidents, "g2")
    await incidents.attach_messages(one.number, ["m1"])
    await incidents.attach_messages(two.number, ["m2", "m3"])
    assert (await incidents.find_by_message("m3")).number == two.number  # type: ignore[union-attr]
    assert (await incidents.find_by_message("m1")).number == one.number  # type: ignore[union-attr]
    assert await incidents.find_by_message("nope") is None


async def test_an_unknown_number_is_refused_with_its_number(incidents: IncidentStore) -> None:
    with pytest.raises(IncidentNotFound) as caught:
        await incidents.attach_messages(404, ["m"])
    assert caught.value.number == 404 and "404" in str(caught.value)
    with pytest.raises(IncidentNotFound):
        await incidents.acknowledge(404, who="alice", via="chat", now=T0)
    with pytest.raises(IncidentNotFound):
        await incidents.silence(404, who="alice", detail="1h", now=T0)
    with pytest.raises(IncidentNotFound):
        await incidents.record(404, TimelineEvent(at=T0, kind=EventKind.NOTE))
    with pytest.raises(IncidentNotFound):
        await incidents.advance(
            404, from_step=0, to_step=1, due_at=None, event=TimelineEvent(T0, EventKind.DING)
        )


# -- resolving --------------------------------------------------------------------------------


async def test_resolve_closes_the_open_incident(incidents: IncidentStore) -> None:
    made = await open_one(incidents)
    closed = await incidents.resolve(route="ops", group_key="g1", now=T0 + 50)
    assert closed is not None and closed.number == made.number
    assert (closed.state, closed.closed_at, closed.due_at) == (
        IncidentState.RESOLVED,
        T0 + 50,
        None,
    )
    assert kinds(closed) == [EventKind.OPENED, EventKind.RESOLVED]
    assert closed.timeline[-1].at == T0 + 50
    assert await incidents.resolve(route="ops", group_key="g1", now=T0 + 60) is None
    assert await incidents.claim_due(now=T0 + 10_000, holder="a", lease=30) == []


async def test_resolve_without_an_open_incident_is_none(incidents: IncidentStore) -> None:
    assert await incidents.resolve(route="ops", group_key="g1", now=T0) is None
    await open_one(incidents, "g1")
    assert await incidents.resolve(route="ops", group_key="g2", now=T0) is None
    assert await incidents.resolve(route="db", group_key="g1", now=T0) is None


async def test_a_group_firing_again_after_resolution_is_a_new_incident(
    incidents: IncidentStore,
) -> None:
    first = await open_one(incidents)
    await incidents.resolve(route="ops", group_key="g1", now=T0 + 10)
    second = await open_one(incidents, now=T0 + 20)
    assert second.number > first.number and second.state is IncidentState.OPEN
    assert (await incidents.get(first.number)).state is IncidentState.RESOLVED  # type: ignore[union-attr]


async def test_resolve_closes_an_acknowledged_or_silenced_incident(
    incidents: IncidentStore,
) -> None:
    acked = await open_one(incidents, "g1")
    silenced = await open_one(incidents, "g2")
    await incidents.acknowledge(acked.number, who="alice", via="chat", now=T0 + 1)
    await incidents.silence(silenced.number, who="bob", detail="1h", now=T0 + 1)
    for key in ("g1", "g2"):
        closed = await incidents.resolve(route="ops", group_key=key, now=T0 + 2)
        assert closed is not None and closed.state is IncidentState.RESOLVED


# -- acknowledging and silencing --------------------------------------------------------------


async def test_acknowledge_stops_escalation_and_records_who(incidents: IncidentStore) -> None:
    made = await open_one(incidents)
    acked = await incidents.acknowledge(made.number, who="alice", via="chat", now=T0 + 5)
    assert (acked.state, acked.acknowledged_by) == (IncidentState.ACKNOWLEDGED, "alice")
    assert acked.timeline[-1] == TimelineEvent(
        at=T0 + 5, kind=EventKind.ACKNOWLEDGED, who="alice", detail="chat"
    )
    assert await incidents.claim_due(now=T0 + 10_000, holder="a", lease=30) == []


async def test_acknowledge_is_idempotent_and_keeps_the_first(incidents: IncidentStore) -> None:
    made = await open_one(incidents)
    first = await incidents.acknowledge(made.number, who="alice", via="chat", now=T0 + 5)
    again = await incidents.acknowledge(made.number, who="bob", via="dashboard", now=T0 + 6)
    assert again == first and again.acknowledged_by == "alice"
    assert kinds(again).count(EventKind.ACKNOWLEDGED) == 1


async def test_acknowledge_leaves_a_resolved_incident_closed(incidents: IncidentStore) -> None:
    made = await open_one(incidents)
    closed = await incidents.resolve(route="ops", group_key="g1", now=T0 + 1)
    after = await incidents.acknowledge(made.number, who="alice", via="link", now=T0 + 2)
    assert after == closed


async def test_silence_stops_escalation(incidents: IncidentStore) -> None:
    made = await open_one(incidents)
    quiet = await incidents.silence(made.number, who="alice", detail="s-1 until 12:00", now=T0 + 3)
    assert quiet.state is IncidentState.SILENCED
    assert quiet.timeline[-1] == TimelineEvent(
        at=T0 + 3, kind=EventKind.SILENCED, who="alice", detail="s-1 until 12:00"
    )
    assert await incidents.claim_due(now=T0 + 10_000, holder="a", lease=30) == []


async def test_an_acknowledged_incident_can_be_silenced(incidents: IncidentStore) -> None:
    made = await open_one(incidents)
    await incidents.acknowledge(made.number, who="alice", via="chat", now=T0 + 1)
    quiet = await incidents.silence(made.number, who="bob", detail="2h", now=T0 + 2)
    assert (quiet.state, quiet.acknowledged_by) == (IncidentState.SILENCED, "alice")


async def test_silence_leaves_a_resolved_incident_closed(incidents: IncidentStore) -> None:
    made = await open_one(incidents)
    closed = await incidents.resolve(route="ops", group_key="g1", now=T0 + 1)
    assert await incidents.silence(made.number, who="a", detail="1h", now=T0 + 2) == closed


async def test_record_appends_to_the_timeline_in_order(incidents: IncidentStore) -> None:
    made = await open_one(incidents)
    read = TimelineEvent(at=T0 + 1, kind=EventKind.READ, who="alice")
    note = TimelineEvent(at=T0 + 2, kind=EventKind.NOTE, detail="磁盘 ✓ fallback to app DING")
    await incidents.record(made.number, read)
    after = await incidents.record(made.number, note)
    assert after.timeline[1:] == (read, note)
    assert (await incidents.get(made.number)) == after


# -- escalation: claim_due and advance --------------------------------------------------------


async def test_claim_due_hands_out_due_open_incidents_only(incidents: IncidentStore) -> None:
    early = await open_one(incidents, "g1", due_at=T0 + 10)
    later = await open_one(incidents, "g2", due_at=T0 + 20)
    await open_one(incidents, "g3", due_at=T0 + 100)
    assert await incidents.claim_due(now=T0 + 5, holder="a", lease=30) == []
    claimed = await incidents.claim_due(now=T0 + 20, holder="a", lease=30)
    assert [i.number for i in claimed] == [early.number, later.number]


async def test_claim_due_respects_the_limit(incidents: IncidentStore) -> None:
    for i in range(5):
        await open_one(incidents, f"g{i}", due_at=T0 + i)
    first = await incidents.claim_due(now=T0 + 10, holder="a", lease=30, limit=2)
    rest = await incidents.claim_due(now=T0 + 10, holder="b", lease=30, limit=10)
    assert len(first) == 2 and len(rest) == 3
    assert not {i.number for i in first} & {i.number for i in rest}


async def test_a_claim_holds_until_its_lease_ends(incidents: IncidentStore) -> None:
    made = await open_one(incidents, due_at=T0)
    assert [i.number for i in await incidents.claim_due(now=T0, holder="a", lease=30)] == [
        made.number
    ]
    assert await incidents.claim_due(now=T0 + 29, holder="b", lease=30) == []
    again = await incidents.claim_due(now=T0 + 30, holder="b", lease=30)
    assert [i.number for i in again] == [made.number]


async def test_concurrent_claims_hand_each_incident_to_one_holder(
    incidents: IncidentStore,
) -> None:
    for i in range(6):
        await open_one(incidents, f"g{i}", due_at=T0)
    batches = await asyncio.gather(
        *(incidents.claim_due(now=T0, holder=f"h{n}", lease=30) for n in range(4))
    )
    numbers = [i.number for batch in batches for i in batch]
    assert len(numbers) == 6 and len(set(numbers)) == 6


async def test_advance_moves_the_step_and_releases_the_claim(incidents: IncidentStore) -> None:
    made = await open_one(incidents, due_at=T0)
    await incidents.claim_due(now=T0, holder="a", lease=30)
    ding = TimelineEvent(at=T0 + 1, kind=EventKind.DING, who="alice", detail="phone")
    moved = await incidents.advance(made.number, from_step=0, to_step=1, due_at=T0 + 5, event=ding)
    assert moved is not None and (moved.step, moved.due_at) == (1, T0 + 5)
    assert moved.timeline[-1] == ding
    # The next step comes due at its own time, not when the old lease would have ended.
    assert [i.number for i in await incidents.claim_due(now=T0 + 5, holder="b", lease=30)] == [
        made.number
    ]


async def test_advance_refuses_a_stale_step(incidents: IncidentStore) -> None:
    made = await open_one(incidents, due_at=T0)
    event = TimelineEvent(at=T0 + 1, kind=EventKind.DING, who="alice")
    assert await incidents.advance(made.number, from_step=0, to_step=1, due_at=None, event=event)
    stale = await incidents.advance(made.number, from_step=0, to_step=1, due_at=None, event=event)
    assert stale is None
    after = await incidents.get(made.number)
    assert after is not None and kinds(after).count(EventKind.DING) == 1 and after.step == 1


async def test_concurrent_advances_from_one_step_succeed_once(incidents: IncidentStore) -> None:
    made = await open_one(incidents, due_at=T0)
    event = TimelineEvent(at=T0 + 1, kind=EventKind.DING, who="alice")
    results = await asyncio.gather(
        *(
            incidents.advance(made.number, from_step=0, to_step=1, due_at=None, event=event)
            for _ in range(5)
        )
    )
    assert sum(r is not None for r in results) == 1


async def test_advance_refuses_an_incident_no_longer_open(incidents: IncidentStore) -> None:
    acked = await open_one(incidents, "g1", due_at=T0)
    resolved = await open_one(incidents, "g2", due_at=T0)
    await incidents.acknowledge(acked.number, who="alice", via="chat", now=T0)
    await incidents.resolve(route="ops", group_key="g2", now=T0)
    event = TimelineEvent(at=T0 + 1, kind=EventKind.DING)
    for number in (acked.number, resolved.number):
        assert (
            await incidents.advance(number, from_step=0, to_step=1, due_at=None, event=event)
        ) is None


async def test_the_last_step_leaves_nothing_due(incidents: IncidentStore) -> None:
    made = await open_one(incidents, due_at=T0)
    event = TimelineEvent(at=T0, kind=EventKind.NOTIFIED, detail="lead-group")
    await incidents.advance(made.number, from_step=0, to_step=1, due_at=None, event=event)
    assert await incidents.claim_due(now=T0 + 10_000, holder="a", lease=30) == []
    after = await incidents.get(made.number)
    assert after is not None and after.state is IncidentState.OPEN and after.due_at is None


async def test_claim_due_checks_its_arguments(incidents: IncidentStore) -> None:
    with pytest.raises(ValueError, match="lease"):
        await incidents.claim_due(now=T0, holder="a", lease=0)
    with pytest.raises(ValueError, match="limit"):
        await incidents.claim_due(now=T0, holder="a", lease=1, limit=0)


# -- listing ----------------------------------------------------------------------------------


async def test_list_is_newest_first_with_filters(incidents: IncidentStore) -> None:
    one = await open_one(incidents, "g1", targets=("ops",))
    two = await open_one(incidents, "g2", targets=("ops", "db"))
    three = await open_one(incidents, "g3", targets=("db",))
    await incidents.acknowledge(two.number, who="alice", via="chat", now=T0 + 1)
    await incidents.resolve(route="ops", group_key="g3", now=T0 + 2)
    numbers = [i.number for i in await incidents.list_incidents()]
    assert numbers == [three.number, two.number, one.number]
    opened = await incidents.list_incidents(states=[IncidentState.OPEN])
    assert [i.number for i in opened] == [one.number]
    live = await incidents.list_incidents(states=[IncidentState.OPEN, IncidentState.ACKNOWLEDGED])
    assert [i.number for i in live] == [two.number, one.number]
    to_db = await incidents.list_incidents(target="db")
    assert [i.number for i in to_db] == [three.number, two.number]
    assert [i.number for i in await incidents.list_incidents(limit=1)] == [three.number]
    assert await incidents.list_incidents(target="nobody") == []


async def test_listed_incidents_carry_their_timeline(incidents: IncidentStore) -> None:
    made = await open_one(incidents)
    await incidents.record(made.number, TimelineEvent(at=T0 + 1, kind=EventKind.SENT, detail="ops"))
    (listed,) = await incidents.list_incidents()
    assert listed == await incidents.get(made.number)
    assert kinds(listed) == [EventKind.OPENED, EventKind.SENT]


# -- chat messages acted on -------------------------------------------------------------------

HOUR = 3600.0


async def test_the_first_claim_of_a_chat_message_acts_and_later_ones_get_its_answer(
    incidents: IncidentStore,
) -> None:
    key = "ops/msg-1"
    assert await incidents.claim_chat_message(key, now=T0, ttl=HOUR) == ChatClaim(first=True)
    # Still being acted on: no answer yet, and not the caller's to act on.
    pending = await incidents.claim_chat_message(key, now=T0 + 1, ttl=HOUR)
    assert pending == ChatClaim(first=False, answer=None)
    # Another app's message with the same msgId is another message.
    other = await incidents.claim_chat_message("db/msg-1", now=T0 + 1, ttl=HOUR)
    assert other.first
    await incidents.answer_chat_message(key, "#1 acknowledged by Alice\n(二)")
    answered = ChatClaim(first=False, answer="#1 acknowledged by Alice\n(二)")
    assert await incidents.claim_chat_message(key, now=T0 + 2, ttl=HOUR) == answered
    # The first answer stays: neither a second answer nor a give-up replaces it.
    await incidents.answer_chat_message(key, "something else")
    await incidents.answer_chat_message(key, None)
    assert await incidents.claim_chat_message(key, now=T0 + 3, ttl=HOUR) == answered


async def test_a_chat_message_is_remembered_for_its_ttl_only(incidents: IncidentStore) -> None:
    key = "ops/msg-1"
    await incidents.claim_chat_message(key, now=T0, ttl=HOUR)
    await incidents.answer_chat_message(key, "done")
    assert (await incidents.claim_chat_message(key, now=T0 + HOUR - 1, ttl=HOUR)).answer == "done"
    # An hour after its claim it is forgotten: the next delivery is a first one again.
    assert await incidents.claim_chat_message(key, now=T0 + HOUR, ttl=HOUR) == ChatClaim(True)
    again = await incidents.claim_chat_message(key, now=T0 + HOUR + 1, ttl=HOUR)
    assert again == ChatClaim(first=False, answer=None)


async def test_expired_chat_messages_beyond_one_prune_are_forgotten_too(
    incidents: IncidentStore,
) -> None:
    keys = [f"ops/msg-{i}" for i in range(250)]  # more than one claim drops (CHAT_PRUNE)
    for key in keys:
        await incidents.claim_chat_message(key, now=T0, ttl=10)
        await incidents.answer_chat_message(key, "old")
    later = [await incidents.claim_chat_message(k, now=T0 + 20, ttl=10) for k in keys[::-1]]
    assert later == [ChatClaim(first=True)] * len(keys)


async def test_a_claim_given_up_is_claimed_by_the_next_delivery(incidents: IncidentStore) -> None:
    key = "ops/msg-1"
    assert (await incidents.claim_chat_message(key, now=T0, ttl=HOUR)).first
    await incidents.answer_chat_message(key, None)  # acting raised: no answer to give
    assert (await incidents.claim_chat_message(key, now=T0 + 1, ttl=HOUR)).first
    await incidents.answer_chat_message("ops/never-claimed", "x")  # nothing to answer
    never = await incidents.claim_chat_message("ops/never-claimed", now=T0, ttl=HOUR)
    assert never.first


async def test_concurrent_claims_of_one_chat_message_make_one_first(
    incidents: IncidentStore,
) -> None:
    claims = await asyncio.gather(
        *(incidents.claim_chat_message("ops/msg-1", now=T0, ttl=HOUR) for _ in range(8))
    )
    assert sorted(claim.first for claim in claims) == [False] * 7 + [True]


async def test_claim_chat_message_checks_its_arguments(incidents: IncidentStore) -> None:
    for key in ("", "ops\x00m"):
        with pytest.raises(ValueError, match="key must be a non-empty text without NUL"):
            await incidents.claim_chat_message(key, now=T0, ttl=HOUR)
    with pytest.raises(ValueError, match="ttl must be positive"):
        await incidents.claim_chat_message("ops/m", now=T0, ttl=0)


# -- a fleet: two PostgreSQL stores on one schema ---------------------------------------------


async def test_two_postgresql_instances_claim_a_chat_message_once() -> None:
    schema = scratch_schema()
    try:
        async with (
            PostgresStore(DSN, schema=schema, pool_size=4) as one,
            PostgresStore(DSN, schema=schema, pool_size=4) as two,
        ):
            claims = await asyncio.gather(
                *(
                    store.incidents.claim_chat_message(f"ops/msg-{i}", now=T0, ttl=HOUR)
                    for i in range(20)
                    for store in (one, two, one, two)
                )
            )
            assert sum(claim.first for claim in claims) == 20
            await one.incidents.answer_chat_message("ops/msg-0", "#7 acknowledged by Alice")
            seen = await two.incidents.claim_chat_message("ops/msg-0", now=T0 + 1, ttl=HOUR)
            assert seen == ChatClaim(first=False, answer="#7 acknowledged by Alice")
    finally:
        drop_schema(schema)


async def test_two_postgresql_instances_claim_each_due_incident_once() -> None:
    schema = scratch_schema()
    try:
        async with (
            PostgresStore(DSN, schema=schema, pool_size=4) as one,
            PostgresStore(DSN, schema=schema, pool_size=4) as two,
        ):
            for i in range(30):
                await open_one(one.incidents, f"g{i}", due_at=T0)

            async def drain(store: PostgresStore, holder: str) -> list[int]:
                numbers: list[int] = []
                while batch := await store.incidents.claim_due(
                    now=T0, holder=holder, lease=60, limit=3
                ):
                    numbers += [i.number for i in batch]
                return numbers

            got = await asyncio.gather(
                drain(one, "a"), drain(two, "b"), drain(one, "c"), drain(two, "d")
            )
            claimed = [n for numbers in got for n in numbers]
            assert len(claimed) == 30 and len(set(claimed)) == 30
            # Each advances its own; a second advance from the same step is refused.
            event = TimelineEvent(at=T0, kind=EventKind.DING, who="alice")
            results = await asyncio.gather(
                *(
                    store.incidents.advance(n, from_step=0, to_step=1, due_at=None, event=event)
                    for n in claimed
                    for store in (one, two)
                )
            )
            assert sum(r is not None for r in results) == 30
    finally:
        drop_schema(schema)
