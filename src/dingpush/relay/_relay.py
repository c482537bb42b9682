"""``Relay``: the targets, the outbox, the dispatcher and the rules of accepting a message.

The HTTP layer (``_api.py``, ``_ingress.py``) only parses and answers; what a message must be
to be accepted, and how it is stored, is decided here, once, for both entrances.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import logging
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from dingpush import (
    Clock,
    InvalidMessage,
    MemoryRateLimiter,
    Message,
    MessageTooLarge,
    RateLimiter,
    UnknownField,
    parse_message,
)
from dingpush.lowlevel import SYSTEM_CLOCK, Redactor, install_log_redaction

from ._dispatcher import Dispatcher
from ._escalation import Escalation
from ._http import HTTPProblem, RelayHosts, pointer
from ._incidents import IncidentStore
from ._metrics import CountedIncidents, Metrics
from ._outage import Outage
from ._settings import RelaySettings
from ._targets import RelayTarget, registry
from .stores import (
    Attempt,
    Enqueued,
    MemoryIncidentStore,
    MemoryStore,
    NewMessage,
    OutboxMessage,
    OutboxStore,
    StoreUnavailable,
)

if typing.TYPE_CHECKING:
    from ._acklinks import AckLinks
    from ._alerts import AlertReceivers
    from ._chat import SilenceWatch
    from ._fleet import Fleet
    from ._incidents import Incident, IncidentStore
    from ._receivers import ChatReceivers
    from ._silences import Silences

__all__ = ["PROBE_INTERVAL", "Accepted", "Relay"]

#: Seconds ``/readyz`` trusts its last probe of the outbox: a probe is a real commit (an
#: fsync), which an unauthenticated endpoint must not cost on every call.
PROBE_INTERVAL = 2.0

log = logging.getLogger("dingpush.relay")

# Message fields whose JSON name differs from the model's (InvalidMessage.field → pointer).
_FIELD_NAMES = {"mobiles": "atMobiles", "user_ids": "atUserIds", "all": "isAtAll"}
# An error's fix in the JSON a sender posts, for the library's Python phrase (``exc.advice``).
_JSON_ADVICE = {
    "orientation": 'set "btnOrientation": "0" (vertical)',
    "at": 'drop "at"',
    "mention_all": 'use "isAtAll": true',
}


def _json_words(exc: InvalidMessage) -> str:
    """The error's message with its Python-worded fix said in the API's JSON terms."""
    text = str(exc)
    advice = exc.advice
    if advice is not None and advice.phrase and advice.setting in _JSON_ADVICE:
        text = text.replace(advice.phrase, _JSON_ADVICE[advice.setting])
    return text


@dataclass(frozen=True, slots=True)
class Accepted:
    """A message checked for its target, ready to enqueue."""

    target: RelayTarget
    message: Message
    payload: str
    #: Fields of the body the message type does not have (ignored), pointers from the body.
    unknown: tuple[UnknownField, ...] = ()


class Relay:
    """Accepts messages durably and delivers them to named targets.

    Args:
        targets: The destinations, by name.
        store: The outbox; a ``MemoryStore`` when omitted (nothing survives the process).
        settings: Listening, auth, pacing and retry settings.
        clock: Where time comes from.
        tz: The time zone of digest headers (the machine's when None).
        alerts: The alert receivers' routes, templates and people (``/alertmanager/…``,
            ``/grafana/…``, ``/hooks/…``, ``/dingtalk/…/send``); none without.
        fleet: An instance's share of a fleet on PostgreSQL (``[relay] store =
            "postgresql://…"``): its outbox, the robots' budgets shared by every instance
            (instead of a limiter in memory); closed with the relay. Excludes ``store``.
        incidents: Where the on-call loop's incidents live; the outbox store's own
            (``store.incidents``: the same file or schema) by default. The API and the
            dashboard list and acknowledge them; recalls go on their timelines.
        chat: The app robots people write to (``@robot ack``): HTTP callbacks and, with
            ``receive = "stream"``, Stream clients started with the relay.
    """

    # The on-call loop's parts (``_oncall``): incidents, chat commands, silences, ack links.
    chat: ChatReceivers | None
    silences: Silences | None
    silence_watch: SilenceWatch | None
    ack_links: AckLinks | None
    _watching: asyncio.Task[None] | None

    def __init__(
        self,
        targets: Iterable[RelayTarget],
        *,
        store: OutboxStore | None = None,
        settings: RelaySettings | None = None,
        clock: Clock | None = None,
        tz: datetime.tzinfo | None = None,
        alerts: AlertReceivers | None = None,
        fleet: Fleet | None = None,
        incidents: IncidentStore | None = None,
        chat: ChatReceivers | None = None,
    ) -> None:
        if fleet is not None and store is not None:
            raise ValueError("a relay in a fleet uses the fleet's store: pass fleet or store")
        self.targets = registry(targets)
        self.alerts = alerts
        self.fleet = fleet
        #: The zone the dashboard shows times in (digest headers use it too); local when None.
        self.tz = tz
        self.settings = settings or RelaySettings()
        #: The names the relay answers to and its own origins (DNS rebinding, cross-site).
        self.hosts = RelayHosts.from_settings(self.settings)
        self.clock = clock or SYSTEM_CLOCK
        if fleet is not None:
            store = fleet.store
        self.store: OutboxStore = store if store is not None else MemoryStore(clock=self.clock)
        self.metrics = Metrics()
        self.limiter: RateLimiter = (
            fleet.limiter if fleet is not None else MemoryRateLimiter(self.clock)
        )
        for target in self.targets.values():
            target.bind(self.limiter, self.clock)
        secrets = [s for t in self.targets.values() for s in t.secrets()]
        secrets += list(self.settings.api_tokens)
        if alerts is not None:  # a route's token may sit in a path: mask it wherever it shows
            secrets += list(alerts.tokens.values())
        if fleet is not None:
            secrets += fleet.secrets()
        secrets += self._oncall_secrets(chat)
        self.redact = Redactor(secrets)
        install_log_redaction()
        self._log_filter = _SecretFilter(self.redact)
        self.ingress = {
            t.options.ingress_token: t for t in self.targets.values() if t.options.ingress_token
        }
        self.dispatcher = Dispatcher(
            self.store,
            self.targets,
            settings=self.settings,
            metrics=self.metrics,
            clock=self.clock,
            redact=self.redact,
            tz=tz,
            leases=None if fleet is None else fleet.leases(self.settings.target_lease),
        )
        #: The on-call loop's incidents (opened by alerts, escalated, acknowledged).
        #: Counted for /metrics on the way (``CountedIncidents``).
        own: IncidentStore = (
            incidents
            if incidents is not None
            else getattr(self.store, "incidents", None) or MemoryIncidentStore()
        )
        self.incidents: IncidentStore = CountedIncidents(own, self.metrics)
        #: The escalation engine, when the alerts have policies or schedules, or people can
        #: acknowledge alerts (chat commands, ack links): then alerts open incidents.
        self.escalation: Escalation | None = None
        oncall = alerts.oncall if alerts is not None else None
        if alerts is not None and oncall is None and (chat is not None or self.settings.ack_secret):
            from ._oncall import OnCall

            oncall = OnCall(people=dict(alerts.settings.people))
        if alerts is not None and oncall is not None:
            self.escalation = Escalation(self, oncall, alerts.policies, self.incidents)
            self.dispatcher.on_settled = self.escalation.settled
        self._oncall(chat, own)
        self.started = False
        #: Seconds a probe of the outbox answers for (``/readyz``); tests set 0.
        self.probe_interval = PROBE_INTERVAL
        self._probed: tuple[float, str | None] | None = None
        self._probing: asyncio.Future[str | None] | None = None

    def __repr__(self) -> str:
        return f"<Relay {len(self.targets)} targets, store {self.store!r}>"

    async def start(self) -> None:
        """Open the outbox, prove it takes writes, and start delivering.

        An outbox that cannot commit (locked by another process, a full disk, a read-only
        file) stops start-up with ``StoreUnavailable`` saying why, rather than a relay that
        answers every message with 503.
        """
        for name in _LOGGERS:
            logging.getLogger(name).addFilter(self._log_filter)
        try:
            await self.store.open()
            try:
                await self.store.probe()
            except StoreUnavailable as exc:
                await self.store.aclose()
                raise StoreUnavailable(
                    f"the relay cannot start: its outbox cannot take writes: {exc}"
                ) from exc
        except BaseException:
            self._remove_log_filter()
            raise
        self._probed = (self.clock.monotonic(), None)
        await self.dispatcher.start()
        if self.escalation is not None:
            self.escalation.start()
        if self.chat is not None:
            await self.chat.start()
        if self.silence_watch is not None:
            self._watching = asyncio.create_task(self.silence_watch.run(), name="silence-watch")
        self.started = True
        log.info("relay started: %d targets", len(self.targets))

    def _remove_log_filter(self) -> None:
        for name in _LOGGERS:
            logging.getLogger(name).removeFilter(self._log_filter)

    async def outbox_problem(self) -> str | None:
        """Why the outbox cannot take writes now, or None; a real write, once an interval.

        The answer of the last :meth:`OutboxStore.probe` stands for ``probe_interval``
        seconds, and callers that arrive while a probe runs share it: a burst of ``/readyz``
        against a locked outbox is one probe and one ``lock_timeout`` wait, not one each.
        """
        now = self.clock.monotonic()
        if self._probed is not None and now - self._probed[0] < self.probe_interval:
            return self._probed[1]
        if self._probing is None:
            self._probing = asyncio.ensure_future(self._probe())
        # shield: a caller that goes away (a closed request) does not cancel the others' probe
        return await asyncio.shield(self._probing)

    async def _probe(self) -> str | None:
        try:
            await self.store.probe()
        except StoreUnavailable as exc:
            why: str | None = self.redact(str(exc))
        else:
            why = None
        finally:
            self._probing = None
        self._probed = (self.clock.monotonic(), why)
        return why

    async def aclose(self, deadline: float | None = None) -> None:
        """Stop delivering (in-flight sends get ``deadline`` seconds), close everything."""
        try:
            if self._watching is not None:
                self._watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._watching
                self._watching = None
            if self.chat is not None:
                await self.chat.aclose()
            if self.escalation is not None:
                await self.escalation.stop()
            await self.dispatcher.stop(deadline)
        finally:
            if self.silences is not None:
                await self.silences.aclose()
            for target in self.targets.values():
                await target.aclose()
            await self.store.aclose()
            if self.fleet is not None:
                self.fleet.close()
            self.started = False
            self._probed = None
            self._remove_log_filter()

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- on call: chat commands, silences, ack links ------------------------------------------

    def _oncall(self, chat: ChatReceivers | None, own: IncidentStore) -> None:
        from ._chat import ChatCommands

        self.silences = None
        self.silence_watch = None
        self._watching = None
        if self.settings.alertmanager_url is not None:
            from ._chat import SilenceWatch
            from ._silences import Silences

            self.silences = Silences(self.settings.alertmanager_url)
            self.silence_watch = SilenceWatch(
                self.incidents,
                self.silences,
                interval=self.settings.silence_check,
                clock=self.clock,
                tell=self.tell,
            )
        self.chat = chat
        if chat is not None:
            people = self.alerts.settings.people.values() if self.alerts is not None else ()
            commands = ChatCommands(
                self.incidents,
                targets=self.targets,
                people=people,
                silences=self.silences,
                silence_max=self.settings.silence_max,
                clock=self.clock,
                tell=self.tell,
            )
            # The chat messages acted on are remembered in the incident store, shared by a
            # fleet; one written before the store remembered them: in this process only.
            remembers = callable(getattr(own, "claim_chat_message", None))
            chat.bind(self, commands, self.incidents if remembers else None)
        self.ack_links = None
        if self.settings.ack_secret is not None and self.settings.public_url is not None:
            from ._acklinks import AckLinks

            self.ack_links = AckLinks(
                self.settings.ack_secret,
                self.settings.public_url,
                self.incidents,
                ttl=self.settings.ack_link_ttl,
                clock=self.clock,
                announce=self.announce,
            )

    def _oncall_secrets(self, chat: ChatReceivers | None) -> list[str]:
        import urllib.parse

        secrets = [self.settings.ack_secret or ""]
        if self.settings.alertmanager_url is not None:
            password = urllib.parse.urlsplit(self.settings.alertmanager_url).password or ""
            secrets += [password, urllib.parse.unquote(password)]  # as written, as sent
        if chat is not None:
            secrets += chat.secrets()
        return [s for s in secrets if s]

    async def announce(self, incident: Incident) -> None:
        """Tell an incident's targets that it was acknowledged (a signed link, the API, the
        dashboard; the chat commands say the same words, so the group is told once)."""
        await self.tell(incident, f"#{incident.number} acknowledged by {incident.acknowledged_by}")

    async def tell(self, incident: Incident, text: str, *, exclude: Sequence[str] = ()) -> None:
        """Send ``text`` to an incident's targets (but ``exclude``) through the outbox, once."""
        from dingpush import Text

        payload = Text(text).to_payload()
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        batch = []
        for name in incident.targets:
            target = self.targets.get(name)
            if target is None or name in exclude:
                continue
            try:
                accepted = self.check(target, payload)
            except HTTPProblem:  # a keyword robot may refuse it: the timeline still has it
                continue
            batch.append((accepted, f"incident:{incident.number}:{name}:{digest}"))
        if batch:
            await self.enqueue_many(batch)

    # -- accepting ----------------------------------------------------------------------------

    def target(self, name: object, where: str = "/target") -> RelayTarget:
        if not isinstance(name, str) or not name:
            raise HTTPProblem(400, "target must be a non-empty string", pointer=where)
        target = self.targets.get(name)
        if target is None:
            known = ", ".join(sorted(self.targets)) or "none"
            raise HTTPProblem(
                404,
                f"no target named {name!r}; the configured targets are: {known}",
                pointer=where,
            )
        return target

    def check(self, target: RelayTarget, body: object, where: str = "/message") -> Accepted:
        """Parse and check a message for ``target``; 400 for its shape, 422 for its rules.

        Types are strict (``parse_message``): a wrong one is a 422 whose ``pointer`` names the
        value and ``rule`` what it must be. Fields the type does not have are ignored and
        listed in ``Accepted.unknown``.
        """
        if not isinstance(body, Mapping):
            raise HTTPProblem(400, "message must be a JSON object", pointer=where)
        unknown: list[UnknownField] = []
        try:
            message = parse_message(body, unknown=unknown)
            target.check(message)
        except MessageTooLarge as exc:
            raise HTTPProblem(
                422, self.redact(str(exc)), pointer=where, field="body", rule="size limit"
            ) from None
        except InvalidMessage as exc:
            field = exc.field or ""
            if exc.pointer is not None:
                where += exc.pointer
            else:  # a model's own rule, named after its fields
                where += pointer(*(_FIELD_NAMES.get(p, p) for p in field.split(".") if p))
            raise HTTPProblem(
                422,
                self.redact(_json_words(exc)),
                pointer=where,
                field=field or None,
                rule=exc.rule,
            ) from None
        payload = json.dumps(message.to_payload(), ensure_ascii=False, separators=(",", ":"))
        return Accepted(target, message, payload, tuple(unknown))

    async def enqueue(self, accepted: Accepted, idempotency_key: str | None) -> Enqueued:
        """Commit one checked message; durable when this returns."""
        answer = await self.store.enqueue(_new(accepted, idempotency_key))
        self._accepted([(accepted, answer)])
        return answer

    async def enqueue_many(self, batch: Sequence[tuple[Accepted, str | None]]) -> list[Enqueued]:
        """Commit checked messages all or none; durable when this returns."""
        answers = await self.store.enqueue_many([_new(a, key) for a, key in batch])
        self._accepted([(a, answer) for (a, _), answer in zip(batch, answers, strict=True)])
        return answers

    async def enqueue_raw(self, message: NewMessage) -> Enqueued:
        """Commit a message that is no chat message (a DING of an escalation step)."""
        answer = await self.store.enqueue(message)
        if answer.created:
            self.metrics.count("accepted", message.target)
            self.dispatcher.kick(message.target)
        return answer

    def _accepted(self, pairs: Sequence[tuple[Accepted, Enqueued]]) -> None:
        for accepted, answer in pairs:
            if answer.created:
                self.metrics.count("accepted", accepted.target.name)
        for name in {a.target.name for a, answer in pairs if answer.created}:
            self.dispatcher.kick(name)

    # -- views --------------------------------------------------------------------------------

    def summary(self, message: OutboxMessage) -> dict[str, typing.Any]:
        """A message as listings show it (no payload)."""
        return {
            "id": message.id,
            "target": message.target,
            "kind": message.kind,
            "status": str(message.status),
            "created_at": message.created_at,
            "updated_at": message.updated_at,
            "due_at": message.due_at,
            "delivered_at": message.delivered_at,
            "attempts": message.attempts,
            "last_error": self._masked(message.last_error),
            "last_errcode": message.last_errcode,
            "digest_id": message.digest_id,
            "carries": message.carries,
            "recalled": _recall_view(message),
        }

    def detail(
        self,
        message: OutboxMessage,
        attempts: Sequence[Attempt],
        originals: Sequence[OutboxMessage],
    ) -> dict[str, typing.Any]:
        """Everything about one message: payload (secrets masked), reply, attempts, links."""
        view = self.summary(message)
        view["idempotency_key"] = self._masked(message.idempotency_key)
        view["lease_until"] = message.lease_until
        view["payload"] = json.loads(self.redact.known(message.payload))  # its links as written
        view["reply"] = (
            None if message.reply is None else json.loads(self.redact(json.dumps(message.reply)))
        )
        view["attempt_history"] = [
            {
                "number": a.number,
                "outcome": str(a.outcome),
                "started_at": a.started_at,
                "finished_at": a.finished_at,
                "errcode": a.errcode,
                "error": self._masked(a.error),
            }
            for a in attempts
        ]
        view["originals"] = [o.id for o in originals]
        view["links"] = _links(message, originals)
        return view

    def _masked(self, text: str | None) -> str | None:
        return None if text is None else self.redact(text)

    async def target_views(self) -> list[dict[str, typing.Any]]:
        """Per target: backlog, sent in the last window, cool-down, last error."""
        stats = await self.store.stats(window=self.settings.stats_window)
        now = self.clock.time()
        views = []
        for name, target in sorted(self.targets.items()):
            figures = stats.targets.get(name)
            cooling = target.cooldown_left()
            view = target.describe()
            view.update(
                {
                    "backlog": figures.backlog if figures else 0,
                    "queued": figures.queued if figures else 0,
                    "sending": figures.sending if figures else 0,
                    "failed": figures.failed if figures else 0,
                    "oldest_due": figures.oldest_due if figures else None,
                    "sent_recently": figures.delivered_recent if figures else 0,
                    "window": self.settings.stats_window,
                    "cooldown_until": now + cooling if cooling > 0 else None,
                    "next_slot_in": round(target.delay(), 3),
                    "outage": _outage_view(self.dispatcher.outages.get(name), self.redact),
                    "last_error": self._masked(figures.last_error) if figures else None,
                    "last_errcode": figures.last_errcode if figures else None,
                    "last_error_at": figures.last_error_at if figures else None,
                }
            )
            views.append(view)
        return views


