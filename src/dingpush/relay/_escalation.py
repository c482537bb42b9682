"""The escalation engine: incidents opened by alerts, and the steps of their policies.

Alerts open incidents: when the alert receivers have committed a firing notification's messages,
:meth:`Escalation.notified` opens (or joins) the incident of its route and alert group, with the
messages' outbox ids and the time its policy's first step is due; a resolved notification closes
it. Every relay instance runs :meth:`Escalation.run`, which every ``escalation_poll`` seconds
claims the incidents whose step is due (``IncidentStore.claim_due``: one instance each, for
``escalation_lease`` seconds) and runs the step:

- it checks what the policy waits for: *acknowledged* is the incident's state (an acknowledged,
  silenced or resolved incident is never due); *read* asks DingTalk who has read the app-group
  message (``AsyncApp.read_status`` with its ``processQueryKey``), and someone having read it
  ends the escalation;
- a ``ding`` step enqueues a DING to the person the step names (a schedule's on-call person at
  that moment), an outbox message of kind ``ding`` that the dispatcher delivers through the app
  target's ``AsyncApp.ding`` (with the in-app fallback when the paid SMS/phone quota is
  missing); a ``notify`` step enqueues the alert to another target;
- then it moves the incident to its next step (``IncidentStore.advance``).

A step fires once: its message goes to the outbox under the idempotency key
``incident:<number>:step:<k>`` before the incident advances. An instance that dies in between
leaves the incident claimed until its lease ends; the instance that runs the step then enqueues
the same key (no second message) and advances. ``advance`` refuses a step already moved from, so
two instances never both advance it. The dispatcher tells the engine of deliveries
(:meth:`settled`): the timeline gets SENT for the alert's messages and a NOTE for a DING that
fell back to in-app or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import typing
import uuid
from collections.abc import Mapping, Sequence

from dingpush import DingPushError, Markdown, Message
from dingpush.alerts import AlertMessage, escape_markdown

from ._commands import format_duration
from ._dispatcher import DING_KIND
from ._incidents import EventKind, Incident, IncidentState, IncidentStore, TimelineEvent
from ._oncall import OnCall, Policy, Step
from ._targets import AppTarget
from .stores import Enqueued, MessageNotFound, NewMessage, OutboxMessage, StoreError

if typing.TYPE_CHECKING:
    from ._relay import Relay

__all__ = ["Escalation", "step_key"]

log = logging.getLogger("dingpush.relay")

#: The most due incidents one look claims.
CLAIM_BATCH = 50
_REMIND_WORDS = {"app": "in-app", "sms": "SMS", "call": "phone"}


def step_key(number: int, step: int) -> str:
    """The idempotency key of an incident's step ``step``: the same message however often."""
    return f"incident:{number}:step:{step}"


