"""The emulator's in-memory state: robots, conversations, messages, request log, faults, limits.

One :class:`Emulator` is shared by the HTTP app (running on uvicorn's loop in a background
thread) and by tests reading it from the main thread, so every method takes the same lock and
returns immutable snapshots. Nothing awaits while holding the lock.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dingpush import mask

from ._appapi import AppApiMixin
from ._apps import AppConfig
from ._config import Clock, EmulatorOptions, RobotConfig
from ._faults import Fault, FaultBook, FaultKind, fault_answer
from ._records import (
    AtTargets,
    Conversation,
    EmulatorStats,
    Message,
    RequestRecord,
    RobotStats,
    conversation_id,
)
from ._webhook import (
    DUPLICATE,
    OK,
    Verdict,
    WebhookCall,
    check_content_type,
    check_ip,
    check_keywords,
    check_message,
    check_signature,
    parse_body,
    query_value,
    reject,
)

__all__ = ["Emulator"]

#: ``Message.channel`` of messages delivered through a custom robot's webhook.
WEBHOOK_CHANNEL = "robot-webhook"


class _SystemClock:
    def time(self) -> float:
        return time.time()


@dataclass(slots=True)
class _RobotState:
    """What the server keeps per robot besides its config: the rate window, lock, msgUuids."""

    sent: deque[float] = field(default_factory=deque)
    locked_until: float | None = None
    uuids: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0


@dataclass(frozen=True, slots=True)
class _Outcome:
    verdict: Verdict
    robot: RobotConfig | None = None
    payload: Mapping[str, Any] | None = None
    message_id: int | None = None


class Emulator(AppApiMixin):
    """An in-memory DingTalk: robots, apps, their conversations, and a log of every request.

    Args:
        options: How the protocol's uncertain points behave (:class:`EmulatorOptions`).
        clock: Anything with ``time() -> float`` (wall seconds); ``time.time`` by default.
            Rate windows, lock-outs, signature timestamps and token lifetimes all read it.
        robots: Robots to register at once.
        apps: Enterprise apps to register at once (see ``_appstate.py`` for their API).
    """

    def __init__(
        self,
        *,
        options: EmulatorOptions | None = None,
        clock: Clock | None = None,
        robots: Iterable[RobotConfig] = (),
        apps: Iterable[AppConfig] = (),
    ) -> None:
        self._lock = threading.Lock()
        self._options = options or EmulatorOptions()
        self._clock: Clock = clock or _SystemClock()
        self._robots: dict[str, RobotConfig] = {}
        self._tokens: dict[str, str] = {}
        self._robot_state: dict[str, _RobotState] = {}
        self._conversations: dict[str, Conversation] = {}
        self._messages: list[Message] = []
        self._requests: list[RequestRecord] = []
        self._faults = FaultBook()
        # Ids keep counting across resets so a chat view polling with since_id never goes back.
        self._next_message_id = 1
        self._next_request_id = 1
        # Bumped by changes that allocate no id (robots, resets), for `version`.
        self._changes = 0
        # DingTalk-side requests still being answered (a `delay` fault keeps one open after
        # its client gave up); `wait_idle` lets a test's teardown wait for them.
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self._init_apps()
        for robot in robots:
            self.add_robot(robot)
        for app in apps:
            self.add_app(app)

    def __repr__(self) -> str:
        return f"<Emulator robots={len(self._robots)} messages={len(self._messages)}>"

    # -- requests in flight ----------------------------------------------------------------

    def request_started(self) -> None:
        """Count a DingTalk-side request as being answered (called by the app's middleware)."""
        with self._lock:
            self._in_flight += 1

    def request_finished(self) -> None:
        """Count a DingTalk-side request as answered."""
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being answered; ``False`` if some still are at ``timeout``.

        A client that timed out leaves its request running here; without waiting, that
        request would be recorded into whatever the emulator holds next (the next test).
        """
        with self._lock:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    # -- configuration -------------------------------------------------------------------

    @property
    def options(self) -> EmulatorOptions:
        """The behaviour options in force; assign a new :class:`EmulatorOptions` to change them."""
        return self._options

    @options.setter
    def options(self, options: EmulatorOptions) -> None:
        with self._lock:
            self._options = options

    @property
    def clock(self) -> Clock:
        """The clock in force; assign another (e.g. a ``FakeClock``) at any time."""
        return self._clock

    @clock.setter
    def clock(self, clock: Clock | None) -> None:
        with self._lock:
            self._clock = clock or _SystemClock()

    def add_robot(self, robot: RobotConfig) -> RobotConfig:
        """Register ``robot``, replacing a robot of the same name; its token must be unique."""
        with self._lock:
            owner = self._tokens.get(robot.token)
            if owner is not None and owner != robot.name:
                raise ValueError(f"token already belongs to robot {owner!r}")
            self._install(robot)
            return robot

    def update_robot(self, name: str, **changes: Any) -> RobotConfig:
        """Change some fields of a robot, e.g. ``status="disabled"`` or a new ``token``."""
        if "name" in changes and changes["name"] != name:
            raise ValueError("a robot cannot be renamed; remove it and add a new one")
        with self._lock:
            current = self._robot(name)
            try:
                robot = dataclasses.replace(current, **changes)
            except TypeError as exc:
                raise ValueError(str(exc)) from exc
            owner = self._tokens.get(robot.token)
            if owner is not None and owner != name:
                raise ValueError(f"token already belongs to robot {owner!r}")
            self._install(robot)
            return robot

    def remove_robot(self, name: str) -> None:
        """Remove a robot: its token becomes unknown (300001). Its messages stay."""
        with self._lock:
            robot = self._robot(name)
            del self._robots[name], self._tokens[robot.token], self._robot_state[name]
            self._changes += 1

    def robot(self, name: str) -> RobotConfig:
        """Return the robot called ``name`` (``KeyError`` if there is none)."""
        with self._lock:
            return self._robot(name)

    def robots(self) -> list[RobotConfig]:
        """Return every registered robot, in registration order."""
        with self._lock:
            return list(self._robots.values())

    def robot_for_token(self, token: str | None) -> str | None:
        """Return the name of the robot owning ``token``, or ``None``."""
        with self._lock:
            return self._tokens.get(token or "")

    def _robot(self, name: str) -> RobotConfig:
        try:
            return self._robots[name]
        except KeyError:
            raise KeyError(f"no robot named {name!r}") from None

    def _install(self, robot: RobotConfig) -> None:
        self._changes += 1
        previous = self._robots.get(robot.name)
        if previous is not None:
            del self._tokens[previous.token]
        self._robots[robot.name] = robot
        self._tokens[robot.token] = robot.name
        self._robot_state.setdefault(robot.name, _RobotState())
        self._conversation_for(robot)

    def _conversation_for(self, robot: RobotConfig) -> Conversation:
        cid = conversation_id("group", robot.group)
        conversation = self._conversations.get(cid)
        if conversation is None:
            conversation = Conversation(cid, "group", robot.group)
            self._conversations[cid] = conversation
        return conversation

    # -- reading -------------------------------------------------------------------------

    @property
    def version(self) -> str:
        """A value that changes whenever a view of the emulator may change (the chat view polls it).

        Built from the message and request id counters, which every recorded message and
        request moves whatever channel records it, and a counter of robot changes and resets.
        """
        with self._lock:
            return f"{self._changes}.{self._next_message_id}.{self._next_request_id}"

    def conversations(self) -> list[Conversation]:
        """Return the conversations robots post into, in creation order."""
        with self._lock:
            return list(self._conversations.values())

    def conversation_of(self, robot: str) -> Conversation:
        """Return the group conversation a robot posts into."""
        with self._lock:
            return self._conversation_for(self._robot(robot))

    def messages(
        self,
        *,
        robot: str | None = None,
        conversation: str | None = None,
        since_id: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        """Return accepted messages, oldest first, filtered by sender and conversation.

        ``conversation`` matches a conversation's id or title; ``since_id`` keeps messages
        with a larger id and ``limit`` the first ``limit`` of those, so polling never skips.
        """
        with self._lock:
            cids = {c.id for c in self._conversations.values() if conversation in (c.id, c.title)}
            found = [
                m
                for m in self._messages
                if (robot is None or m.sender == robot)
                and (conversation is None or m.conversation_id in cids)
                and (since_id is None or m.id > since_id)
            ]
        return found if limit is None else found[: max(limit, 0)]

    def requests(
        self, *, robot: str | None = None, accepted: bool | None = None
    ) -> list[RequestRecord]:
        """Return every request record, oldest first, optionally filtered."""
        with self._lock:
            return [
                r
                for r in self._requests
                if (robot is None or r.robot == robot)
                and (accepted is None or r.accepted == accepted)
            ]

    def rejections(self, *, robot: str | None = None) -> list[RequestRecord]:
        """Return the refused requests (faults included, de-duplicated retries excluded)."""
        return [r for r in self.requests(robot=robot) if r.rejected]

    def stats(self) -> EmulatorStats:
        """Return per-robot counters and totals."""
        with self._lock:
            now = self._clock.time()
            per_robot: dict[str, RobotStats] = {}
            for name in self._robots:
                records = [r for r in self._requests if r.robot == name]
                state = self._robot_state[name]
                locked = state.locked_until
                per_robot[name] = RobotStats(
                    accepted=sum(1 for r in records if r.accepted),
                    duplicates=state.duplicates,
                    rejected=dict(Counter(r.reason for r in records if r.rejected)),
                    locked_until=locked if locked is not None and locked > now else None,
                    in_window=len(self._window(state, self._robots[name], now)),
                )
            unknown = sum(1 for r in self._requests if r.reason == "unknown_token")
            return EmulatorStats(per_robot, unknown, len(self._requests))

    # -- faults --------------------------------------------------------------------------

    def inject_fault(
        self,
        kind: FaultKind,
        *,
        count: int | None = 1,
        probability: float = 1.0,
        robot: str | None = None,
        path: str | None = None,
        errcode: int | None = None,
        errmsg: str | None = None,
        delay: float = 0.0,
        after_accept: bool = False,
        seed: int | None = None,
    ) -> Fault:
        """Make the next matching request(s) fail.

        Args:
            kind: ``"errcode"`` (HTTP 200 with ``errcode``, default -1 系统繁忙),
                ``"http500"`` (a gateway's HTML error page), ``"delay"`` (answer ``delay``
                seconds late) or ``"drop"`` (start the response, then cut the connection).
            count: How many matching requests to affect; ``None`` for no limit.
            probability: Chance that a matching request is affected, drawn from
                ``random.Random(seed)``; a miss does not use up ``count``.
            robot: Only requests whose token belongs to this robot.
            path: Only requests to this path, e.g. ``"/robot/send"``.
            errcode: The errcode of an ``"errcode"`` fault.
            errmsg: Its errmsg.
            delay: Seconds a ``"delay"`` fault waits.
            after_accept: Process the request normally first (a valid message is accepted
                and recorded) and only then break the answer: the case ``msgUuid`` exists for.
            seed: Seed for ``probability`` draws, for reproducible soak tests.
        """
        with self._lock:
            return self._faults.add(
                kind,
                count=count,
                probability=probability,
                robot=robot,
                path=path,
                errcode=errcode,
                errmsg=errmsg,
                delay=delay,
                after_accept=after_accept,
                seed=seed,
            )

    def faults(self) -> list[Fault]:
        """Return the faults still pending."""
        with self._lock:
            return self._faults.pending()

    def clear_faults(self) -> None:
        """Remove every pending fault."""
        with self._lock:
            self._faults.clear()

    def take_fault(self, *, path: str, robot: str | None, after_accept: bool) -> Fault | None:
        """Fire the first pending fault matching this request, if any (used by the routes)."""
        with self._lock:
            return self._faults.take(path=path, robot=robot, after_accept=after_accept)

    def reset(self, *, robots: bool = False, apps: bool | None = None) -> None:
        """Forget messages, requests, faults, rate windows, lock-outs and msgUuids.

        Robots stay unless ``robots=True``; apps (with their tokens, media and notice tasks
        forgotten) stay unless ``apps=True``, which defaults to ``robots``.
        """
        with self._lock:
            self._changes += 1
            self._messages.clear()
            self._requests.clear()
            self._faults.clear()
            if robots:
                self._robots.clear()
                self._tokens.clear()
            self._robot_state = {name: _RobotState() for name in self._robots}
            self._conversations = {}
            for robot in self._robots.values():
                self._conversation_for(robot)
            self._reset_apps(forget=robots if apps is None else apps)

    # -- robot/send ----------------------------------------------------------------------

    def robot_send(
        self,
        call: WebhookCall,
        *,
        delayed: Fault | None = None,
        answer_fault: Fault | None = None,
    ) -> RequestRecord:
        """Process one custom-robot send (protocol §1, §8) and record it.

        ``delayed`` is a ``delay`` fault that already slept; ``answer_fault`` is an
        ``after_accept`` fault whose answer replaces the normal one in the record.
        """
        with self._lock:
            now = self._clock.time()
            outcome = self._judge(call, now)
            fault = answer_fault or delayed
            status: int | None = 200
            errcode: int | None = outcome.verdict.errcode
            errmsg: str | None = outcome.verdict.errmsg
            if answer_fault is not None and answer_fault.kind != "delay":
                status, errcode, errmsg = fault_answer(answer_fault)
            return self._record(
                call,
                now,
                robot=outcome.robot,
                payload=outcome.payload,
                reason=outcome.verdict.reason,
                accepted=outcome.verdict.ok and outcome.verdict.reason != "duplicate",
                answer=(status, errcode, errmsg),
                fault=fault.kind if fault is not None else None,
                message_id=outcome.message_id,
            )

    def record_fault(self, call: WebhookCall, fault: Fault) -> RequestRecord:
        """Record a request a fault answered before any processing."""
        with self._lock:
            robot_name = self._tokens.get(query_value(call.query, "access_token") or "")
            return self._record(
                call,
                self._clock.time(),
                robot=self._robots.get(robot_name or ""),
                payload=parse_body(call.body),
                reason="fault",
                accepted=False,
                answer=fault_answer(fault),
                fault=fault.kind,
                message_id=None,
            )

    def _judge(self, call: WebhookCall, now: float) -> _Outcome:
        options = self._options
        name = self._tokens.get(query_value(call.query, "access_token") or "")
        robot = self._robots.get(name) if name is not None else None
        if robot is None:
            return _Outcome(reject("unknown_token", options))
        state = self._robot_state[robot.name]
        if robot.status != "active":
            # The status names double as reason tags: disabled, not_in_group, dissolved.
            return _Outcome(reject(robot.status, options), robot)
        if state.locked_until is not None and now < state.locked_until:
            return _Outcome(reject("locked", options), robot)
        if not check_content_type(call.content_type):
            return _Outcome(reject("content_type", options), robot)
        payload = parse_body(call.body)
        if payload is None:
            return _Outcome(reject("bad_json", options), robot)
        verdict = (
            (reject("too_large", options) if len(call.body) > options.body_limit else None)
            or check_message(payload, options)
            or check_ip(robot, call.client_address(options), options)
            or check_signature(robot, call.query, math.floor(now * 1000), options)
            or check_keywords(robot, payload, options)
            or self._throttle(state, robot, now)
        )
        if verdict is not None:
            return _Outcome(verdict, robot, payload)
        msg_uuid = _msg_uuid(payload)
        if msg_uuid is not None and msg_uuid in state.uuids:
            state.duplicates += 1
            return _Outcome(DUPLICATE, robot, payload, state.uuids[msg_uuid])
        message = self._accept(robot, payload, msg_uuid, now)
        state.sent.append(now)
        if msg_uuid is not None:
            state.uuids[msg_uuid] = message.id
        return _Outcome(OK, robot, payload, message.id)

    def _window(self, state: _RobotState, robot: RobotConfig, now: float) -> deque[float]:
        """Drop send times outside the robot's current rate window and return the rest."""
        if self._options.rate_window_kind == "fixed":
            start = math.floor(now / robot.rate_window) * robot.rate_window
            while state.sent and state.sent[0] < start:
                state.sent.popleft()
        else:
            while state.sent and state.sent[0] <= now - robot.rate_window:
                state.sent.popleft()
        return state.sent

    def _throttle(self, state: _RobotState, robot: RobotConfig, now: float) -> Verdict | None:
        if len(self._window(state, robot, now)) < robot.rate_limit:
            return None
        # §1.5: exceeding 20/min gets the robot throttled for 10 minutes ("限流10分钟").
        if robot.lockout > 0:
            state.locked_until = now + robot.lockout
        return reject("throttled", self._options)

    def _accept(
        self, robot: RobotConfig, payload: Mapping[str, Any], msg_uuid: str | None, now: float
    ) -> Message:
        msgtype = str(payload["msgtype"])
        stored = {k: copy.deepcopy(v) for k, v in payload.items() if k != "msgUuid"}
        # §1.3: only text and markdown support @; other types ignore a stray at object.
        at = AtTargets.from_payload(payload) if msgtype in ("text", "markdown") else AtTargets()
        message = Message(
            id=self._next_message_id,
            conversation_id=self._conversation_for(robot).id,
            sender=robot.name,
            channel=WEBHOOK_CHANNEL,
            msgtype=msgtype,
            payload=stored,
            time=now,
            msg_uuid=msg_uuid,
            at=at,
        )
        self._next_message_id += 1
        self._messages.append(message)
        return message

    def _record(
        self,
        call: WebhookCall,
        now: float,
        *,
        robot: RobotConfig | None,
        payload: Mapping[str, Any] | None,
        reason: str,
        accepted: bool,
        answer: tuple[int | None, int | None, str | None],
        fault: str | None,
        message_id: int | None,
    ) -> RequestRecord:
        status, errcode, errmsg = answer
        msgtype = payload.get("msgtype") if payload is not None else None
        record = RequestRecord(
            id=self._next_request_id,
            time=now,
            path=call.path,
            robot=robot.name if robot is not None else None,
            token=mask(query_value(call.query, "access_token")),
            client_ip=call.client_address(self._options),
            msgtype=msgtype if isinstance(msgtype, str) else None,
            msg_uuid=_msg_uuid(payload) if payload is not None else None,
            errcode=errcode,
            errmsg=errmsg,
            reason=reason,
            accepted=accepted,
            body_size=len(call.body),
            http_status=status,
            fault=fault,
            message_id=message_id,
        )
        self._next_request_id += 1
        self._requests.append(record)
        return record


def _msg_uuid(payload: Mapping[str, Any]) -> str | None:
    # Only a non-empty string is an idempotency key [U]: the docs type msgUuid as String.
    value = payload.get("msgUuid")
    return value if isinstance(value, str) and value else None
