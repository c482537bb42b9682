"""Escalation policies and on-call schedules: what the escalation engine runs, as values.

A route names a policy (``policy = "page"``); the policy says what the on-call loop waits for
(``wait_for``: someone *acknowledged* the alert, or merely *read* the group message) and which
steps run while it has not happened::

    [policies.page]
    wait_for = "acknowledged"          # or "read"
    repeat = false                     # true: after the last step, start over
    steps = [
      { after = "5m", ding = "oncall", remind = "phone", fallback = "app" },
      { after = "15m", notify = "lead-group" },
    ]

    [schedules.oncall]                 # "oncall" in a step: whoever this schedule names now
    people = ["alice", "bob"]          # names of [people.NAME] (a DING needs their user_id)
    start = "2026-11-30T09:00+08:00"   # alice from then, bob a week later, alice again…
    every = "7d"
    overrides = [
      { from = "2026-12-24T09:00+08:00", until = "2026-12-26T09:00+08:00", person = "carol" },
    ]

``after`` counts from the moment the incident opened (the first firing notification), so the
steps above run 5 and 15 minutes in. With ``repeat``, the steps run again after the last one,
each a cycle (the last step's ``after``) later. Nothing here does I/O: the times are UNIX times
the engine passes in.
"""

from __future__ import annotations

import datetime
import math
import zoneinfo
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from dingpush import ConfigError
from dingpush.alerts import Person

__all__ = [
    "REMIND_TYPES",
    "WAIT_FOR",
    "OnCall",
    "Override",
    "Policy",
    "Schedule",
    "Step",
    "parse_instant",
    "resolve_zone",
]

#: What a policy can wait for.
WAIT_FOR = ("acknowledged", "read")
#: A DING's reminder types as the configuration names them → the library's names.
REMIND_TYPES: Mapping[str, str] = {"app": "app", "sms": "sms", "phone": "call", "call": "call"}


def resolve_zone(name: str) -> datetime.tzinfo:
    """An IANA time zone (``Asia/Shanghai``, ``UTC``)."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"time zone {name!r} is unknown: use an IANA name such as Asia/Shanghai or UTC"
        ) from None


def parse_instant(text: str, zone: datetime.tzinfo | None = None) -> datetime.datetime:
    """An ISO 8601 time with its offset (``2026-11-30T09:00+08:00``), or in ``zone``."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{text!r} is not a time: write it as 2026-11-30T09:00+08:00 (ISO 8601 with the offset)"
        ) from None
    if moment.tzinfo is None:
        if zone is None:
            raise ConfigError(
                f"{text!r} has no UTC offset: write it as {text}+08:00 (your offset), or give "
                "the schedule a timezone"
            )
        moment = moment.replace(tzinfo=zone)
    return moment


@dataclass(frozen=True, slots=True)
class Step:
    """One escalation step: ``after`` seconds from the opening, DING someone or notify a target.

    ``ding`` names a schedule (its on-call person at the time) or a person of the directory;
    ``remind`` is the DING's reminder type (``app``, ``sms``, ``call``); ``fallback`` an
    in-app DING when the paid SMS/phone quota is missing (``"app"``) or none (``None``).
    ``notify`` names a target the alert's message is sent to.
    """

    after: float
    ding: str | None = None
    remind: str = "app"
    fallback: str | None = "app"
    notify: str | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.after, int | float) and self.after >= 0):
            raise ConfigError(f"after must be a duration of 0 or more, not {self.after!r}")
        if (self.ding is None) == (self.notify is None):
            raise ConfigError(
                'a step does one thing: give it ding = "<schedule or person>" or '
                'notify = "<target>"'
            )
        if self.remind not in REMIND_TYPES:
            raise ConfigError(
                f'remind = {self.remind!r} is not a reminder type: use "app", "sms" or "phone"'
            )
        object.__setattr__(self, "remind", REMIND_TYPES[self.remind])
        if self.fallback not in (None, "app"):
            raise ConfigError(
                f'fallback = {self.fallback!r}: the only fallback is "app" (an in-app DING when '
                "the SMS/phone quota is missing; the default); give None to have none"
            )

    @property
    def action(self) -> str:
        return "ding" if self.ding is not None else "notify"


