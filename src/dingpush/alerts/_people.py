"""Who an alert mentions: a people directory, a route's mentions, and the alert's own labels.

DingTalk notifies a person in a markdown message only when their mobile or userId is in the
message's ``at`` *and* ``@mobile``/``@userId`` is in the text (protocol §1.3); dingpush's
``Markdown`` writes the missing ``@…`` into the text itself. An action card takes no ``at``:
only ``@userId`` written in its text mentions, so mobiles cannot be mentioned there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dingpush import At, ConfigError

__all__ = ["MAX_MENTIONS", "RAW_MENTION_KEY", "Mentions", "People", "Person", "resolve_mentions"]

#: DingTalk mentions at most 50 people in one message (protocol §1.3).
MAX_MENTIONS = 50
#: The label/annotation whose values may be raw DingTalk user ids as well as names and mobiles.
RAW_MENTION_KEY = "dingtalk_at"
#: An 11-digit mainland number, or an international one written ``+852-98765432``.
MOBILE = re.compile(r"(?:\+\d{1,4}-)?\d{5,15}")
_USER_ID = re.compile(r"[A-Za-z0-9_\-$.]{1,64}")
_TOKENS = re.compile(r"[\s,;]+")
_ALL = frozenset({"all", "@all", "所有人"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    """Someone alerts can mention: their DingTalk userId, their mobile, or both.

    ``name`` is how routes and labels (``owner="alice"``) refer to them; ``AlertSettings``
    fills it in from the ``[people.NAME]`` key.
    """

    name: str = ""
    user_id: str | None = None
    mobile: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ConfigError(f"people: a person's name is a string, got {self.name!r}")
        if self.user_id is None and self.mobile is None:
            raise ConfigError(
                f"people.{self.name or '?'}: give user_id (their DingTalk userId) or mobile, "
                "or both"
            )
        if self.mobile is not None and not (
            isinstance(self.mobile, str) and MOBILE.fullmatch(self.mobile)
        ):
            raise ConfigError(
                f"people.{self.name}.mobile: {self.mobile!r} is not a mobile number; write "
                "13800000000, or +852-98765432 for a number outside the mainland"
            )
        if self.user_id is not None and not (
            isinstance(self.user_id, str) and _USER_ID.fullmatch(self.user_id)
        ):
            raise ConfigError(
                f"people.{self.name}.user_id: {self.user_id!r} is not a DingTalk userId "
                "(letters, digits, '_', '-', '$', '.')"
            )

    @property
    def target(self) -> str:
        """What follows ``@``: the userId when known (it works in every group), else the mobile."""
        return self.user_id or self.mobile or ""


class People:
    """The directory: name → :class:`Person`."""

    __slots__ = ("_people",)

    def __init__(self, people: Iterable[Person] | Mapping[str, Person] = ()) -> None:
        items = people.values() if isinstance(people, Mapping) else people
        self._people: dict[str, Person] = {}
        for person in items:
            if not person.name.strip():
                raise ConfigError("people: a person needs a name")
            if person.name in self._people:
                raise ConfigError(f"people.{person.name}: the name is given twice")
            self._people[person.name] = person

    def get(self, name: str) -> Person | None:
        return self._people.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._people

    def __len__(self) -> int:
        return len(self._people)

    def __repr__(self) -> str:
        return f"People({sorted(self._people)})"


@dataclass(frozen=True, slots=True)
class Mentions:
    """Who one message mentions, and what could not be honoured (shown, never dropped silently)."""

    at: At
    #: Each entry says what was asked and why it was not done.
    problems: tuple[str, ...] = ()

    def for_card(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """User ids an action card can mention in its text, and problems for the rest."""
        problems = list(self.problems)
        if self.at.mobiles:
            problems.append(
                f"an action card cannot mention by mobile ({len(self.at.mobiles)} left out): "
                "give those people a user_id in the people directory"
            )
        if self.at.all:
            problems.append("an action card cannot mention @all")
        return tuple(self.at.user_ids), tuple(problems)


class _Collector:
    def __init__(self) -> None:
        self.mobiles: dict[str, None] = {}
        self.user_ids: dict[str, None] = {}
        self.all = False
        self.problems: list[str] = []
        self.overflow = 0

    def add(self, person: Person) -> None:
        if person.user_id:
            self._add(self.user_ids, person.user_id)
        elif person.mobile:
            self._add(self.mobiles, person.mobile)

    def _add(self, into: dict[str, None], target: str) -> None:
        if target in self.user_ids or target in self.mobiles:
            return
        if len(self.user_ids) + len(self.mobiles) >= MAX_MENTIONS:
            self.overflow += 1
            return
        into[target] = None

    def token(self, token: str, people: People, *, raw_ids: bool, where: str) -> None:
        bare = token.removeprefix("@")
        person = people.get(bare)
        if person is not None:
            self.add(person)
        elif MOBILE.fullmatch(bare):
            self._add(self.mobiles, bare)
        elif raw_ids and _USER_ID.fullmatch(bare):
            self._add(self.user_ids, bare)
        else:
            self.problems.append(
                f"{where}: {token!r} is not in the people directory (nor a mobile number)"
            )


def _route_entries(entries: Iterable[str], people: People, into: _Collector) -> None:
    for entry in entries:
        into.token(entry, people, raw_ids=False, where="route mention")


def resolve_mentions(
    *,
    people: People,
    route_mentions: Iterable[str] = (),
    mention_all: bool = False,
    allow_mention_all: bool = False,
    sources: Iterable[tuple[Mapping[str, str], Mapping[str, str]]] = (),
    keys: Iterable[str] = ("owner", RAW_MENTION_KEY),
) -> Mentions:
    """Mentions for one message.

    Args:
        people: the directory.
        route_mentions: the route's names (or mobiles), always mentioned.
        mention_all: the route always mentions everyone.
        allow_mention_all: an alert may ask for ``@all`` (``dingtalk_at="all"``).
        sources: ``(labels, annotations)`` of each alert in the message; the values of
            ``keys`` there (comma- or space-separated) name more people.
        keys: the labels/annotations read; ``dingtalk_at`` also takes raw user ids.
    """
    found = _Collector()
    found.all = mention_all
    _route_entries(route_mentions, people, found)
    keys = tuple(keys)
    for labels, notes in sources:
        for key in keys:
            for where, values in (("label", labels), ("annotation", notes)):
                value = values.get(key)
                if not value:
                    continue
                for token in _TOKENS.split(value.strip()):
                    if not token:
                        continue
                    if token.lower() in _ALL:
                        if allow_mention_all:
                            found.all = True
                        elif not mention_all:
                            found.problems.append(
                                f"{where} {key}={value!r} asks for @all, which this route does "
                                "not allow (allow_mention_all = true)"
                            )
                        continue
                    found.token(
                        token, people, raw_ids=key == RAW_MENTION_KEY, where=f"{where} {key}"
                    )
    if found.overflow:
        found.problems.append(
            f"{found.overflow} more people not mentioned: DingTalk mentions at most "
            f"{MAX_MENTIONS} in one message"
        )
    at = At(mobiles=tuple(found.mobiles), user_ids=tuple(found.user_ids), all=found.all)
    return Mentions(at, tuple(dict.fromkeys(found.problems)))