class Escalation:
    """Opens, escalates and closes incidents for one relay (one instance of a fleet).

    Args:
        relay: The relay whose outbox, targets and clock it uses.
        oncall: The policies, schedules and people.
        policies: The policy of each route path that has one.
        incidents: Where incidents live (the relay's store's ``incidents``).
        holder: This instance's name in claims (a random one by default).
    """

    def __init__(
        self,
        relay: Relay,
        oncall: OnCall,
        policies: Mapping[str, str],
        incidents: IncidentStore,
        *,
        holder: str | None = None,
    ) -> None:
        self.relay = relay
        self.oncall = oncall
        self.policies = dict(policies)
        self.incidents = incidents
        self.holder = holder or f"relay-{uuid.uuid4().hex[:12]}"
        self._task: asyncio.Task[None] | None = None
        self._names = {p.user_id: name for name, p in oncall.people.items() if p.user_id}

    @property
    def clock(self) -> typing.Any:
        return self.relay.clock

    # -- alerts in ------------------------------------------------------------------------------

    async def notified(
        self, messages: Sequence[AlertMessage], answers: Sequence[Enqueued], *, kind: str = ""
    ) -> list[Incident]:
        """Open (or join) the incident of each firing notification; close resolved ones.

        Alertmanager and Grafana notifications open an incident on every route (one without
        a policy never escalates, but can be acknowledged and silenced); a generic hook's, which
        never resolves, only on a route with a policy.
        """
        now = self.clock.time()
        groups: dict[tuple[str, str], list[tuple[AlertMessage, Enqueued]]] = {}
        for item, answer in zip(messages, answers, strict=True):
            groups.setdefault((item.route, item.group_key), []).append((item, answer))
        touched: list[Incident] = []
        for (route, group_key), items in groups.items():
            first = items[0][0]
            if first.status == "resolved":
                closed = await self.incidents.resolve(route=route, group_key=group_key, now=now)
                if closed is not None:
                    touched.append(closed)
                continue
            if not self.opens(route, kind):
                continue
            incident = await self.open_for(first, [item.target for item, _ in items], now)
            touched.append(
                await self.incidents.attach_messages(incident.number, [a.id for _, a in items])
            )
        return touched

    def opens(self, route: str, kind: str) -> bool:
        """Whether a firing notification of receiver ``kind`` on ``route`` opens an incident:
        a generic hook's (which never resolves) only on a route with a policy."""
        name = self.policies.get(route)
        return kind != "generic" or (name is not None and name in self.oncall.policies)

    async def open_for(self, first: AlertMessage, targets: Sequence[str], now: float) -> Incident:
        """The open incident of a firing notification's alert group, made if none is.

        The alert receivers call it before they commit messages that carry a signed ack link
        (which names the incident's number); :meth:`notified` then finds the same incident.
        """
        name = self.policies.get(first.route)
        policy = self.oncall.policies.get(name) if name is not None else None
        return await self.incidents.open_incident(
            route=first.route,
            group_key=first.group_key,
            title=first.headline or first.group_key,
            labels=first.labels,
            policy=name if policy is not None else None,
            targets=targets,
            due_at=policy.due_at(now, 0) if policy is not None else None,
            now=now,
        )

    # -- the loop -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="relay:escalation")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Look for due steps every ``escalation_poll`` seconds, until cancelled."""
        poll = self.relay.settings.escalation_poll
        while True:
            try:
                await self.tick()
            except StoreError as exc:
                log.warning("escalation: the incident store is unavailable: %s", exc)
            except Exception:
                log.exception("escalation: a look at the due incidents failed")
            await asyncio.sleep(poll)

    async def tick(self) -> int:
        """Claim the incidents whose step is due now and run each step; how many ran."""
        claimed = await self.incidents.claim_due(
            now=self.clock.time(),
            holder=self.holder,
            lease=self.relay.settings.escalation_lease,
            limit=CLAIM_BATCH,
        )
        for incident in claimed:
            try:
                await self.escalate(incident)
            except StoreError as exc:
                # The claim runs out and the step is tried again (its key keeps it once).
                log.warning("escalation of incident %d failed: %s", incident.number, exc)
        return len(claimed)

    async def escalate(self, incident: Incident) -> Incident | None:
        """Run the due step of a claimed incident and advance it (None: someone else did)."""
        now = self.clock.time()
        policy = self.oncall.policies.get(incident.policy or "")
        if policy is None:
            note = f"policy {incident.policy!r} is no longer configured: escalation stopped"
            return await self._advance(
                incident, None, TimelineEvent(now, EventKind.NOTE, None, note)
            )
        step = policy.step(incident.step)
        if step is None:
            return await self._advance(
                incident, None, TimelineEvent(now, EventKind.NOTE, None, "no steps left")
            )
        if policy.wait_for == "read":
            readers = await self._readers(incident)
            if readers:
                detail = f"read by {', '.join(readers)}: escalation stopped"
                event = TimelineEvent(now, EventKind.READ, readers[0], detail)
                return await self._advance(incident, None, event)
        # Acknowledged (or resolved) since the claim, while DingTalk was asked? Then no DING.
        current = await self.incidents.get(incident.number)
        if current is None or not current.state.escalates or current.step != incident.step:
            return None
        if step.ding is not None:
            event = await self._ding(incident, policy, step, now)
        else:
            event = await self._notify(incident, step, now)
        advanced = await self._advance(
            incident, policy.due_at(incident.opened_at, incident.step + 1), event
        )
        if advanced is not None:
            action = "ding" if step.ding is not None else "notify"
            self.relay.metrics.count_labelled("escalation_steps", policy.name, action)
        return advanced

    async def _advance(
        self, incident: Incident, due_at: float | None, event: TimelineEvent
    ) -> Incident | None:
        return await self.incidents.advance(
            incident.number,
            from_step=incident.step,
            to_step=incident.step + 1,
            due_at=due_at,
            event=event,
        )

    # -- steps ----------------------------------------------------------------------------------

    def _ding_target(self, incident: Incident, policy: Policy) -> AppTarget | None:
        names = [policy.via] if policy.via else list(incident.targets)
        for name in names:
            target = self.relay.targets.get(name or "")
            if isinstance(target, AppTarget) and target.kind in ("app-group", "app-users"):
                return target
        return None

    async def _ding(
        self, incident: Incident, policy: Policy, step: Step, now: float
    ) -> TimelineEvent:
        assert step.ding is not None
        name, person = self.oncall.person(step.ding, now)
        target = self._ding_target(incident, policy)
        if target is None or not person.user_id:
            why = (
                "no app target to DING through (give the policy via = …)"
                if target is None
                else (f"{name} has no user_id")
            )
            return TimelineEvent(now, EventKind.NOTE, name, f"DING not sent: {why}")
        request = {
            "user_ids": [person.user_id],
            "content": _ding_text(incident),
            "remind_type": step.remind,
            "fallback": step.fallback == "app",
            "incident": incident.number,
            "who": name,
        }
        answer = await self.relay.enqueue_raw(
            NewMessage(
                target=target.name,
                kind=DING_KIND,
                payload=json.dumps(request, ensure_ascii=False, separators=(",", ":")),
                idempotency_key=step_key(incident.number, incident.step),
            )
        )
        await self.incidents.attach_messages(incident.number, [answer.id])
        words = _REMIND_WORDS.get(step.remind, step.remind)
        detail = f"{words} DING to {name}" + (f" (via {step.ding})" if step.ding != name else "")
        return TimelineEvent(now, EventKind.DING, name, detail)

    async def _notify(self, incident: Incident, step: Step, now: float) -> TimelineEvent:
        assert step.notify is not None
        target = self.relay.targets.get(step.notify)
        if target is None:
            return TimelineEvent(now, EventKind.NOTE, None, f"no target {step.notify!r} to notify")
        elapsed = format_duration(max(now - incident.opened_at, 0.0))
        # The title and labels come from the alert's sender: as text, never as links or markup.
        labels = escape_markdown(", ".join(f"{k}={v}" for k, v in sorted(incident.labels.items())))
        title = escape_markdown(incident.title)
        # Only an app robot hears "@robot ack"; a webhook robot's group gets the signed link.
        receives = target.kind in ("app-group", "app-users")
        links = self.relay.ack_links
        if receives:
            how = f"Reply `@robot ack {incident.number}` to take it."
        elif links is not None:
            how = "Open the link below to take it."
        else:
            how = "Acknowledge it in the relay's dashboard (Alerts) to take it."
        message: Message = Markdown(
            title=f"Escalated #{incident.number}: {incident.title}"[:64],
            text=(
                f"### Escalated #{incident.number}: {title}\n\n"
                f"Not acknowledged after {elapsed} (route {incident.route}).\n\n"
                + (f"{labels}\n\n" if labels else "")
                + how
            ),
        )
        if not receives and links is not None:
            message = links.decorate(message, incident.number)
        accepted = self.relay.check(target, message.to_payload())
        answer = await self.relay.enqueue(accepted, step_key(incident.number, incident.step))
        await self.incidents.attach_messages(incident.number, [answer.id])
        return TimelineEvent(now, EventKind.NOTIFIED, None, f"sent to {step.notify}")

    async def _readers(self, incident: Incident) -> list[str]:
        """Who has read the incident's app-group messages (names of the directory if known)."""
        found: list[str] = []
        for message_id in incident.message_ids:
            try:
                message = await self.relay.store.get(message_id)
            except MessageNotFound:
                continue
            target = self.relay.targets.get(message.target)
            reply = message.reply or {}
            key = reply.get("process_query_key")
            if not (isinstance(target, AppTarget) and target.kind == "app-group" and key):
                continue
            try:
                status = await target.app.read_status(
                    str(key), group=str(target.open_conversation_id), robot_code=target.robot_code
                )
            except DingPushError as exc:
                log.warning("escalation: read status of incident %d: %s", incident.number, exc)
                continue
            found.extend(self._names.get(u, u) for u in status.read_user_ids)
        return list(dict.fromkeys(found))

    # -- deliveries ------------------------------------------------------------------------------

    async def settled(self, message: OutboxMessage, outcome: str, detail: typing.Any) -> None:
        """The dispatcher's hook: SENT on an alert's delivery; a NOTE for a DING's fallback."""
        now = self.clock.time()
        if message.kind == DING_KIND:
            request = json.loads(message.payload)
            number = request.get("incident")
            if not isinstance(number, int):
                return
            if outcome == "failed":
                text = f"the DING to {request.get('who')} failed: {detail}"
                await self.incidents.record(
                    number, TimelineEvent(now, EventKind.NOTE, request.get("who"), text)
                )
            elif isinstance(detail, Mapping) and detail.get("fell_back_from"):
                asked = _REMIND_WORDS.get(str(detail["fell_back_from"]), detail["fell_back_from"])
                text = f"no {asked} DING quota: an in-app DING went instead"
                await self.incidents.record(
                    number, TimelineEvent(now, EventKind.NOTE, request.get("who"), text)
                )
            return
        if outcome != "delivered":
            return
        incident = await self.incidents.find_by_message(message.id)
        if incident is None or incident.state is IncidentState.RESOLVED:
            return
        await self.incidents.record(
            incident.number, TimelineEvent(now, EventKind.SENT, None, f"to {message.target}")
        )


def _ding_text(incident: Incident) -> str:
    text = (
        f"#{incident.number} {incident.title}: not acknowledged. Reply @robot ack {incident.number}"
    )
    return text[:1000]
