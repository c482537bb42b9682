"""The robot area of the emulator: custom group robots and their ``/robot/send`` (protocol §1).

:class:`RobotArea` holds the robots, their tokens and what the server keeps per robot (the
rate window, the lock-out, the ``msgUuid`` s seen), judges each send with the sans-I/O checks
of ``_webhook.py`` and records the outcome into the :class:`~._ledger.Ledger`. It is not
thread-safe: :class:`~dingpush.emulator.Emulator` holds the ledger's lock around every call.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dingpush import mask

from ._config import RobotConfig
from ._faults import Fault, fault_answer
from ._ledger import Ledger
from ._records import AtTargets, Conversation, RequestRecord, RobotStats
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

__all__ = ["WEBHOOK_CHANNEL", "RobotArea"]

#: ``Message.channel`` of messages delivered through a custom robot's webhook.
WEBHOOK_CHANNEL = "robot-webhook"


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
    findings: tuple[str, ...] = ()


class RobotArea:
    """Custom robots: registration, ``/robot/send``'s stateful checks, per-robot counters."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._robots: dict[str, RobotConfig] = {}
        self._tokens: dict[str, str] = {}
        self._state: dict[str, _RobotState] = {}

    def __len__(self) -> int:
        return len(self._robots)

    # -- registration ---------------------------------------------------------------------

    def add(self, robot: RobotConfig) -> RobotConfig:
        self._check_token(robot)
        self._install(robot)
        return robot

    def update(self, name: str, changes: Mapping[str, Any]) -> RobotConfig:
        if "name" in changes and changes["name"] != name:
            raise ValueError("a robot cannot be renamed; remove it and add a new one")
        try:
            robot = dataclasses.replace(self.get(name), **changes)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc
        self._check_token(robot)
        self._install(robot)
        return robot

    def remove(self, name: str) -> None:
        robot = self.get(name)
        del self._robots[name], self._tokens[robot.token], self._state[name]
        self._ledger.changed()

    def get(self, name: str) -> RobotConfig:
        try:
            return self._robots[name]
        except KeyError:
            raise KeyError(f"no robot named {name!r}") from None

    def all(self) -> list[RobotConfig]:
        return list(self._robots.values())

    def for_token(self, token: str | None) -> str | None:
        return self._tokens.get(token or "")

    def conversation_of(self, robot: RobotConfig) -> Conversation:
        """The group a robot posts into (listed from the moment the robot exists)."""
        return self._ledger.conversation("group", robot.group)

    def _check_token(self, robot: RobotConfig) -> None:
        owner = self._tokens.get(robot.token)
        if owner is not None and owner != robot.name:
            raise ValueError(f"token already belongs to robot {owner!r}")

    def _install(self, robot: RobotConfig) -> None:
        self._ledger.changed()
        previous = self._robots.get(robot.name)
        if previous is not None:
            del self._tokens[previous.token]
        self._robots[robot.name] = robot
        self._tokens[robot.token] = robot.name
        self._state.setdefault(robot.name, _RobotState())
        self.conversation_of(robot)

    def reset(self, *, forget: bool) -> None:
        """Forget rate windows, lock-outs and msgUuids (the robots too when ``forget``)."""
        if forget:
            self._robots.clear()
            self._tokens.clear()
        self._state = {name: _RobotState() for name in self._robots}
        for robot in self._robots.values():
            self.conversation_of(robot)

    # -- reading --------------------------------------------------------------------------

    def stats(self) -> dict[str, RobotStats]:
        now = self._ledger.now()
        per_robot: dict[str, RobotStats] = {}
        for name, robot in self._robots.items():
            records = [r for r in self._ledger.requests if r.robot == name]
            state = self._state[name]
            locked = state.locked_until
            per_robot[name] = RobotStats(
                accepted=sum(1 for r in records if r.accepted),
                duplicates=state.duplicates,
                rejected=dict(Counter(r.reason for r in records if r.rejected)),
                locked_until=locked if locked is not None and locked > now else None,
                in_window=len(self._window(state, robot, now)),
            )
        return per_robot

    # -- /robot/send ----------------------------------------------------------------------

    def send(
        self, call: WebhookCall, *, delayed: Fault | None, answer_fault: Fault | None
    ) -> RequestRecord:
        """Process one custom-robot send (protocol §1, §8) and record it."""
        now = self._ledger.now()
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
            findings=outcome.findings,
        )

    def record_fault(self, call: WebhookCall, fault: Fault) -> RequestRecord:
        """Record a request a fault answered before any processing."""
        robot_name = self.for_token(query_value(call.query, "access_token"))
        return self._record(
            call,
            self._ledger.now(),
            robot=self._robots.get(robot_name or ""),
            payload=parse_body(call.body),
            reason="fault",
            accepted=False,
            answer=fault_answer(fault),
            fault=fault.kind,
            message_id=None,
        )

    def wrong_method(self, call: WebhookCall, verdict: Verdict) -> RequestRecord:
        """Record a request made with a method ``/robot/send`` does not take (GET, PUT…)."""
        robot_name = self.for_token(query_value(call.query, "access_token"))
        return self._record(
            call,
            self._ledger.now(),
            robot=self._robots.get(robot_name or ""),
            payload=None,
            reason=verdict.reason,
            accepted=False,
            answer=(200, verdict.errcode, verdict.errmsg),
            fault=None,
            message_id=None,
        )

    def _judge(self, call: WebhookCall, now: float) -> _Outcome:
        options = self._ledger.options
        name = self.for_token(query_value(call.query, "access_token"))
        robot = self._robots.get(name) if name is not None else None
        if robot is None:
            return _Outcome(reject("unknown_token", options))
        state = self._state[robot.name]
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
            or check_message(payload, options, accept_image=robot.accept_image)
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
        at, findings = self._mentions(payload)
        message = self._ledger.deliver(
            self.conversation_of(robot),
            sender=robot.name,
            channel=WEBHOOK_CHANNEL,
            msgtype=str(payload["msgtype"]),
            payload={k: v for k, v in payload.items() if k != "msgUuid"},
            now=now,
            msg_uuid=msg_uuid,
            at=at,
        )
        state.sent.append(now)
        if msg_uuid is not None:
            state.uuids[msg_uuid] = message.id
        return _Outcome(OK, robot, payload, message.id, findings)

    def _mentions(self, payload: Mapping[str, Any]) -> tuple[AtTargets, tuple[str, ...]]:
        """Who the message @-mentions, at most ``at_limit`` people (§1.3, [C1]: 50).

        The docs give the cap but not what happens beyond it, so the message is accepted with
        the first ``at_limit`` mentions and the request log says what was dropped.
        """
        # §1.3: only text and markdown support @; other types ignore a stray at object.
        if payload.get("msgtype") not in ("text", "markdown"):
            return AtTargets(), ()
        at = AtTargets.from_payload(payload)
        limit = self._ledger.options.at_limit
        people = len(at.mobiles) + len(at.user_ids) + len(at.dingtalk_ids)
        if not limit or people <= limit:
            return at, ()
        mobiles = at.mobiles[:limit]
        user_ids = at.user_ids[: limit - len(mobiles)]
        dingtalk_ids = at.dingtalk_ids[: limit - len(mobiles) - len(user_ids)]
        finding = (
            f"at: {people} people mentioned, DingTalk mentions at most {limit} (§1.3); "
            f"the first {limit} were kept"
        )
        capped = dataclasses.replace(
            at, mobiles=mobiles, user_ids=user_ids, dingtalk_ids=dingtalk_ids
        )
        return capped, (finding,)

    def _window(self, state: _RobotState, robot: RobotConfig, now: float) -> deque[float]:
        """Drop send times outside the robot's current rate window and return the rest."""
        if self._ledger.options.rate_window_kind == "fixed":
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
        return reject("throttled", self._ledger.options)

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
        findings: tuple[str, ...] = (),
    ) -> RequestRecord:
        status, errcode, errmsg = answer
        msgtype = payload.get("msgtype") if payload is not None else None
        return self._ledger.record(
            time=now,
            path=call.path,
            robot=robot.name if robot is not None else None,
            token=mask(query_value(call.query, "access_token")),
            client_ip=call.client_address(self._ledger.options),
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
            findings=findings,
        )


def _msg_uuid(payload: Mapping[str, Any]) -> str | None:
    # Only a non-empty string is an idempotency key [U]: the docs type msgUuid as String.
    value = payload.get("msgUuid")
    return value if isinstance(value, str) and value else None
