"""The relay's targets: where a message goes, what it may carry, and when a slot is free.

A :class:`RelayTarget` wraps one of the library's async clients (one delivery path):
``AsyncRobot``, ``AsyncRobotPool`` or an ``AsyncApp`` target. The dispatcher asks it for the
delay until its next free slot (the limiter's ``delay()``, cool-downs included), sends with
``wait=False`` and ``retry=False`` — the relay schedules retries durably in the outbox instead
of sleeping inside a send. Robots and pools are opened by the configuration's builder
(``dingpush.config.open_async_sender``), as the CLI opens its clients; what a target accepts
and how it measures a digest are the library's own checks and measures
(``dingpush.lowlevel``), so a digest that measures within the limit is sent in one request.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from dingpush import (
    Clock,
    ConfigError,
    MemoryRateLimiter,
    Message,
    Rate,
    RateLimited,
    RateLimiter,
    WebhookTarget,
    mask,
    msg_param_bytes,
    notice_msg_bytes,
    parse_robot_target,
    webhook_body_bytes,
)
from dingpush.config import PoolTarget as PoolSettings
from dingpush.config import RobotTarget as RobotSettings
from dingpush.config import open_async_sender
from dingpush.lowlevel import (
    DEFAULT_APP_RATE,
    DEFAULT_COOLDOWN,
    DEFAULT_RATE,
    MSG_PARAM_LIMIT,
    NOTICE_MSG_LIMIT,
    SYSTEM_CLOCK,
    WEBHOOK_BODY_LIMIT,
    check_app_robot_message,
    check_notice_message,
    check_webhook_message,
)

if typing.TYPE_CHECKING:
    import httpx

    from dingpush import AsyncApp, RecallResult
    from dingpush.config import AsyncSender

__all__ = [
    "MERGEABLE_KINDS",
    "AppTarget",
    "PoolTarget",
    "RelayTarget",
    "RobotTarget",
    "TargetOptions",
]

#: The kinds the coalescer merges into digests; other types are never merged.
MERGEABLE_KINDS = ("text", "markdown")


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetOptions:
    """How the relay treats one target (``[relay.targets.NAME]`` in the configuration).

    Args:
        ingress_token: The ``access_token`` existing tools use on the relay's DingTalk-compatible
            ``/robot/send`` for this target; no ingress when None.
        ingress_secret: A ``SEC…`` secret the ingress checks 加签 signatures with, as DingTalk
            does; unsigned requests are refused when set.
        coalesce: Merge text and markdown backlogs into digests (off: never merge).
        coalesce_after: Seconds a backlog may wait before it is merged; the relay's default
            when None.
        concurrency: Messages of this target in flight at once (1 keeps the order).
    """

    ingress_token: str | None = dataclasses.field(default=None, repr=False)
    ingress_secret: str | None = dataclasses.field(default=None, repr=False)
    coalesce: bool = True
    coalesce_after: float | None = None
    concurrency: int = 1

    def __post_init__(self) -> None:
        if self.ingress_token is not None and len(self.ingress_token) < 8:
            raise ConfigError(
                "ingress_token is shorter than 8 characters: use a long random value "
                "(python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        if self.ingress_secret is not None and not self.ingress_secret.startswith("SEC"):
            raise ConfigError(
                "ingress_secret must start with SEC, like the secrets DingTalk shows under 加签"
            )
        if self.coalesce_after is not None and not self.coalesce_after >= 0:
            raise ConfigError("coalesce_after must be a number of seconds >= 0")
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ConfigError("concurrency must be an integer >= 1")


class RelayTarget:
    """One configured destination; subclasses wrap the library's async clients."""

    #: robot, pool, app-group, app-users or work-notice (the configuration's kinds).
    kind: str
    #: Whether DingTalk drops a repeated send of the same message (a webhook's msgUuid).
    idempotent: bool = True

    def __init__(
        self, name: str, *, rate: Rate | str, options: TargetOptions | None, description: str
    ) -> None:
        if not name or not isinstance(name, str):
            raise ConfigError("a relay target needs a non-empty name")
        self.name = name
        self.rate = Rate.coerce(rate)
        self.options = options or TargetOptions()
        self.description = description
        self.clock: Clock = SYSTEM_CLOCK
        self.limiter: RateLimiter = MemoryRateLimiter()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.destination}>"

    # -- what subclasses provide ---------------------------------------------------------------

    @property
    def destination(self) -> str:
        """Where messages go, with every secret masked."""
        raise NotImplementedError

    @property
    def body_limit(self) -> int:
        """The most bytes a message may take, in :meth:`measure`'s unit."""
        raise NotImplementedError

    def measure(self, message: Message) -> int:
        """The bytes DingTalk counts for ``message`` on this target (digests must fit)."""
        raise NotImplementedError

    def check(self, message: Message) -> None:
        """Raise ``InvalidMessage``/``MessageTooLarge`` unless this target can carry it."""
        raise NotImplementedError

    def keys(self) -> list[str]:
        """The limiter keys of the robots (or app channel) behind the target."""
        raise NotImplementedError

    async def send(self, message: Message, msg_uuid: str) -> dict[str, typing.Any]:
        """Deliver once, without waiting for a slot or retrying; return the reply's details."""
        raise NotImplementedError

    async def ding(self, request: Mapping[str, typing.Any]) -> dict[str, typing.Any]:
        """Send a DING (an outbox message of kind ``ding``, ``DING_KIND``); the reply's details.

        ``request``: ``user_ids``, ``content``, ``remind_type`` and ``fallback``. Only app
        targets can: a DING goes through an app's robot (protocol §14).
        """
        raise ConfigError(
            f"target {self.name!r} is a {self.kind} target and cannot send a DING (DINGs go "
            "through an app's robot): name an app-group or app-users target in the policy's via"
        )

    async def aclose(self) -> None:
        """Close the clients the target opened."""

    def recall_refusal(self) -> str | None:
        """Why this target's messages cannot be recalled; None when they can."""
        return (
            "webhook robots cannot recall: a custom robot's webhook returns no "
            "processQueryKey, and only app-robot messages can be recalled (protocol §11). "
            "Send to an app-group or app-users target to be able to recall"
        )

    async def recall(self, keys: Sequence[str], *, group: str | None) -> RecallResult:
        """Recall delivered messages by their ``processQueryKey``s (app targets only)."""
        raise NotImplementedError(self.recall_refusal())

    async def recall_ding(self, open_ding_ids: Sequence[str]) -> list[str]:
        """Recall DINGs this target sent, by their ``openDingId``s (§14.2); the recalled ones."""
        raise NotImplementedError(f"target {self.name!r} sends no DINGs, so it recalls none")

    def secrets(self) -> Iterator[str]:
        """Every secret this target holds, for the relay's redactor."""
        if self.options.ingress_token:
            yield self.options.ingress_token
        if self.options.ingress_secret:
            yield self.options.ingress_secret

    # -- shared --------------------------------------------------------------------------------

    def bind(self, limiter: RateLimiter, clock: Clock) -> None:
        """Share the relay's limiter and clock: the dispatcher and the client read one log."""
        self.limiter = limiter
        self.clock = clock

    @property
    def capacity(self) -> Rate:
        """Messages per window over every robot behind the target (a pool adds them up)."""
        return Rate(self.rate.limit * len(self.keys()), self.rate.window)

    def delay(self) -> float:
        """Seconds until a message may be sent (0.0 now), cool-downs included."""
        return min(self.limiter.delay(key, self.rate) for key in self.keys())

    def cooldown_left(self) -> float:
        """Seconds the target still rests after DingTalk throttled it (all robots of a pool)."""
        return min(self.limiter.cooldown_left(key) for key in self.keys())

    def mergeable(self, kind: str) -> bool:
        return self.options.coalesce and kind in MERGEABLE_KINDS

    def describe(self) -> dict[str, typing.Any]:
        """The target as the API shows it: no secret, ever."""
        return {
            "name": self.name,
            "kind": self.kind,
            "destination": self.destination,
            "description": self.description,
            "rate": str(self.rate),
            "coalesce": self.options.coalesce,
            "ingress": self.options.ingress_token is not None,
            "ingress_signed": self.options.ingress_secret is not None,
        }


