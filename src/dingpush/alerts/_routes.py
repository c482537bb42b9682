"""Routes: which targets, template and mentions an alert gets, chosen as Alertmanager chooses.

A route table is a tree. Its root (the route named in the receiver's path, ``/alertmanager/ops``)
matches everything and is the default; its children are tried in order and the first that
matches takes the alert, unless it says ``continue = true``, when the next ones are tried too.
A child's own children are tried the same way. A route that leaves a setting out inherits its
parent's (``targets``, ``template``, mentions, ``repeat_window``, ``timezone``).

Alertmanager re-sends an unchanged group every ``repeat_interval``. A route with
``repeat_window`` passes such an identical repeat (same group key, status and alerts) only once
per window; a resolution always passes. The log of what was sent (:class:`RepeatLog`) is written
only after the messages are committed, so a sender's retry after a failed commit is not taken
for a repeat.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from dingpush import ConfigError

from ._filters import resolve_timezone
from ._matchers import Matcher, matches_all, parse_matchers
from ._people import RAW_MENTION_KEY

__all__ = [
    "MemoryRepeatLog",
    "RepeatLog",
    "ResolvedRoute",
    "Route",
    "repeat_key",
    "select_routes",
]


def _names(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    items = tuple(typing.cast(Iterable[str], value))
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"{where}: each entry is a non-empty string, got {item!r}")
    return items


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One node of a route table (the TOML under ``[routes.NAME]``; children in ``routes``).

    Unset settings (``None``) are inherited from the parent route.

    Args:
        name: the node's name, shown in reports (children default to their position).
        match: matchers, all of which an alert's labels must satisfy (``'severity="critical"'``
            strings or :class:`Matcher`); the root route takes none: it catches everything.
        targets: names of the configured targets the messages go to.
        template: a configured or builtin template (``alertmanager``, ``grafana``, ``generic``);
            by default the builtin one of the receiver's kind.
        mention: people (names in the directory, or mobiles) always mentioned.
        mention_all: always mention everyone (``@all``).
        allow_mention_all: an alert may ask for ``@all`` through its labels.
        mention_labels: the labels/annotations that name people to mention per alert.
        continue_: (TOML ``continue``) after this route matched, keep trying its siblings.
        repeat_window: seconds within which an identical repeat is not sent again (0: off).
        timezone: the IANA zone times are shown in (``Asia/Shanghai``), or ``local``.
        routes: child routes, tried in order.
    """

    name: str = ""
    match: Sequence[Matcher | str] = ()
    targets: Sequence[str] | None = None
    template: str | None = None
    mention: Sequence[str] | None = None
    mention_all: bool | None = None
    allow_mention_all: bool | None = None
    mention_labels: Sequence[str] | None = None
    continue_: bool = field(default=False, metadata={"key": "continue"})
    repeat_window: float | None = None
    timezone: str | None = None
    routes: Sequence[Route] = ()

    def __post_init__(self) -> None:
        where = f"routes.{self.name}" if self.name else "route"
        object.__setattr__(self, "match", parse_matchers(self.match))
        object.__setattr__(self, "routes", tuple(self.routes))
        for attr in ("targets", "mention", "mention_labels"):
            value = getattr(self, attr)
            if value is not None:
                object.__setattr__(self, attr, _names(value, f"{where}.{attr}"))
        for attr in ("mention_all", "allow_mention_all", "continue_"):
            value = getattr(self, attr)
            if value is not None and not isinstance(value, bool):
                raise ConfigError(f"{where}.{attr}: true or false, got {value!r}")
        window = self.repeat_window
        if window is not None and (
            isinstance(window, bool) or not isinstance(window, int | float) or window < 0
        ):
            raise ConfigError(f"{where}.repeat_window: seconds >= 0, got {window!r}")
        if self.timezone is not None:
            try:
                resolve_timezone(self.timezone)
            except ValueError as exc:
                raise ConfigError(f"{where}.timezone: {exc}") from None
        for child in self.routes:
            if not isinstance(child, Route):
                raise ConfigError(f"{where}.routes: each child is a route, got {child!r}")

    @property
    def matchers(self) -> tuple[Matcher, ...]:
        return typing.cast(tuple[Matcher, ...], self.match)

    def walk(self, path: str = "") -> Iterable[tuple[str, Route]]:
        """Every node with its path (``ops``, ``ops/critical``, ``ops/2``), depth first."""
        here = path or self.name or "root"
        yield here, self
        for index, child in enumerate(typing.cast(tuple[Route, ...], self.routes)):
            yield from child.walk(f"{here}/{child.name or index}")