#: The loggers a relay's records go through; a filter on "dingpush" does not see its children's.
_LOGGERS = ("dingpush.relay", "dingpush.relay.delivery", "dingpush.relay.outbox", "uvicorn.error")


class _SecretFilter(logging.Filter):
    """Mask the relay's secrets (tokens, SEC… secrets, AppSecrets) in every record."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self._redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def _new(accepted: Accepted, key: str | None) -> NewMessage:
    return NewMessage(
        target=accepted.target.name,
        kind=accepted.message.msgtype,
        payload=accepted.payload,
        idempotency_key=key,
    )


def _outage_view(outage: Outage | None, redact: Redactor) -> dict[str, typing.Any] | None:
    """A target's outage for ``/v1/targets``: failing since, failures, next probe, last error."""
    if outage is None:
        return None
    view = outage.view()
    view["last_error"] = redact(outage.last_error)
    return view


def _recall_view(message: OutboxMessage) -> dict[str, typing.Any] | None:
    """When, by whom and how far a delivered message was recalled; None if it was not."""
    recall = (message.reply or {}).get("recall")
    if not isinstance(recall, Mapping):
        return None
    return {
        "at": recall.get("at"),
        "by": recall.get("by"),
        "via": recall.get("via"),
        "keys": len(recall.get("recalled") or ()),
        "failed": len(recall.get("failed") or {}),
    }


def _links(message: OutboxMessage, originals: Sequence[OutboxMessage]) -> dict[str, typing.Any]:
    base = "/v1/messages/"
    links: dict[str, typing.Any] = {"self": base + message.id}
    if message.digest_id:
        links["digest"] = base + message.digest_id
    if originals:
        links["originals"] = [base + o.id for o in originals]
    if str(message.status) == "failed":
        links["retry"] = base + message.id + "/retry"
    if str(message.status) in ("queued", "delivered", "digested"):
        links["recall"] = base + message.id + "/recall"
    return links