@dataclass(frozen=True, slots=True)
class Policy:
    """An escalation policy: what it waits for, its steps, and whether they repeat.

    ``via`` names the app target whose robot sends the DINGs (by default the incident's first
    app target).
    """

    name: str
    steps: tuple[Step, ...]
    wait_for: str = "acknowledged"
    repeat: bool = False
    via: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        if not self.steps:
            raise ConfigError(f"policies.{self.name}: no steps; give steps = [{{after = …}}]")
        if self.wait_for not in WAIT_FOR:
            raise ConfigError(
                f'wait_for = {self.wait_for!r}: use "acknowledged" (someone took the alert) or '
                '"read" (someone read the group message)'
            )
        afters = [s.after for s in self.steps]
        if afters != sorted(afters):
            raise ConfigError(
                f"policies.{self.name}: each step's after counts from the alert's opening, so "
                f"they must not decrease (got {afters}): order the steps by after"
            )
        if self.repeat and self.cycle <= 0:
            raise ConfigError(
                f"policies.{self.name}: repeat needs the last step's after to be more than 0 "
                "(it is the length of a cycle)"
            )

    @property
    def cycle(self) -> float:
        return self.steps[-1].after

    def step(self, number: int) -> Step | None:
        """The step of run ``number`` (0, 1, …, and on past the last one with ``repeat``)."""
        cycle, index = divmod(number, len(self.steps))
        if cycle and not self.repeat:
            return None
        return self.steps[index]

    def due_at(self, opened_at: float, number: int) -> float | None:
        """When run ``number`` is due for an incident opened at ``opened_at``; None: no more."""
        step = self.step(number)
        if step is None:
            return None
        return opened_at + (number // len(self.steps)) * self.cycle + step.after


@dataclass(frozen=True, slots=True)
class Override:
    """Someone else on call from ``start`` (inclusive) to ``end`` (exclusive), UNIX times."""

    start: float
    end: float
    person: str

    def __post_init__(self) -> None:
        if not self.end > self.start:
            raise ConfigError("an override's until must come after its from")


@dataclass(frozen=True, slots=True)
class Schedule:
    """A rotation: ``people`` take turns of ``every`` seconds from ``start``, with overrides.

    With ``zone`` the turns change at the same wall-clock time in that zone (a week stays
    "Monday 09:00 to Monday 09:00" across a daylight-saving change); without, every turn is
    exactly ``every`` seconds.
    """

    name: str
    people: tuple[str, ...]
    start: datetime.datetime
    every: float
    overrides: tuple[Override, ...] = ()
    zone: datetime.tzinfo | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "people", tuple(self.people))
        object.__setattr__(self, "overrides", tuple(self.overrides))
        if not self.people:
            raise ConfigError(f"schedules.{self.name}: people is empty; name who takes turns")
        if not (isinstance(self.every, int | float) and self.every > 0):
            raise ConfigError(f"schedules.{self.name}: every must be a positive duration")
        if self.start.tzinfo is None:
            raise ConfigError(f"schedules.{self.name}: start needs a UTC offset or a timezone")

    def on_call(self, at: float) -> str:
        """The person on call at UNIX time ``at`` (an override first, else the rotation)."""
        for override in self.overrides:
            if override.start <= at < override.end:
                return override.person
        return self.people[self.turn(at) % len(self.people)]

    def turn(self, at: float) -> int:
        """Which turn of the rotation ``at`` falls in (0 from ``start``; negative before)."""
        if self.zone is None:
            return math.floor((at - self.start.timestamp()) / self.every)
        local = datetime.datetime.fromtimestamp(at, self.zone).replace(tzinfo=None)
        begun = self.start.astimezone(self.zone).replace(tzinfo=None)
        return math.floor((local - begun).total_seconds() / self.every)


@dataclass(frozen=True, slots=True)
class OnCall:
    """The policies and schedules of a configuration, with the people they refer to."""

    policies: Mapping[str, Policy] = field(default_factory=dict)
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    people: Mapping[str, Person] = field(default_factory=dict)

    def problems(
        self, targets: Mapping[str, str], *, broken: Collection[str] = ()
    ) -> list[tuple[tuple[str, ...], str, str]]:
        """``(path, problem, fix)`` for every reference that leads nowhere.

        ``targets`` maps the relay's target names to their kinds; ``broken`` names the
        ``[people.NAME]`` that are written but could not be read (their own problems are
        reported): a reference to one is no second problem.
        """
        unreadable = frozenset(broken)
        found: list[tuple[tuple[str, ...], str, str]] = []
        for name in sorted(set(self.schedules) & set(self.people)):
            found.append(
                (
                    ("schedules", name),
                    f"is also a person's name ([people.{name}]): a step's ding would be ambiguous",
                    "rename the schedule",
                )
            )
        for schedule in self.schedules.values():
            names = [*schedule.people, *(o.person for o in schedule.overrides)]
            for person in dict.fromkeys(names):
                problem = self._person_problem(person, unreadable)
                if problem:
                    found.append((("schedules", schedule.name), problem[0], problem[1]))
        for policy in self.policies.values():
            path = ("policies", policy.name)
            if policy.via is not None and targets.get(policy.via, "").split("-")[0] != "app":
                found.append(
                    (
                        (*path, "via"),
                        f"{policy.via!r} is not an app target (DINGs go through an app's robot)",
                        "name an app-group or app-users target, or leave via out",
                    )
                )
            for index, step in enumerate(policy.steps):
                where = (*path, "steps", f"[{index}]")
                if step.notify is not None and step.notify not in targets:
                    found.append(
                        (
                            (*where, "notify"),
                            f"there is no target {step.notify!r}",
                            f"use one of {', '.join(sorted(targets)) or 'the [targets]'}",
                        )
                    )
                if step.ding is not None and step.ding not in self.schedules:
                    problem = self._person_problem(step.ding, unreadable)
                    if problem:
                        found.append(((*where, "ding"), problem[0], problem[1]))
        return found

    def _person_problem(self, name: str, broken: frozenset[str]) -> tuple[str, str] | None:
        person = self.people.get(name)
        if person is None and name in broken:
            return None  # [people.NAME] is written; its own problem says what is wrong
        if person is None:
            known = ", ".join(sorted([*self.schedules, *self.people])) or "none"
            return (
                f"{name!r} is neither a schedule nor a person",
                f"add [people.{name}] with its user_id, or use one of: {known}",
            )
        if not person.user_id:
            return (
                f"{name!r} has no user_id: a DING rings DingTalk users by userId",
                f'add user_id = "…" to [people.{name}]',
            )
        return None

    def person(self, name: str, at: float) -> tuple[str, Person]:
        """Whom ``name`` (a schedule, or a person) means at UNIX time ``at``: their name in
        the directory and their entry."""
        schedule = self.schedules.get(name)
        chosen = schedule.on_call(at) if schedule is not None else name
        try:
            return chosen, self.people[chosen]
        except KeyError:
            raise ConfigError(f"{chosen!r} is not in [people]") from None