def _send_reply(result: typing.Any) -> dict[str, typing.Any]:
    reply = {"errcode": result.errcode, "errmsg": result.errmsg, "attempts": result.attempts}
    if result.parts:
        reply["parts"] = len(result.parts)
    return reply


class _Webhooks(RelayTarget):
    """Custom robots' webhooks (one robot, or a pool): their limit, measure, client and secrets.

    Sends split a long text or markdown (``split=True``), so only other messages are refused
    for their size.
    """

    def __init__(
        self,
        name: str,
        *,
        keyword: str | None,
        rate: Rate | str,
        cooldown: float,
        options: TargetOptions | None,
        description: str,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        super().__init__(name, rate=rate, options=options, description=description)
        self.keyword = keyword
        self.cooldown = float(cooldown)
        self._transport = transport
        self._client: AsyncSender | None = None

    @property
    def webhooks(self) -> list[WebhookTarget]:
        """The robots behind the target."""
        raise NotImplementedError

    def settings(self) -> RobotSettings | PoolSettings:
        """The target as the configuration describes it, for the builder to open."""
        raise NotImplementedError

    def _robot(self, name: str, webhook: WebhookTarget) -> RobotSettings:
        return RobotSettings(
            name, webhook, keyword=self.keyword, rate=self.rate, cooldown=self.cooldown
        )

    @property
    def body_limit(self) -> int:
        return WEBHOOK_BODY_LIMIT

    def measure(self, message: Message) -> int:
        return webhook_body_bytes(message, keyword=self.keyword)

    def check(self, message: Message) -> None:
        check_webhook_message(message, keyword=self.keyword, split=True)

    def keys(self) -> list[str]:
        return [webhook.key for webhook in self.webhooks]

    def client(self) -> AsyncSender:
        if self._client is None:
            self._client = open_async_sender(
                self.settings(),
                limiter=self.limiter,
                retry=False,
                max_wait=0,
                clock=self.clock,
                transport=self._transport,
            )
        return self._client

    async def send(self, message: Message, msg_uuid: str) -> dict[str, typing.Any]:
        result = await self.client().send(message, msg_uuid=msg_uuid, wait=False, split=True)
        return _send_reply(result)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def secrets(self) -> Iterator[str]:
        yield from super().secrets()
        for webhook in self.webhooks:
            yield webhook.token
            if webhook.secret:
                yield webhook.secret


class RobotTarget(_Webhooks):
    """A custom robot's webhook, sent through ``AsyncRobot``."""

    kind = "robot"

    def __init__(
        self,
        name: str,
        webhook: str | WebhookTarget,
        *,
        secret: str | None = None,
        keyword: str | None = None,
        rate: Rate | str = DEFAULT_RATE,
        cooldown: float = DEFAULT_COOLDOWN,
        options: TargetOptions | None = None,
        description: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            name,
            keyword=keyword,
            rate=rate,
            cooldown=cooldown,
            options=options,
            description=description,
            transport=transport,
        )
        self.webhook = parse_robot_target(webhook, secret=secret)

    @property
    def destination(self) -> str:
        return self.webhook.display

    @property
    def webhooks(self) -> list[WebhookTarget]:
        return [self.webhook]

    def settings(self) -> RobotSettings:
        return self._robot(self.name, self.webhook)


class PoolTarget(_Webhooks):
    """Several robots in one group, sent through ``AsyncRobotPool``."""

    kind = "pool"

    def __init__(
        self,
        name: str,
        members: Sequence[str | WebhookTarget],
        *,
        keyword: str | None = None,
        rate: Rate | str = DEFAULT_RATE,
        cooldown: float = DEFAULT_COOLDOWN,
        options: TargetOptions | None = None,
        description: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            name,
            keyword=keyword,
            rate=rate,
            cooldown=cooldown,
            options=options,
            description=description,
            transport=transport,
        )
        if not members:
            raise ConfigError(f"pool target {name!r} has no members")
        self.members = [parse_robot_target(m) for m in members]

    @property
    def destination(self) -> str:
        return f"{len(self.members)} robots: " + ", ".join(m.display for m in self.members)

    @property
    def webhooks(self) -> list[WebhookTarget]:
        return self.members

    def settings(self) -> PoolSettings:
        robots = tuple(self._robot(f"{self.name}[{i}]", m) for i, m in enumerate(self.members))
        return PoolSettings(self.name, robots)


AppChannel = typing.Literal["app-group", "app-users", "work-notice"]


class AppTarget(RelayTarget):
    """A group, users or a work notification, through an enterprise app (``AsyncApp``).

    The app's client paces each of its APIs itself (DingTalk's per-app budgets); ``rate``
    adds a budget of this target's own. DingTalk de-duplicates none of the app APIs, so a
    failure after which DingTalk may have acted is retried only with ``retry_ambiguous``.
    """

    idempotent = False

    def __init__(
        self,
        name: str,
        app: AsyncApp,
        channel: AppChannel,
        *,
        open_conversation_id: str | None = None,
        users: Iterable[str] = (),
        departments: Iterable[str | int] = (),
        everyone: bool = False,
        agent_id: int | str | None = None,
        robot_code: str | None = None,
        rate: Rate | str | None = None,
        options: TargetOptions | None = None,
        description: str = "",
        owns_app: bool = False,
    ) -> None:
        super().__init__(
            name, rate=rate or DEFAULT_APP_RATE, options=options, description=description
        )
        self.kind = channel
        self.app = app
        #: The robot that sends (and DINGs), and the group of an app-group target.
        self.robot_code = robot_code
        self.open_conversation_id = open_conversation_id
        self.own_rate = rate is not None
        self._owns_app = owns_app
        self.user_ids = tuple(users)
        #: The group an ``app-group`` target posts in (chat commands from it act on its alerts).
        self.open_conversation_id = open_conversation_id
        self.departments = tuple(departments)
        self.everyone = everyone
        if channel == "app-group":
            if not open_conversation_id:
                raise ConfigError(f"app-group target {name!r} needs open_conversation_id")
            self._recipients: typing.Any = app.group(open_conversation_id, robot_code=robot_code)
            self._where = f"group {open_conversation_id}"
        elif channel == "app-users":
            self._recipients = app.users(self.user_ids, robot_code=robot_code)
            self._where = "users " + ", ".join(self.user_ids)
        else:
            if agent_id is None:
                raise ConfigError(f"work-notice target {name!r} needs agent_id")
            self._recipients = app.notify(
                agent_id, users=self.user_ids, departments=self.departments, everyone=everyone
            )
            self._where = f"agent {agent_id}"
        self._key = f"relay-target:{name}"

    @property
    def destination(self) -> str:
        return f"app {mask(self.app.app_key)}, {self._where}"

    @property
    def body_limit(self) -> int:
        return NOTICE_MSG_LIMIT if self.kind == "work-notice" else MSG_PARAM_LIMIT

    def measure(self, message: Message) -> int:
        if self.kind == "work-notice":
            return notice_msg_bytes(message)
        return msg_param_bytes(message)

    def check(self, message: Message) -> None:
        # Sends split a long text or markdown (split=True), as for webhooks.
        if self.kind == "work-notice":
            check_notice_message(
                message,
                users=self.user_ids,
                departments=self.departments,
                everyone=self.everyone,
                split=True,
            )
        else:
            check_app_robot_message(message, split=True)

    def keys(self) -> list[str]:
        return [self._key]

    def delay(self) -> float:
        # The app's own budgets answer through a locally refused RateLimited when they are
        # spent; the dispatcher then waits until then.
        return self.limiter.delay(self._key, self.rate) if self.own_rate else 0.0

    def cooldown_left(self) -> float:
        return self.limiter.cooldown_left(self._key) if self.own_rate else 0.0

    async def send(self, message: Message, msg_uuid: str) -> dict[str, typing.Any]:
        reservation = None
        if self.own_rate:
            got = self.limiter.reserve(self._key, self.rate)
            if isinstance(got, int | float):
                raise RateLimited.local(
                    target=self.name,
                    retry_at=self.clock.time() + got,
                    wait=got,
                    reason=f"the target is at its rate of {self.rate}",
                )
            reservation = got
        try:
            result = await self._recipients.send(
                message, msg_uuid=msg_uuid, wait=False, retry=False, split=True
            )
        finally:
            if reservation is not None:
                reservation.complete()
        return _app_reply(result)

    def recall_refusal(self) -> str | None:
        if self.kind == "work-notice":
            return (
                "work notifications cannot be recalled through the relay: only app-robot "
                "messages (app-group and app-users targets) carry a processQueryKey (protocol §11)"
            )
        return None

    async def recall(self, keys: Sequence[str], *, group: str | None) -> RecallResult:
        """Through ``AsyncApp.recall``: 20 keys a call, the 24 h window of one-to-one messages."""
        if self.recall_refusal() is not None:
            raise NotImplementedError(self.recall_refusal())
        if self.kind == "app-group":
            group = group or self.open_conversation_id
        return await self.app.recall(list(keys), group=group, robot_code=self.robot_code)

    async def recall_ding(self, open_ding_ids: Sequence[str]) -> list[str]:
        """Through ``AsyncApp.recall_ding``, by the robot that sent them (§14.2)."""
        recalled: list[str] = []
        for ding_id in open_ding_ids:
            recalled += await self.app.recall_ding(ding_id, robot_code=self.robot_code)
        return recalled

    async def ding(self, request: Mapping[str, typing.Any]) -> dict[str, typing.Any]:
        result = await self.app.ding(
            request["user_ids"],
            request["content"],
            remind_type=request.get("remind_type", "app"),
            fallback=bool(request.get("fallback", False)),
            robot_code=self.robot_code,
        )
        reply: dict[str, typing.Any] = {
            "errcode": 0,
            "errmsg": "ok",
            "open_ding_ids": list(result.open_ding_ids),
            "remind_type": result.remind_type,
        }
        if result.fell_back_from is not None:
            reply["fell_back_from"] = result.fell_back_from
        if result.failed:
            reply["failed"] = {reason: list(who) for reason, who in result.failed.items()}
        return reply

    async def aclose(self) -> None:
        if self._owns_app:
            await self.app.aclose()

    def secrets(self) -> Iterator[str]:
        yield from super().secrets()
        yield from _app_secrets(self.app)


def _app_secrets(app: AsyncApp) -> Iterator[str]:
    # The relay must know every secret to mask it at its boundary; AppCore keeps the
    # AppSecret private, and the app's own redactor already masks its access tokens.
    secret = getattr(app._core, "_secret", None)
    if isinstance(secret, str):
        yield secret


def _app_reply(result: typing.Any) -> dict[str, typing.Any]:
    reply: dict[str, typing.Any] = {"errcode": 0, "errmsg": "ok"}
    for name in ("process_query_key", "task_id", "invalid_user_ids", "flow_controlled_user_ids"):
        value = getattr(result, name, None)
        if value:
            reply[name] = list(value) if isinstance(value, tuple) else value
    keys = query_keys(result)
    if keys:
        # Every part's key of a split message: a recall takes the whole message back.
        reply["process_query_keys"] = keys
    group = getattr(result, "open_conversation_id", None)
    if group:
        reply["open_conversation_id"] = group
    return reply


def query_keys(result: typing.Any) -> list[str]:
    """The ``processQueryKey``s of an app-robot send's result, every part's, in order."""
    keys = getattr(result, "process_query_keys", None)
    if keys:  # one-to-one: the parts' keys are already merged
        return list(keys)
    parts = getattr(result, "parts", None) or (result,)
    return [k for k in (getattr(p, "process_query_key", None) for p in parts) if k]


def registry(targets: Iterable[RelayTarget]) -> Mapping[str, RelayTarget]:
    """Index targets by name; two of one name are a configuration error."""
    found: dict[str, RelayTarget] = {}
    for target in targets:
        if target.name in found:
            raise ConfigError(f"two relay targets are named {target.name!r}: names must be unique")
        found[target.name] = target
    return found