@dataclass(frozen=True, slots=True)
class ResolvedRoute:
    """A matched route with every inherited setting filled in."""

    path: str
    targets: tuple[str, ...] = ()
    template: str | None = None
    mention: tuple[str, ...] = ()
    mention_all: bool = False
    allow_mention_all: bool = False
    mention_labels: tuple[str, ...] = ("owner", RAW_MENTION_KEY)
    repeat_window: float = 0.0
    timezone: str | None = None

    def child(self, route: Route, path: str) -> ResolvedRoute:
        updates: dict[str, typing.Any] = {"path": path}
        for attr in (
            "targets",
            "template",
            "mention",
            "mention_all",
            "allow_mention_all",
            "mention_labels",
            "repeat_window",
            "timezone",
        ):
            value = getattr(route, attr)
            if value is not None:
                updates[attr] = value
        return dataclasses.replace(self, **updates)


def _select(
    route: Route, labels: Mapping[str, str], parent: ResolvedRoute, path: str
) -> list[ResolvedRoute]:
    if not matches_all(route.matchers, labels):
        return []
    here = parent.child(route, path)
    found: list[ResolvedRoute] = []
    for index, child in enumerate(typing.cast(tuple[Route, ...], route.routes)):
        matched = _select(child, labels, here, f"{path}/{child.name or index}")
        if matched:
            found.extend(matched)
            if not child.continue_:
                break
    return found or [here]


def select_routes(root: Route, labels: Mapping[str, str], name: str = "") -> list[ResolvedRoute]:
    """The routes an alert with ``labels`` takes, in order (the root when no child matches)."""
    return _select(root, labels, ResolvedRoute(path=name), name or root.name or "root")


# -- repeat suppression ------------------------------------------------------------------------


def repeat_key(path: str, group_key: str, status: str, alerts: Iterable[tuple[str, str]]) -> str:
    """The identity of a notification: route, group key, status and each alert's
    ``(fingerprint, status)``; equal keys mean Alertmanager repeated the same group."""
    hasher = hashlib.sha256()
    for part in (path, group_key, status, *sorted(f"{f}:{s}" for f, s in alerts)):
        hasher.update(part.encode())
        hasher.update(b"\x00")
    return hasher.hexdigest()[:32]


class RepeatLog(typing.Protocol):
    """Where the relay remembers which notifications it sent, and when."""

    def seen(self, key: str, now: float) -> bool:
        """Whether ``key`` was remembered and its window has not ended at ``now``."""

    def remember(self, key: str, now: float, window: float) -> None:
        """Record that ``key`` was sent at ``now``; repeats are held back until ``now + window``."""


class MemoryRepeatLog:
    """A :class:`RepeatLog` in this process's memory; expired keys are swept as it grows."""

    def __init__(self, sweep_every: int = 1024) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._sweep_every = sweep_every
        self._writes = 0

    def seen(self, key: str, now: float) -> bool:
        with self._lock:
            until = self._until.get(key)
            return until is not None and now < until

    def remember(self, key: str, now: float, window: float) -> None:
        if window <= 0:
            return
        with self._lock:
            self._until[key] = now + window
            self._writes += 1
            if self._writes % self._sweep_every == 0:
                self._until = {k: t for k, t in self._until.items() if t > now}

    def __len__(self) -> int:
        return len(self._until)
